//! How a registry runs: `levee registry` flags, or built directly by tests and embedders.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where fleet state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// In this process (the default). Optionally persisted to a snapshot file.
    Memory,
    /// A Redis server shared by several registry replicas.
    Redis(RedisConfig),
}

/// Redis connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Bound of every Redis call, connect included: a frozen or blackholed Redis must never
    /// hang a request (default 1 s).
    pub timeout: Duration,
    /// How often the backend is pinged to notice a loss, and a lost one retried (default
    /// 500 ms).
    pub ping_interval: Duration,
    /// Prefix of every key and channel (default `levee:`), so registries of several
    /// environments can share one Redis.
    pub prefix: String,
}

impl RedisConfig {
    /// The defaults for `url`.
    pub fn new(url: &str) -> RedisConfig {
        RedisConfig {
            url: url.to_string(),
            timeout: Duration::from_secs(1),
            ping_interval: Duration::from_millis(500),
            prefix: "levee:".to_string(),
        }
    }
}

/// What the registry does while its backend is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Serve the last known state (marked `degraded`), keep watch streams open; writes 503.
    #[default]
    Open,
    /// Answer 503 to reads and writes and end watch streams, so instances fall back to their
    /// local breakers after `stale_ttl`.
    Closed,
}

impl FailMode {
    /// The flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

/// Everything a registry needs to run.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Listen address (default `127.0.0.1:9911`: loopback unless asked otherwise).
    pub listen: SocketAddr,
    /// The backend.
    pub backend: BackendConfig,
    /// Memory backend: where toggles, overrides, the degradation setting and policies are
    /// kept across restarts.
    pub snapshot: Option<PathBuf>,
    /// Behaviour while the backend is down.
    pub fail_mode: FailMode,
    /// Token of the reporter role (reports, probe leases, reads).
    pub reporter_token: String,
    /// Token of the operator role (overrides, toggles, levels, policies, reads).
    pub operator_token: String,
    /// Lease lifetime when the request names none (default 10 s).
    pub lease_ttl: Duration,
    /// Longest lease a request may ask for (default 60 s).
    pub max_lease_ttl: Duration,
    /// Events kept for `Last-Event-ID` resumes (default 1024).
    pub ring_size: usize,
    /// Heartbeat comment interval on watch streams (default 5 s).
    pub heartbeat: Duration,
    /// Largest report body (default 1 MiB).
    pub max_report_bytes: usize,
    /// Largest body of every other request (default 64 KiB).
    pub max_body_bytes: usize,
}

impl RegistryConfig {
    /// A memory registry on `listen` with these tokens and every other default.
    pub fn new(listen: SocketAddr, reporter_token: &str, operator_token: &str) -> RegistryConfig {
        RegistryConfig {
            listen,
            backend: BackendConfig::Memory,
            snapshot: None,
            fail_mode: FailMode::Open,
            reporter_token: reporter_token.to_string(),
            operator_token: operator_token.to_string(),
            lease_ttl: Duration::from_secs(10),
            max_lease_ttl: Duration::from_secs(60),
            ring_size: 1024,
            heartbeat: Duration::from_secs(5),
            max_report_bytes: 1024 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }

    /// Why this config cannot run, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.reporter_token.is_empty() || self.operator_token.is_empty() {
            return Err(
                "both tokens are required: set LEVEE_REGISTRY_REPORTER_TOKEN and \
                 LEVEE_REGISTRY_OPERATOR_TOKEN (writes need a bearer token, SPEC §9)"
                    .into(),
            );
        }
        if self.reporter_token == self.operator_token {
            return Err(
                "the reporter and operator tokens are the same: use two different secrets, \
                 or every instance could change overrides and toggles"
                    .into(),
            );
        }
        if self.ring_size == 0 {
            return Err("ring size is 0: keep at least one event for resumes, e.g. 1024".into());
        }
        if self.lease_ttl.is_zero() || self.max_lease_ttl < self.lease_ttl {
            return Err("lease ttl must be above 0 and at most the maximum lease ttl".into());
        }
        if self.heartbeat.is_zero() {
            return Err("heartbeat is 0s: use e.g. 5s".into());
        }
        if self.snapshot.is_some() && self.backend != BackendConfig::Memory {
            return Err(
                "--snapshot is for the memory backend: Redis already keeps the state".into(),
            );
        }
        Ok(())
    }
}

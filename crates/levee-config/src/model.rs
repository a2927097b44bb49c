//! The shape of the config file (SPEC §12). Every key has the SPEC default, so a minimal file
//! needs only `listeners`, `upstreams` and `routes`. Unknown keys are errors everywhere.
//!
//! Every type derives `PartialEq`, so a reload can compare the running config with the new one
//! (`old == new`, or [`crate::diff`] for what changed) and skip work when nothing did.
//! Policy blocks (`breaker`, `bulkhead`, `retry`, `rate_limit`) are levee-core's own config
//! types, so the file, the vectors and the Go SDK share one shape.

use levee_core::breaker::BreakerConfig;
use levee_core::bulkhead::BulkheadConfig;
use levee_core::duration::serde_str;
use levee_core::fault::FaultSpec;
use levee_core::outcome::StatusSet;
use levee_core::rate_limit::RateLimitConfig;
use levee_core::retry::RetryConfig;
use levee_core::Criticality;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This instance's service name (the `service` metric label).
    #[serde(default = "default_service")]
    pub service: String,
    /// Where traffic comes in.
    pub listeners: Vec<ListenerConfig>,
    /// The admin listener: health, metrics, API, dashboard.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Fleet state.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Limits against slow or hostile clients.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Graceful shutdown.
    #[serde(default)]
    pub drain: DrainConfig,
    /// Fault injection switches (the faults themselves are per route).
    #[serde(default)]
    pub faults: FaultsConfig,
    /// Named upstream clusters.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Routes, matched in order; the first match wins.
    pub routes: Vec<RouteConfig>,
}

fn default_service() -> String {
    "levee".to_string()
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// A name for logs and metrics.
    #[serde(default = "default_listener_name")]
    pub name: String,
    /// `host:port`; port 0 picks a free port (logged and shown in /health).
    pub address: String,
    /// TLS with ALPN (h2, http/1.1); absent = plaintext HTTP/1.1 and h2c prior knowledge.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_listener_name() -> String {
    "ingress".to_string()
}

/// Certificate and key files (PEM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Loopback by default: the admin API is never exposed unless configured.
    pub address: String,
    /// Environment variable holding the bearer token for mutations. Unset or empty variable:
    /// every mutation is refused.
    pub token_env: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: "127.0.0.1:9901".into(),
            token_env: "LEVEE_ADMIN_TOKEN".into(),
        }
    }
}

/// `embedded` or `remote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegistryMode {
    /// In-process, memory.
    #[default]
    Embedded,
    /// A registry served by `levee registry` at `url`.
    Remote,
}

/// Fleet state (SPEC §9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// `embedded` (default) or `remote`.
    pub mode: RegistryMode,
    /// The remote registry's base URL.
    pub url: Option<String>,
    /// Storage for a registry served by `levee registry` (`redis://…`).
    pub backend: Option<String>,
    /// How long the last fleet state is trusted when the registry is unreachable.
    #[serde(with = "serde_str")]
    pub stale_ttl: Duration,
    /// How often outcome counts are reported.
    #[serde(with = "serde_str")]
    pub report_interval: Duration,
    /// Environment variable holding the reporter token.
    pub token_env: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mode: RegistryMode::Embedded,
            url: None,
            backend: None,
            stale_ttl: Duration::from_secs(30),
            report_interval: Duration::from_secs(1),
            token_env: "LEVEE_REGISTRY_TOKEN".into(),
        }
    }
}

/// Limits against slow and hostile clients (defaults in the spirit of Envoy's edge
/// recommendations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Time allowed to send the request head.
    #[serde(with = "serde_str")]
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Largest request body, in bytes (413 above it).
    pub max_body_bytes: u64,
    /// Time allowed to send the whole request body (408 after it).
    #[serde(with = "serde_str")]
    pub body_timeout: Duration,
    /// Keep-alive connections idle this long are closed.
    #[serde(with = "serde_str")]
    pub idle_timeout: Duration,
    /// Concurrent client connections per listener.
    pub max_connections: usize,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 stream resets a client may cause before the connection is closed (rapid reset).
    pub h2_max_pending_reset_streams: usize,
    /// Bodies up to this size are buffered so a retry can replay them; larger ones stream and
    /// are not retried.
    pub retry_buffer_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            h2_max_concurrent_streams: 256,
            h2_max_pending_reset_streams: 100,
            retry_buffer_bytes: 64 * 1024,
        }
    }
}

/// Graceful shutdown (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrainConfig {
    /// After SIGTERM, keep accepting this long (while /readyz says 503).
    #[serde(with = "serde_str")]
    pub delay: Duration,
    /// Then wait at most this long for in-flight requests.
    #[serde(with = "serde_str")]
    pub timeout: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            delay: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

/// `faults:`, the process-wide fault injection switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// When true, a request may ask for a fault with the `levee-fault` header, authorised by
    /// the admin token in `levee-fault-token`. Off by default: the headers are then ignored
    /// (and always stripped before forwarding).
    pub allow_headers: bool,
}

/// Load-balancing algorithm (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BalancerKind {
    /// Power of two choices over peak-EWMA latency × in-flight.
    #[default]
    P2cEwma,
    /// In turn.
    RoundRobin,
    /// Fewest in-flight requests (power of two choices).
    LeastRequest,
}

/// How Levee speaks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 prior knowledge (h2c): required for gRPC upstreams.
    H2c,
}

/// A named upstream cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` endpoints.
    pub endpoints: Vec<String>,
    /// Balancer.
    #[serde(default)]
    pub balancer: BalancerKind,
    /// Wire protocol to the endpoints.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// TCP connect timeout.
    #[serde(default = "default_connect_timeout", with = "serde_str")]
    pub connect_timeout: Duration,
    /// Active health checks; absent = none.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    /// Passive outlier ejection.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// Weight ramp for endpoints that become healthy; `0s` = off.
    #[serde(default = "default_slow_start", with = "serde_str")]
    pub slow_start: Duration,
    /// Statuses classified as failures (SPEC §1).
    #[serde(default)]
    pub failure_statuses: StatusSet,
    /// The upstream's breaker (key = upstream name).
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// The upstream's bulkhead.
    #[serde(default)]
    pub bulkhead: BulkheadConfig,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_slow_start() -> Duration {
    Duration::from_secs(30)
}

/// Active health checks (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Path requested with GET; 2xx is healthy.
    pub path: String,
    /// Time between checks.
    #[serde(default = "default_hc_interval", with = "serde_str")]
    pub interval: Duration,
    /// Per-check timeout.
    #[serde(default = "default_hc_timeout", with = "serde_str")]
    pub timeout: Duration,
    /// Consecutive passes to become healthy.
    #[serde(default = "default_healthy")]
    pub healthy: u32,
    /// Consecutive failures to become unhealthy.
    #[serde(default = "default_unhealthy")]
    pub unhealthy: u32,
}

fn default_hc_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_hc_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_healthy() -> u32 {
    2
}
fn default_unhealthy() -> u32 {
    3
}

/// Passive outlier ejection (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Failures in a row that eject an endpoint; 0 = off.
    pub consecutive_failures: u32,
    /// First ejection time; multiplied by the number of ejections.
    #[serde(with = "serde_str")]
    pub base_ejection: Duration,
    /// Never eject more than this percent of an upstream's endpoints (at least one stays).
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection_percent: 50,
        }
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A name for logs, metrics (`route` label) and the `upstream/route` breaker key; default
    /// `route<N>` (1-based).
    #[serde(default)]
    pub name: Option<String>,
    /// What the route matches; every given condition must hold.
    #[serde(rename = "match", default)]
    pub matcher: MatchConfig,
    /// The upstream name.
    pub upstream: String,
    /// The route's deadline (SPEC §5); absent = the inbound deadline only.
    #[serde(default, with = "serde_str::option")]
    pub timeout: Option<Duration>,
    /// Criticality when the request carries no `levee-criticality` header.
    #[serde(default)]
    pub criticality: Criticality,
    /// Retries; absent = the SPEC defaults.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Rate limit; absent = none.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Fallbacks, tried in order.
    #[serde(default)]
    pub fallback: FallbackConfig,
    /// A breaker of the route's own (key `upstream/route`) instead of the upstream's.
    #[serde(default)]
    pub breaker: Option<BreakerConfig>,
    /// A bulkhead partition of the route's own instead of the upstream's.
    #[serde(default)]
    pub bulkhead: Option<BulkheadConfig>,
    /// At this degradation level or above the route is shed (SPEC §10).
    #[serde(default)]
    pub shed_at_level: Option<u8>,
    /// Faults injected into the route's attempts (drills); absent = none. The admin API can
    /// replace it at runtime (`PUT /api/faults/{route}`).
    #[serde(default)]
    pub fault: Option<FaultSpec>,
}

impl RouteConfig {
    /// The route's name: `name`, or `route<N>` with N the 1-based position of the route
    /// (`index` is 0-based). Every consumer uses this, so logs, metrics and breaker keys agree.
    pub fn name_or_default(&self, index: usize) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("route{}", index + 1),
        }
    }
}

/// Route match conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    /// Path starts with this (segment-aware: `/inv` does not match `/inventory`).
    pub path_prefix: Option<String>,
    /// Path equals this.
    pub path: Option<String>,
    /// Host (without port), case-insensitive; `*.example.com` wildcards one label.
    pub host: Option<String>,
    /// Methods, any of.
    pub methods: Vec<String>,
    /// Headers that must be present with exactly these values.
    pub headers: BTreeMap<String, String>,
}

/// Fallbacks (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// Serve the last good response of a cacheable GET.
    pub stale_if_error: Option<StaleIfErrorConfig>,
    /// A fixed degraded answer.
    #[serde(rename = "static")]
    pub static_response: Option<StaticFallbackConfig>,
}

/// `stale_if_error: {max_stale, max_bytes}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleIfErrorConfig {
    /// Oldest response served.
    #[serde(with = "serde_str")]
    pub max_stale: Duration,
    /// Cache size bound for the route (LRU by bytes).
    #[serde(default = "default_stale_bytes")]
    pub max_bytes: u64,
}

fn default_stale_bytes() -> u64 {
    16 * 1024 * 1024
}

/// `static: {status, headers, body}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticFallbackConfig {
    /// Status code.
    #[serde(default = "default_static_status")]
    pub status: u16,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body text.
    #[serde(default)]
    pub body: String,
}

fn default_static_status() -> u16 {
    200
}

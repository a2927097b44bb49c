//! # levee-registry
//!
//! The registry holds fleet-wide state that every Levee instance — proxy, Rust library, Go
//! SDK — shares, so that all callers of an endpoint agree (SPEC §9, §10):
//!
//! - **Fleet breakers.** Instances report batched outcome counts per endpoint key and second
//!   (`POST /v1/reports`); the registry sums them and applies SPEC §2 to the fleet totals
//!   through levee-core's own breaker (`levee_core::fleet`). Only the rate rules apply to the
//!   fleet: `consecutive_failures` needs the order of calls, which batched counts do not carry,
//!   so it stays with each instance's local breaker.
//! - **Probe leases.** While a fleet breaker is half-open, a call may go only with a lease
//!   (`POST /v1/breakers/{key}/leases`); at most `half_open.permitted_calls` are out at once,
//!   fleet-wide. A lease not completed within its TTL counts as a `cancelled` probe and frees
//!   its slot.
//! - **Operator controls.** Overrides (`forced_open`, `disabled`, `observe`), toggles (`on`,
//!   `off`, a percentage bucketed by FNV-1a 64 of `name:key` mod 100, see
//!   `levee_core::fleet::toggle_bucket`), the degradation level 0–3 with rules such as
//!   `open_breakers >= 30%`, and breaker policies with versions.
//! - **The watch stream.** `GET /v1/watch` (SSE) carries every change with a monotonically
//!   increasing id; a client resumes with `Last-Event-ID` and gets a full snapshot first when
//!   its id is older than the ring of recent events.
//!
//! Backends: memory (default, optionally persisted to a snapshot file) and Redis for several
//! replicas sharing state (see [`store`]). Writes need a bearer token; reporters and operators
//! have different tokens ([`http`]). The server listens on `127.0.0.1:9911` by default.
//!
//! `levee registry` ([`cli`]) runs it; tests and embedders call [`start`].

pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod hub;
pub mod registry;
pub mod snapshot;
pub mod store;
mod sync;

use crate::config::BackendConfig;
use crate::hub::Hub;
use crate::registry::Registry;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::Store;
use levee_core::Clock;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{FailMode, RedisConfig, RegistryConfig};

/// Why the registry could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration cannot work (the message says how to fix it).
    Config(String),
    /// The snapshot file could not be read or restored.
    Snapshot(String),
    /// The listen address could not be bound.
    Bind(SocketAddr, std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(m) | StartError::Snapshot(m) => f.write_str(m),
            StartError::Bind(addr, e) => write!(
                f,
                "cannot listen on {addr}: {e} (is another registry running? choose another \
                 --listen address)"
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// A running registry.
pub struct Running {
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Stops serving: watch streams end, in-flight requests finish (within 5 s).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Starts a registry with `config` on `clock` (the production clock is
/// [`clock::UnixClock`]; tests pass a `ManualClock`).
pub async fn start(config: RegistryConfig, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    config.validate().map_err(StartError::Config)?;
    let hub = Arc::new(Hub::new(config.ring_size));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut saved = None;
    let (store, redis) = match &config.backend {
        BackendConfig::Memory => {
            if let Some(path) = &config.snapshot {
                saved = snapshot::load(path).map_err(StartError::Snapshot)?;
            }
            // Ids continue after the saved ones and after any earlier run's (time-based), so
            // a watcher resuming across a restart never mistakes new events for old ones.
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            let start = saved
                .as_ref()
                .map_or(0, |s: &registry::SavedState| s.last_event_id)
                .max(now_ms);
            (Store::Memory(MemoryStore::new(hub.clone(), start)), None)
        }
        BackendConfig::Redis(redis_config) => {
            let r = Arc::new(
                RedisStore::new(redis_config.clone(), config.ring_size)
                    .map_err(StartError::Config)?,
            );
            (Store::Redis(r.clone()), Some(r))
        }
    };
    let registry = Arc::new(Registry::new(store, hub, clock, config.clone()));
    if let Some(saved) = &saved {
        registry
            .restore(saved)
            .await
            .map_err(|e| StartError::Snapshot(format!("cannot restore the snapshot: {e}")))?;
    }
    let mut tasks = Vec::new();
    if let Some(r) = redis {
        tasks.push(tokio::spawn(sync::run(
            registry.clone(),
            r.clone(),
            shutdown_rx.clone(),
        )));
        sync::wait_connected(&r, r.config().timeout * 2).await;
        if !r.connected() {
            tracing::warn!(url = %r.config().url, "Redis is not reachable yet; starting degraded and retrying");
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Bind(config.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.listen, e))?;
    let app = http::App {
        registry: registry.clone(),
        shutdown: shutdown_rx.clone(),
    };
    let mut stop = shutdown_rx;
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, http::router(app))
            .with_graceful_shutdown(async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "registry server stopped");
        }
    });
    Ok(Running {
        addr,
        registry,
        shutdown,
        server,
        tasks,
    })
}

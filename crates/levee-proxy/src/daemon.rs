//! The whole `levee run` lifecycle: load, bind, serve, reload, drain, exit.
//!
//! 1. Load and validate the config (`levee_config::load`); bind every listener and the admin
//!    address (a bind error stops the start, naming the listener).
//! 2. Connect to the registry (`registry.mode`: start the embedded one, or reach the remote
//!    one; see [`fleet`](crate::fleet)), then serve traffic, the admin API (levee-admin over
//!    the proxy's [`AdminBackend`] view) and the reload watcher (SIGHUP and file changes).
//!    The registry being unreachable never delays or stops the start.
//! 3. On SIGTERM or SIGINT, drain (SPEC §8): `/readyz` answers 503 at once; listeners keep
//!    accepting for `drain.delay` so load balancers notice before connections are refused;
//!    then the listeners close, every connection finishes what it has in flight and closes,
//!    for at most `drain.timeout`; then the last outcome counts are sent to the registry (an
//!    embedded one stops), the admin listener closes and `run` returns `Ok`.
//!    A second signal during the delay skips the rest of the delay (an impatient operator).
//!
//! [`AdminBackend`]: levee_admin::AdminBackend

use crate::error::ProxyError;
use crate::fleet::Fleet;
use crate::proxy::Proxy;
use crate::reload;
use crate::server::{self, Server};
use levee_admin::AdminAuth;
use levee_telemetry::Metrics;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Where the daemon ended up listening, reported once it serves.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Each traffic listener's name and address.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The admin listener's address.
    pub admin: SocketAddr,
}

/// Called once the daemon serves (tests read the bound addresses from it).
pub type OnReady = Box<dyn FnOnce(&Ready) + Send>;

/// How to run.
pub struct Options {
    /// The config file.
    pub config_path: PathBuf,
    /// Time between two looks at the config file.
    pub poll: Duration,
    /// Called once everything is bound and serving.
    pub on_ready: Option<OnReady>,
}

impl Options {
    /// Runs `config_path` with the default poll interval.
    pub fn new(config_path: impl Into<PathBuf>) -> Self {
        Options {
            config_path: config_path.into(),
            poll: reload::DEFAULT_POLL,
            on_ready: None,
        }
    }
}

/// Runs until SIGTERM or SIGINT, then drains. Must run inside a tokio runtime.
pub async fn run(options: Options) -> Result<(), ProxyError> {
    let path = options.config_path;
    let load_path = path.clone();
    let config = tokio::task::spawn_blocking(move || levee_config::load(&load_path))
        .await
        .map_err(|e| ProxyError::Io(format!("the config loader stopped: {e}")))?
        .map_err(|e| ProxyError::Load(e.problems().iter().map(ToString::to_string).collect()))?;

    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| ProxyError::Io(format!("cannot listen for SIGTERM: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| ProxyError::Io(format!("cannot listen for SIGINT: {e}")))?;

    let listeners = server::bind(&config).await?;
    let admin_listener = TcpListener::bind(&config.admin.address)
        .await
        .map_err(|source| ProxyError::Bind {
            listener: "admin".into(),
            address: config.admin.address.clone(),
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| ProxyError::Bind {
            listener: "admin".into(),
            address: config.admin.address.clone(),
            source,
        })?;
    let auth = AdminAuth::from_env(&config.admin.token_env);
    let metrics = Arc::new(Metrics::new(&config.service));
    let fleet = Fleet::start(&config).await?;
    let proxy = Proxy::with_fleet(config, metrics, Some(fleet.clone()))?;
    proxy.set_config_path(path.clone());

    let server = Server::start(&proxy, listeners);
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(levee_admin::serve(
        admin_listener,
        Arc::new(proxy.clone()),
        auth,
        admin_stopped,
    ));
    let watcher = reload::spawn(proxy.clone(), path, options.poll)?;

    let ready = Ready {
        listeners: server.addresses().to_vec(),
        admin: admin_addr,
    };
    tracing::info!(admin = %ready.admin, listeners = ?ready.listeners, "levee is serving");
    if let Some(on_ready) = options.on_ready {
        on_ready(&ready);
    }

    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: draining"),
        _ = interrupt.recv() => tracing::info!("SIGINT: draining"),
    }
    proxy.start_draining();
    let drain = proxy.config().drain.clone();
    tokio::select! {
        _ = tokio::time::sleep(drain.delay) => {}
        _ = terminate.recv() => tracing::warn!("second signal: skipping the rest of the drain delay"),
        _ = interrupt.recv() => tracing::warn!("second signal: skipping the rest of the drain delay"),
    }
    tracing::info!(
        in_flight = proxy.in_flight(),
        timeout_ms = u64::try_from(drain.timeout.as_millis()).unwrap_or(u64::MAX),
        "listeners closed; waiting for requests in flight"
    );
    let finished = server.shutdown(drain.timeout).await;
    if finished {
        tracing::info!("drained: every request finished");
    } else {
        tracing::warn!(
            in_flight = proxy.in_flight(),
            "drain.timeout reached with requests still in flight; stopping anyway"
        );
    }
    watcher.abort();
    fleet.shutdown().await;
    let _ = stop_admin.send(());
    let _ = admin.await;
    Ok(())
}

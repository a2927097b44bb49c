//! `levee registry`: runs the registry server until SIGINT or SIGTERM.
//!
//! Tokens come from the environment, never from flags (flags show up in `ps`):
//! `LEVEE_REGISTRY_REPORTER_TOKEN` for instances, `LEVEE_REGISTRY_OPERATOR_TOKEN` for operators.

use crate::clock::UnixClock;
use crate::config::{BackendConfig, FailMode, RedisConfig, RegistryConfig};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable holding the reporter token.
pub const REPORTER_TOKEN_ENV: &str = "LEVEE_REGISTRY_REPORTER_TOKEN";
/// Environment variable holding the operator token.
pub const OPERATOR_TOKEN_ENV: &str = "LEVEE_REGISTRY_OPERATOR_TOKEN";

fn duration(s: &str) -> Result<Duration, String> {
    levee_core::duration::parse(s).map_err(|e| e.to_string())
}

/// What the registry does while Redis is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailModeArg {
    /// Serve last known state, marked degraded; writes answer 503.
    Open,
    /// Answer 503 to everything but /healthz and end watch streams.
    Closed,
}

/// `levee registry` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to listen on. Loopback by default: exposing the registry is a choice.
    #[arg(long, default_value = "127.0.0.1:9911")]
    pub listen: SocketAddr,
    /// `memory` (one registry) or `redis://[:password@]host:port[/db]` (replicas sharing
    /// state).
    #[arg(long, default_value = "memory")]
    pub backend: String,
    /// Memory backend: keep toggles, overrides, levels and policies in this file across
    /// restarts.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// While Redis is down: `open` serves last known state, `closed` answers 503.
    #[arg(long, value_enum, default_value = "open")]
    pub fail_mode: FailModeArg,
    /// Probe lease lifetime when a request names none.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub lease_ttl: Duration,
    /// Longest probe lease a request may ask for.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub max_lease_ttl: Duration,
    /// Events kept for Last-Event-ID resumes.
    #[arg(long, default_value_t = 1024)]
    pub ring_size: usize,
    /// Heartbeat interval on watch streams.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub heartbeat: Duration,
    /// Bound of every Redis call.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub redis_timeout: Duration,
    /// How often Redis is pinged (and retried when lost).
    #[arg(long, default_value = "500ms", value_parser = duration)]
    pub redis_ping_interval: Duration,
    /// Prefix of every Redis key and channel.
    #[arg(long, default_value = "levee:")]
    pub redis_prefix: String,
}

impl Args {
    /// The registry config these flags and the token variables describe.
    pub fn config(&self) -> Result<RegistryConfig, String> {
        let token = |name: &str| std::env::var(name).unwrap_or_default();
        let mut config = RegistryConfig::new(
            self.listen,
            &token(REPORTER_TOKEN_ENV),
            &token(OPERATOR_TOKEN_ENV),
        );
        config.backend = match self.backend.as_str() {
            "memory" => BackendConfig::Memory,
            url if url.starts_with("redis://") => BackendConfig::Redis(RedisConfig {
                timeout: self.redis_timeout,
                ping_interval: self.redis_ping_interval,
                prefix: self.redis_prefix.clone(),
                ..RedisConfig::new(url)
            }),
            other => {
                return Err(format!(
                    "--backend `{other}` is not understood: use `memory` or \
                     `redis://host:port`"
                ))
            }
        };
        config.snapshot = self.snapshot.clone();
        config.fail_mode = match self.fail_mode {
            FailModeArg::Open => FailMode::Open,
            FailModeArg::Closed => FailMode::Closed,
        };
        config.lease_ttl = self.lease_ttl;
        config.max_lease_ttl = self.max_lease_ttl;
        config.ring_size = self.ring_size;
        config.heartbeat = self.heartbeat;
        config.validate()?;
        Ok(config)
    }
}

async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the registry until SIGINT/SIGTERM. Prints `levee registry listening on http://ADDR`
/// on stdout once it accepts connections.
pub fn run(args: Args) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let config = args.config()?;
    if !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "the registry listens beyond loopback: protect the tokens and the network path");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let running = crate::start(config.clone(), Arc::new(UnixClock))
            .await
            .map_err(|e| e.to_string())?;
        let backend = match &config.backend {
            BackendConfig::Memory => "memory".to_string(),
            BackendConfig::Redis(r) => r.url.clone(),
        };
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "levee registry listening on {} (backend {backend}, fail-mode {})",
                running.url(),
                config.fail_mode.as_str()
            );
            let _ = out.flush();
        }
        terminated().await;
        tracing::info!("registry stopping");
        running.stop().await;
        Ok(())
    })
}

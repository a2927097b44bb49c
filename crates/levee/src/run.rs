//! `levee run --config FILE`: logging, a tokio runtime, and levee-proxy's daemon lifecycle
//! (the registry connection — an embedded registry started in this process by default, or a
//! remote `levee registry` —, listeners, admin API, hot reload, SIGTERM drain). Wiring only.
//!
//! Environment: `LEVEE_ADMIN_TOKEN` (or `admin.token_env`) guards admin mutations and is the
//! embedded registry's operator token; `LEVEE_REGISTRY_TOKEN` (or `registry.token_env`) is the
//! reporter token for a remote registry; `LEVEE_LOG` filters logs.

use levee_proxy::daemon;

/// Options of `levee run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    #[arg(long, short)]
    pub config: std::path::PathBuf,
    /// Human-readable logs instead of JSON lines (for a terminal).
    #[arg(long)]
    pub log_text: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: Args) -> Result<(), String> {
    levee_telemetry::init_logging(!args.log_text).map_err(|e| e.to_string())?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime
        .block_on(daemon::run(daemon::Options::new(args.config)))
        .map_err(|e| e.to_string())
}

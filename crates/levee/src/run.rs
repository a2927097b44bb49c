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
    /// Worker threads (default: one per core). 1 runs tokio's single-threaded scheduler, the
    /// cheapest way to run a one-core sidecar.
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: Args) -> Result<(), String> {
    levee_telemetry::init_logging(!args.log_text).map_err(|e| e.to_string())?;
    // One thread asked for: tokio's single-threaded scheduler, which skips the work-stealing
    // machinery (atomic task queues, cross-thread wake-ups) that one worker never uses.
    let mut builder = match args.threads {
        Some(threads) if threads <= 1 => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    let runtime = builder
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime
        .block_on(daemon::run(daemon::Options::new(args.config)))
        .map_err(|e| e.to_string());
    drop(runtime);
    // JSON lines are written in batches: the last ones (a drain's access lines) go out now.
    levee_telemetry::flush_logs();
    result
}

//! `pricing [--addr 127.0.0.1:7004] [--max-concurrent 8] [--timeout-ms 2000] [--rate 200/s]
//! [--burst N]`
//!
//! Prints exactly one line, `pricing listening on <addr>`, to stdout once bound (the demo
//! launcher reads the address from it; with `--addr 127.0.0.1:0` the port is chosen by the
//! system), then serves until SIGTERM or ctrl-c and exits 0 after letting calls in flight
//! finish (at most 5 s).

use clap::Parser;
use levee_core::rate_limit::Rate;
use pricing::{router, serve, App, Config};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// The pricing service of Levee's demo fleet.
#[derive(Debug, Parser)]
#[command(name = "pricing", version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7004")]
    addr: String,
    /// Price calls in flight at once; beyond it, sheddable calls are refused first.
    #[arg(long, default_value_t = 8)]
    max_concurrent: u32,
    /// The longest a price call may take, in milliseconds, whatever the caller allows.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Rate limit of the prices route, such as 200/s, 600/m or 5000/h.
    #[arg(long, default_value = "200/s")]
    rate: Rate,
    /// Requests allowed at once after a quiet spell (default: the rate's count).
    #[arg(long)]
    burst: Option<u64>,
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
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

fn main() -> ExitCode {
    let args = Args::parse();
    if args.timeout_ms == 0 {
        eprintln!("pricing: --timeout-ms must be above 0, e.g. --timeout-ms 2000");
        return ExitCode::from(2);
    }
    let config = Config {
        max_concurrent: args.max_concurrent,
        timeout: Duration::from_millis(args.timeout_ms),
        rate: args.rate,
        burst: args.burst,
    };
    let app = match router(App::new(), &config) {
        Ok(app) => app,
        Err(message) => {
            eprintln!("pricing: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pricing: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&args.addr).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!(
                    "pricing: cannot listen on {}: {e}; pick a free address with --addr, \
                     e.g. --addr 127.0.0.1:0",
                    args.addr
                );
                return ExitCode::FAILURE;
            }
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr.to_string(),
            Err(_) => args.addr.clone(),
        };
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "pricing listening on {addr}");
        let _ = stdout.flush();
        match serve(listener, app, shutdown_signal(), Duration::from_secs(5)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pricing: the server stopped: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

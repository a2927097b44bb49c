//! `levee`: the command line. Wiring only — every policy decision lives in `levee-core`.

mod allocator;
mod check;
mod demo;
mod drill;
mod registry;
mod run;
mod simulate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the proxy allocates and frees a few dozen small blocks
/// per request (hyper, http, tokio), and mimalloc's thread-local free lists make each of them
/// several times cheaper (docs/benchmarks.md, the proxy's profile).
#[global_allocator]
static GLOBAL: allocator::Mimalloc = allocator::Mimalloc;

/// Levee keeps mixed Go and Rust services usable when their dependencies fail.
#[derive(Parser)]
#[command(name = "levee", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the proxy: listeners, admin API and the policies of the config file.
    Run(run::Args),
    /// Validates a config file; errors name file:line:column and the fix.
    Check(check::Args),
    /// Replays a scripted outage of one upstream through Levee's policies on a virtual clock
    /// and prints what the breaker, bulkhead and retry budget decided, second by second.
    Simulate(simulate::Args),
    /// Starts the demo fleet (Go storefront and recommendations, Rust inventory and pricing)
    /// behind a levee sidecar with the registry and the dashboard, runs the bundled drill, and
    /// keeps running.
    Demo(demo::Args),
    /// Runs a drill: traffic, a fault timeline and SLO assertions against a running system;
    /// prints a report and exits 1 when an SLO fails (2 when the file is wrong).
    Drill(drill::Args),
    /// Runs the fleet registry: shared breaker state, probe leases, overrides, toggles,
    /// degradation levels and policies (tokens from LEVEE_REGISTRY_*_TOKEN).
    Registry(registry::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::run(&args),
        Command::Simulate(args) => simulate::run(&args, &mut std::io::stdout().lock()),
        Command::Registry(args) => registry::run(args),
        Command::Drill(args) => return drill_exit(drill::run(&args)),
        Command::Demo(args) => {
            return match demo::run(args) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(message) => {
                    eprintln!("levee demo: {message}");
                    ExitCode::from(2)
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("levee: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `levee drill`'s status: 0 every SLO held, 1 one failed, 2 the file is wrong.
fn drill_exit(result: Result<drill::Outcome, String>) -> ExitCode {
    match result {
        Ok(drill::Outcome::Passed) => ExitCode::SUCCESS,
        Ok(drill::Outcome::Failed) => ExitCode::from(1),
        Err(message) => {
            eprintln!("levee: {message}");
            ExitCode::from(2)
        }
    }
}

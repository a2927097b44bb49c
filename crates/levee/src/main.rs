//! `levee`: the command line. Wiring only — every policy decision lives in `levee-core`.

mod check;
mod registry;
mod run;
mod simulate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("levee: {message}");
            ExitCode::FAILURE
        }
    }
}

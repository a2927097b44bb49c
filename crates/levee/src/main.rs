//! `levee`: the command line. Wiring only — every policy decision lives in `levee-core`.

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
    /// Replays a scripted outage of one upstream through Levee's policies on a virtual clock
    /// and prints what the breaker, bulkhead and retry budget decided, second by second.
    Simulate(simulate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::run(&args, &mut std::io::stdout().lock()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("levee: {message}");
            ExitCode::FAILURE
        }
    }
}

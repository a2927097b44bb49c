//! `levee-registry`: the registry server on its own (the same as `levee registry`), so the
//! registry's end-to-end tests can start real processes.

use clap::Parser;
use std::process::ExitCode;

/// Levee's registry: fleet-wide breaker state, probe leases, overrides, toggles, degradation
/// levels and policies.
#[derive(Parser)]
#[command(name = "levee-registry", version, about)]
struct Cli {
    #[command(flatten)]
    args: levee_registry::cli::Args,
}

fn main() -> ExitCode {
    match levee_registry::cli::run(Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("levee registry: {message}");
            ExitCode::FAILURE
        }
    }
}

//! `levee registry`: the fleet registry server (SPEC §9, §10). Wiring only — the server, its
//! flags and its backends live in `levee-registry`.
//!
//! ```text
//! levee registry --listen 127.0.0.1:9911 [--backend memory|redis://host:port]
//!                [--snapshot FILE] [--fail-mode open|closed]
//! ```
//!
//! Tokens come from `LEVEE_REGISTRY_REPORTER_TOKEN` and `LEVEE_REGISTRY_OPERATOR_TOKEN`.

/// Options of `levee registry`.
pub use levee_registry::cli::Args;

/// Runs the registry until SIGINT or SIGTERM.
pub fn run(args: Args) -> Result<(), String> {
    levee_registry::cli::run(args)
}

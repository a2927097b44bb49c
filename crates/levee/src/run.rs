//! `levee run --config FILE` (being written).

/// Options of `levee run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    #[arg(long, short)]
    pub config: std::path::PathBuf,
}

pub fn run(args: Args) -> Result<(), String> {
    Err(format!("levee run --config {}: not available in this build yet", args.config.display()))
}

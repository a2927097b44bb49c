//! `levee check FILE` (being written).

/// Options of `levee check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    pub file: std::path::PathBuf,
}

pub fn run(args: &Args) -> Result<(), String> {
    Err(format!("levee check {}: not available in this build yet", args.file.display()))
}

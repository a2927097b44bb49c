//! `levee check FILE`: loads the config exactly as `levee run` would and reports the result.
//!
//! A good file prints `FILE: ok (N listeners, M upstreams, K routes)` on stdout and exits 0.
//! A bad one prints every problem to stderr as `file:line:column: key.path: message` (the form
//! compilers use, so editors and CI annotators jump to each line) and exits 1.

/// Options of `levee check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The config file.
    pub file: std::path::PathBuf,
}

/// Checks the file; `Err` carries the one-line summary `main` prints after the problems.
pub fn run(args: &Args) -> Result<(), String> {
    let file = args.file.display();
    match levee_config::load(&args.file) {
        Ok(config) => {
            println!("{file}: ok ({})", summary(&config));
            Ok(())
        }
        Err(error) => {
            eprintln!("{error}");
            let count = error.problems().len();
            Err(format!("{file}: {}", plural(count, "problem", "problems")))
        }
    }
}

/// `2 listeners, 1 upstream, 3 routes`.
fn summary(config: &levee_config::Config) -> String {
    format!(
        "{}, {}, {}",
        plural(config.listeners.len(), "listener", "listeners"),
        plural(config.upstreams.len(), "upstream", "upstreams"),
        plural(config.routes.len(), "route", "routes")
    )
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_plurals() {
        assert_eq!(plural(1, "route", "routes"), "1 route");
        assert_eq!(plural(0, "route", "routes"), "0 routes");
        assert_eq!(plural(3, "route", "routes"), "3 routes");
    }
}

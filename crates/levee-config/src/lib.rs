//! # levee-config
//!
//! The only crate that parses the config file (STYLE point 8): YAML into the typed [`Config`],
//! with errors that name the file, line and column and say how to fix them (SPEC §12).
//!
//! ```
//! let text = "
//! listeners: [{address: 127.0.0.1:8080}]
//! upstreams:
//!   inventory: {endpoints: [127.0.0.1:7001]}
//! routes:
//!   - {match: {path_prefix: /inventory}, upstream: inventory, timeout: 800ms}
//! ";
//! let config = levee_config::parse(text, "levee.yaml").expect("valid");
//! assert_eq!(config.routes[0].upstream, "inventory");
//!
//! let err = levee_config::parse(&text.replace("800ms", "800"), "levee.yaml").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "levee.yaml:6:70: routes[0].timeout: duration `800` has no unit: write `800ms` or \
//!      `800s` (units: ns, us, ms, s, m, h)"
//! );
//! ```
//!
//! ## Errors
//!
//! A [`ConfigError`] lists every [`Problem`] found, in file order, each displayed as
//! `file:line:column: key.path: message` — the form compilers use, so editors jump to it.
//! Syntax errors stop the reading; otherwise type errors are reported one per broken block,
//! and when the types are right every semantic check runs and reports (see `loader`).
//!
//! ## Reloads
//!
//! A reload calls [`load`] again. When it fails, the running config stays in force and the
//! problems are logged: a typo in a live edit never takes routes down (SPEC §12). When it
//! succeeds, `old == new` (every type derives `PartialEq`) says whether anything changed, and
//! [`diff`] says what.

mod de;
mod diff;
mod document;
mod error;
mod loader;
mod model;
mod path;
mod suggest;
mod validate;
mod yaml;

pub use diff::{diff, ConfigDiff};
pub use document::{parse_document, Located};
pub use error::{ConfigError, Problem};
pub use loader::MAX_FILE_BYTES;
pub use model::*;

use std::path::Path;

/// Reads, parses and checks the config file at `path`.
///
/// Relative TLS `cert` and `key` paths are resolved against the file's directory, checked to
/// exist, and returned absolute. Problems name the file as `path` was written.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    loader::load(path.as_ref())
}

/// Parses and checks config text; `file_name` names it in problems.
///
/// Touches no files: TLS `cert` and `key` are not checked or resolved (use [`load`], or
/// [`parse_in`] to give the directory they are relative to).
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
    loader::parse(text, file_name, None)
}

/// Parses and checks config text as if the file were in `base_dir`: relative TLS files are
/// resolved against it, checked to exist, and returned absolute, as [`load`] does.
pub fn parse_in(text: &str, file_name: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    loader::parse(text, file_name, Some(base_dir))
}

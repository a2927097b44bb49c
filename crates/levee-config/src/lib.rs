//! # levee-config
//!
//! The only crate that parses the config file (STYLE point 8): YAML into the typed [`Config`],
//! with errors that name the file, line and column and say how to fix them (SPEC §12).

mod model;

pub use model::*;

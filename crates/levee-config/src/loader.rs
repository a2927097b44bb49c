//! From text to a checked [`Config`], collecting every problem on the way.
//!
//! Three stages, each reporting as much as it can before the next:
//!
//! 1. YAML: syntax errors stop here (nothing after them can be trusted); duplicate keys are
//!    reported and the first of each kept.
//! 2. Types: the tree is deserialized into [`Config`]. Serde stops at the first error, so when
//!    that fails every key of every block (each listener, upstream and route, and the
//!    top-level blocks) is deserialized again on its own, to report one error per broken key
//!    rather than only the first in the file.
//! 3. Meaning: the checks of [`crate::validate`] on the typed config, which need every block
//!    to have parsed, so they run only when stage 2 succeeded.

use crate::de::{from_node, DeError};
use crate::error::{ConfigError, Problem};
use crate::model::{
    AdminConfig, Config, DrainConfig, FaultsConfig, LimitsConfig, ListenerConfig, RegistryConfig,
    RouteConfig, UpstreamConfig,
};
use crate::path::KeyPath;
use crate::validate;
use crate::yaml::{self, Entry, Kind, Node, Pos};
use serde::de::{DeserializeOwned, Error as _};
use std::collections::BTreeMap;
use std::path::Path;

/// Largest config file read. Real ones are a few kilobytes; this bounds the work a hostile
/// or mistaken file (a log, a binary) can cause.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The top-level keys, in `Config`'s order (serde's own list is private to the derive; a test
/// checks this one against it).
pub(crate) const CONFIG_KEYS: &[&str] = &[
    "service",
    "listeners",
    "admin",
    "registry",
    "limits",
    "drain",
    "faults",
    "upstreams",
    "routes",
];

/// The keys a minimal file must have.
const REQUIRED_KEYS: [&str; 3] = ["listeners", "upstreams", "routes"];

/// Reads and checks `path`; TLS files are resolved against its directory.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::whole_file(&file, format!("cannot read the config file: {e}")))?;
    if meta.is_dir() {
        return Err(ConfigError::whole_file(
            &file,
            "is a directory: give the config file itself, such as levee.yaml".to_string(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(too_large(&file));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::whole_file(&file, format!("cannot read the config file: {e}")))?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let valid = String::from_utf8_lossy(valid);
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return Err(ConfigError::new(
                &file,
                vec![Problem {
                    file: file.clone(),
                    line,
                    column,
                    path: String::new(),
                    message: "the file is not UTF-8 text: save it as UTF-8".to_string(),
                }],
            ));
        }
    };
    let base = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(".").to_path_buf());
    parse(&text, &file, Some(&base))
}

fn too_large(file: &str) -> ConfigError {
    ConfigError::whole_file(
        file,
        format!(
            "the file is larger than {} MiB: a Levee config is a few kilobytes; is this the \
             right file?",
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
}

/// Parses and checks `text`; with `base_dir`, TLS files are checked and resolved against it.
pub(crate) fn parse(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
) -> Result<Config, ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(file));
    }
    // The parser is a dependency; a bug in it must not take down a running proxy whose
    // reload hit an odd file. The panic is still printed by the hook, and reported here.
    let outcome = std::panic::catch_unwind(|| parse_unguarded(text, file, base_dir));
    outcome.unwrap_or_else(|_| {
        Err(ConfigError::whole_file(
            file,
            "internal error while reading the file (a bug in Levee; please report it with the \
             file); the file was not loaded"
                .to_string(),
        ))
    })
}

fn parse_unguarded(text: &str, file: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
    let problem = |pos: Pos, path: String, message: String| Problem {
        file: file.to_string(),
        line: pos.line,
        column: pos.column,
        path,
        message,
    };
    let document = yaml::read(text)
        .map_err(|p| ConfigError::new(file, vec![problem(p.pos, p.path, p.message)]))?;
    let mut problems: Vec<Problem> = document
        .problems
        .into_iter()
        .map(|p| problem(p.pos, p.path, p.message))
        .collect();
    let root = match document.root {
        Some(root) if !root.is_null() => root,
        _ => {
            problems.push(problem(
                Pos::START,
                String::new(),
                "the file has no settings: a config needs at least `listeners`, `upstreams` \
                 and `routes` (see examples/minimal.yaml)"
                    .to_string(),
            ));
            return Err(ConfigError::new(file, problems));
        }
    };
    let to_problem = |e: DeError| {
        problem(
            e.pos.unwrap_or(root.pos),
            e.path.map(|p| p.to_string()).unwrap_or_default(),
            e.message,
        )
    };
    match deserialize(&root) {
        Err(errors) => {
            problems.extend(errors.into_iter().map(to_problem));
            Err(ConfigError::new(file, problems))
        }
        Ok(mut config) => {
            problems.extend(validate::check(&config, &root, file, base_dir));
            if !problems.is_empty() {
                return Err(ConfigError::new(file, problems));
            }
            if let Some(base) = base_dir {
                resolve_files(&mut config, base);
            }
            Ok(config)
        }
    }
}

/// Makes TLS file paths absolute, so the proxy needs no knowledge of where the config was.
fn resolve_files(config: &mut Config, base: &Path) {
    for listener in &mut config.listeners {
        if let Some(tls) = &mut listener.tls {
            tls.cert = validate::resolve(base, &tls.cert)
                .to_string_lossy()
                .into_owned();
            tls.key = validate::resolve(base, &tls.key)
                .to_string_lossy()
                .into_owned();
        }
    }
}

/// Stage 2: the typed config, or as many errors as can be told apart.
fn deserialize(root: &Node) -> Result<Config, Vec<DeError>> {
    let first = match from_node::<Config>(root, KeyPath::root()) {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    let mut errors = vec![first];
    let Kind::Map(entries) = &root.kind else {
        return Err(errors);
    };
    let top = KeyPath::root();
    for entry in entries {
        let key = entry.key.as_text().unwrap_or_default();
        let at = top.key(key);
        let value = &entry.value;
        match key {
            "service" => push_err(&mut errors, from_node::<String>(value, at)),
            "admin" => each_key::<AdminConfig>(value, &at, &mut errors),
            "registry" => each_key::<RegistryConfig>(value, &at, &mut errors),
            "limits" => each_key::<LimitsConfig>(value, &at, &mut errors),
            "drain" => each_key::<DrainConfig>(value, &at, &mut errors),
            "faults" => each_key::<FaultsConfig>(value, &at, &mut errors),
            "listeners" => each_item::<ListenerConfig>(value, &at, &mut errors),
            "routes" => each_item::<RouteConfig>(value, &at, &mut errors),
            "upstreams" => match &value.kind {
                Kind::Map(upstreams) => {
                    for upstream in upstreams {
                        let name = upstream.key.as_text().unwrap_or_default();
                        each_key::<UpstreamConfig>(&upstream.value, &at.key(name), &mut errors);
                    }
                }
                _ => push_err(
                    &mut errors,
                    from_node::<BTreeMap<String, UpstreamConfig>>(value, at),
                ),
            },
            _ => errors.push(DeError::unknown_field(key, CONFIG_KEYS).at(&entry.key, &at)),
        }
    }
    for key in REQUIRED_KEYS {
        if root.get(key).is_none() {
            errors.push(DeError::missing_field(key).at(root, &top));
        }
    }
    // The first error is found again by the finer passes; keep one of each.
    let mut unique: Vec<DeError> = Vec::with_capacity(errors.len());
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    Err(unique)
}

fn push_err<T>(errors: &mut Vec<DeError>, result: Result<T, DeError>) {
    if let Err(e) = result {
        errors.push(e);
    }
}

/// Each item of a list, checked key by key (a non-list gets the list's own error).
fn each_item<T: DeserializeOwned>(list: &Node, at: &KeyPath, errors: &mut Vec<DeError>) {
    match &list.kind {
        Kind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                each_key::<T>(item, &at.index(i), errors);
            }
        }
        _ => push_err(errors, from_node::<Vec<T>>(list, at.clone())),
    }
}

/// The errors of a block `T`, key by key: serde stops at a block's first error, so each key
/// is deserialized alone (as a block holding only that key, where the block's other required
/// keys are missing on purpose and not reported), then the keys that passed together, which
/// finds the keys really missing.
fn each_key<T: DeserializeOwned>(block: &Node, at: &KeyPath, errors: &mut Vec<DeError>) {
    let Kind::Map(entries) = &block.kind else {
        push_err(errors, from_node::<T>(block, at.clone()));
        return;
    };
    let alone = |kept: Vec<Entry>| Node {
        pos: block.pos,
        kind: Kind::Map(kept),
    };
    // A key missing from this very block is expected when only some keys are there; one
    // missing deeper down is a real problem of the key's value.
    let here = |e: &DeError| e.missing.is_some() && e.path.as_ref() == Some(at);
    let mut good = Vec::with_capacity(entries.len());
    for entry in entries {
        match from_node::<T>(&alone(vec![entry.clone()]), at.clone()) {
            Err(e) if !here(&e) => errors.push(e),
            _ => good.push(entry.clone()),
        }
    }
    // The keys that passed, together: a key reported missing now is missing from the file,
    // unless it is one of the broken keys left out (already reported).
    if let Err(e) = from_node::<T>(&alone(good), at.clone()) {
        let left_out = here(&e) && e.missing.is_some_and(|key| block.get(key).is_some());
        if !left_out {
            errors.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_match_the_model() {
        let err = crate::parse("bogus: 1\n", "x.yaml").expect_err("unknown key");
        let allowed = format!("(allowed here: {})", CONFIG_KEYS.join(", "));
        assert!(
            err.problems()[0].message.ends_with(&allowed),
            "{}",
            err.problems()[0].message
        );
    }
}

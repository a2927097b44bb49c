//! Any YAML document of Levee's into a serde type, with the config file's error reporting.
//!
//! `levee drill` scenarios (and any future file Levee reads) get what `levee check` gives a
//! config: every problem as `file:line:column: key.path: message`, unknown keys with the
//! allowed ones and the closest suggested, durations and numbers explained in YAML words.
//! Semantic checks belong to the caller, which can position them with [`Located`] paths.

use crate::de::from_node;
use crate::error::{ConfigError, Problem};
use crate::loader::MAX_FILE_BYTES;
use crate::path::KeyPath;
use crate::yaml::{self, Kind, Node};
use serde::de::DeserializeOwned;

/// A parsed document and the positions of its keys, for the caller's own checks.
#[derive(Debug)]
pub struct Located<T> {
    /// The typed document.
    pub value: T,
    file: String,
    root: Node,
}

impl<T> Located<T> {
    /// A problem positioned at the node under `path` (`timeline[2].at`, `slos[0]`); the
    /// nearest existing ancestor when the key itself is absent, the document start at worst.
    pub fn problem(&self, path: &str, message: impl Into<String>) -> Problem {
        let node = find(&self.root, path).unwrap_or(&self.root);
        Problem {
            file: self.file.clone(),
            line: node.pos.line,
            column: node.pos.column,
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// The file name problems carry.
    pub fn file(&self) -> &str {
        &self.file
    }
}

/// Parses `text` (named `file` in problems) as a `T`; syntax and type errors are reported
/// like the config file's.
pub fn parse_document<T: DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<Located<T>, ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigError::whole_file(
            file,
            format!(
                "the file is larger than {} MiB: is this the right file?",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
    }
    let problem = |line: usize, column: usize, path: String, message: String| Problem {
        file: file.to_string(),
        line,
        column,
        path,
        message,
    };
    let document = yaml::read(text).map_err(|p| {
        ConfigError::new(
            file,
            vec![problem(p.pos.line, p.pos.column, p.path, p.message)],
        )
    })?;
    let problems: Vec<Problem> = document
        .problems
        .into_iter()
        .map(|p| problem(p.pos.line, p.pos.column, p.path, p.message))
        .collect();
    let Some(root) = document.root.filter(|root| !root.is_null()) else {
        return Err(ConfigError::whole_file(
            file,
            "the file is empty".to_string(),
        ));
    };
    if !problems.is_empty() {
        return Err(ConfigError::new(file, problems));
    }
    match from_node::<T>(&root, KeyPath::root()) {
        Ok(value) => Ok(Located {
            value,
            file: file.to_string(),
            root,
        }),
        Err(e) => {
            let pos = e.pos.unwrap_or(root.pos);
            let path = e.path.map(|p| p.to_string()).unwrap_or_default();
            Err(ConfigError::new(
                file,
                vec![problem(pos.line, pos.column, path, e.message)],
            ))
        }
    }
}

/// The node at a dotted path with list indices (`slos[1].breaker_open`).
fn find<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    let mut node = root;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indices) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            node = node.get(key)?;
        }
        for index in indices
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .map(str::parse::<usize>)
        {
            let Kind::Seq(items) = &node.kind else {
                return None;
            };
            node = items.get(index.ok()?)?;
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        steps: Vec<Step>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Step {
        #[serde(with = "levee_core::duration::serde_str")]
        at: std::time::Duration,
    }

    #[test]
    fn parses_and_positions_type_errors() {
        let ok = parse_document::<Doc>("name: x\nsteps:\n  - at: 2s\n", "d.yaml").unwrap();
        assert_eq!(ok.value.name, "x");
        assert_eq!(ok.value.steps[0].at, std::time::Duration::from_secs(2));
        let problem = ok.problem("steps[0].at", "too late");
        assert_eq!((problem.line, problem.column), (3, 9));
        assert_eq!(problem.to_string(), "d.yaml:3:9: steps[0].at: too late");

        let err = parse_document::<Doc>("name: x\nsteps:\n  - at: 2\n", "d.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("d.yaml:3:9: steps[0].at:"), "{text}");
        assert!(text.contains("2ms"), "{text}");

        let err = parse_document::<Doc>("name: x\nstep: []\n", "d.yaml").unwrap_err();
        assert!(err.to_string().starts_with("d.yaml:2:1: step:"), "{err}");
    }

    #[test]
    fn rejects_empty_and_broken_documents() {
        assert!(parse_document::<Doc>("", "d.yaml").is_err());
        let err = parse_document::<Doc>("name: [\n", "d.yaml").unwrap_err();
        assert!(err.to_string().starts_with("d.yaml:"), "{err}");
    }
}

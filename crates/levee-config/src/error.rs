//! What the loader reports: one [`Problem`] per mistake, each naming file, line, column and the
//! key path, and a [`ConfigError`] that holds them all.
//!
//! The display form is the one compilers use, `file:line:column: key.path: message`, one
//! problem per line, so editors and CI annotators can jump to each mistake. Messages say what
//! is wrong and how to fix it; the key path says which setting, even when the position is the
//! enclosing block (for example a key that was left out).

use std::fmt;

/// One mistake in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as it was named to [`crate::load`] or [`crate::parse`].
    pub file: String,
    /// 1-based line; 0 when the problem is about the whole file (it could not be read).
    pub line: usize,
    /// 1-based column, counted in characters; 0 when `line` is 0.
    pub column: usize,
    /// Where in the config, such as `routes[1].upstream` (list indices count from 0); empty
    /// for problems with the file as a whole, such as YAML syntax errors.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a config was rejected: one or more [`Problem`]s, in file order.
///
/// `Display` prints every problem on its own line. A reload that fails with this error must
/// keep the running config (SPEC §12) and log the problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// Builds an error from problems; they are sorted by position and exact repeats dropped.
    /// An empty list is replaced by one generic problem so that an error always says something.
    pub fn new(file: &str, mut problems: Vec<Problem>) -> ConfigError {
        problems.sort_by_key(|p| (p.line, p.column));
        let mut unique: Vec<Problem> = Vec::with_capacity(problems.len());
        for problem in problems {
            if !unique.contains(&problem) {
                unique.push(problem);
            }
        }
        if unique.is_empty() {
            unique.push(Problem {
                file: file.to_string(),
                line: 0,
                column: 0,
                path: String::new(),
                message: "the config was rejected".to_string(),
            });
        }
        ConfigError { problems: unique }
    }

    /// One problem about the whole file (it could not be read, or is too large).
    pub(crate) fn whole_file(file: &str, message: String) -> ConfigError {
        ConfigError::new(
            file,
            vec![Problem {
                file: file.to_string(),
                line: 0,
                column: 0,
                path: String::new(),
                message,
            }],
        )
    }

    /// Every problem, in file order (never empty).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the problems out.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: usize, column: usize, path: &str, message: &str) -> Problem {
        Problem {
            file: "levee.yaml".into(),
            line,
            column,
            path: path.into(),
            message: message.into(),
        }
    }

    #[test]
    fn displays_like_a_compiler() {
        assert_eq!(
            problem(3, 7, "routes[0].upstream", "no upstream named \"x\"").to_string(),
            "levee.yaml:3:7: routes[0].upstream: no upstream named \"x\""
        );
        assert_eq!(
            problem(1, 1, "", "YAML syntax error").to_string(),
            "levee.yaml:1:1: YAML syntax error"
        );
        assert_eq!(
            problem(0, 0, "", "cannot read").to_string(),
            "levee.yaml: cannot read"
        );
    }

    #[test]
    fn sorts_and_drops_repeats() {
        let err = ConfigError::new(
            "levee.yaml",
            vec![
                problem(5, 1, "b", "second"),
                problem(2, 3, "a", "first"),
                problem(5, 1, "b", "second"),
            ],
        );
        let lines: Vec<String> = err.problems().iter().map(|p| p.message.clone()).collect();
        assert_eq!(lines, ["first", "second"]);
        assert_eq!(err.to_string().lines().count(), 2);
    }

    #[test]
    fn never_empty() {
        assert_eq!(ConfigError::new("f", vec![]).problems().len(), 1);
    }
}

//! One configuration problem (`Problem`) and the collector every validator fills (`Problems`).
//!
//! The proxy's `--check`, its reload journal (`GET /admin/reloads`), the `[auth]` validation
//! shared with the gateway and `scalelab token` all report problems the same way: a TOML path,
//! the line when it is known, and a message. One type keeps their output and their JSON alike.

use serde::Serialize;
use std::fmt;

/// One problem found in a config file.
///
/// Serialized as `{"path", "line", "message"}`, the shape the reload journal has always shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A TOML path such as `routes[2].upstream` or `auth.algorithms[1]`; `(file)` for a syntax
    /// error, and empty when the file could not be read at all.
    pub path: String,
    /// 1-based line of the offending value, when it exists in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    /// A problem at `path` whose line is not known (yet).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        // A problem without a path (an unreadable file) would otherwise start with ": ".
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found so far. Validators keep going after the first one so that a single run
/// shows the user all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }

    /// Records problems found by another validator, in their order.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        self.0.extend(problems);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was found, every problem otherwise.
    ///
    /// # Errors
    /// Every recorded problem, in the order they were found.
    pub fn into_result<T>(self, value: T) -> Result<T, Vec<Problem>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn display_shows_the_line_and_path_only_when_known() {
        let mut problem = Problem::new("routes[0].upstream", "unknown upstream \"x\"");
        assert_eq!(
            problem.to_string(),
            "routes[0].upstream: unknown upstream \"x\""
        );
        problem.line = Some(7);
        assert_eq!(
            problem.to_string(),
            "line 7: routes[0].upstream: unknown upstream \"x\""
        );
        assert_eq!(
            Problem::new("", "cannot read config.toml").to_string(),
            "cannot read config.toml"
        );
    }

    #[test]
    fn serializes_as_the_reload_journal_shows_it() {
        let mut problem = Problem::new("proxy.threads", "0 is out of range 1..=256");
        problem.line = Some(2);
        assert_eq!(
            serde_json::to_string(&problem).unwrap(),
            r#"{"path":"proxy.threads","line":2,"message":"0 is out of range 1..=256"}"#
        );
    }

    #[test]
    fn into_result_is_ok_only_without_problems() {
        assert_eq!(Problems::new().into_result(5), Ok(5));
        let mut problems = Problems::new();
        problems.push("a", "first");
        problems.extend([Problem::new("b", "second")]);
        assert_eq!(problems.len(), 2);
        let found = problems.into_result(5).unwrap_err();
        let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["a", "b"]);
    }
}

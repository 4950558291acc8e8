//! From TOML text to the serde mirror (`FileConfig`), reporting every unknown key and every
//! value of the wrong type, not only the first.
//!
//! serde stops at its first error, so a file with three misspelled keys would be fixed one
//! `--check` at a time. Here the text is parsed once into a `toml::Table` (a syntax error
//! stops there: nothing after it can be trusted), then decoded with `serde_path_to_error`,
//! which names the full TOML path of the failing key. That key is set aside and the decode is
//! repeated, so each run finds the next problem; what remains decodes into a `FileConfig` that
//! the semantic checks then see. A required key whose value was set aside (or that is missing)
//! ends the repair: the semantic checks need it.

use super::lines::{locate, parse_problem};
use crate::config::file::FileConfig;
use scalelab_common::problem::Problem;
use serde_path_to_error::Segment;
use toml::{Table, Value};

/// More problems than this in one file are not worth listing one by one; the repair stops.
const MAX_DECODE_PROBLEMS: usize = 64;

/// Decodes `source`: the `FileConfig` when what is left after setting aside every bad key
/// decodes, and every problem found on the way (each with its TOML path and line).
pub fn decode(source: &str) -> (Option<FileConfig>, Vec<Problem>) {
    let mut root: Table = match source.parse() {
        Ok(root) => root,
        Err(error) => return (None, vec![parse_problem(source, &error)]),
    };
    let mut problems: Vec<Problem> = Vec::new();
    let mut set_aside: Vec<String> = Vec::new();
    while problems.len() < MAX_DECODE_PROBLEMS {
        let error = match serde_path_to_error::deserialize(Value::Table(root.clone())) {
            Ok(file) => {
                // Found in the order serde visits keys; the user reads the file top down.
                problems.sort_by_key(|problem| problem.line);
                return (Some(file), problems);
            }
            Err(error) => error,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let message = error.inner().message().trim().to_string();
        let path = render(&segments);
        // A required key this repair set aside comes back as missing: already reported.
        if let Some(field) = missing_field(&message) {
            let missing = join(&path, field);
            if !set_aside.contains(&missing) {
                problems.push(problem(source, missing, message));
            }
            return (None, problems);
        }
        let removable = segments
            .iter()
            .rposition(|segment| matches!(segment, Segment::Map { .. }));
        problems.push(problem(source, path, message));
        // An element of an array cannot be set aside without renumbering the ones after it,
        // so the whole array goes (its other problems are not reported this run).
        let Some(end) = removable else {
            return (None, problems);
        };
        let key_path = render(&segments[..=end]);
        if !remove(&mut root, &segments[..=end]) {
            return (None, problems);
        }
        set_aside.push(key_path);
    }
    (None, problems)
}

fn problem(source: &str, path: String, message: String) -> Problem {
    Problem {
        line: locate(source, &path),
        path,
        message,
    }
}

/// The field a serde "missing field `name`" message names.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A path as the validation problems write it: `routes[0].cache.ttl`.
fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Removes the key at `segments` (which ends with a map key) from `table`; false when the path
/// does not lead to it.
fn remove(table: &mut Table, segments: &[Segment]) -> bool {
    match segments {
        [Segment::Map { key }] => table.remove(key.as_str()).is_some(),
        [Segment::Map { key }, rest @ ..] => table
            .get_mut(key.as_str())
            .is_some_and(|value| remove_in(value, rest)),
        _ => false,
    }
}

fn remove_in(value: &mut Value, segments: &[Segment]) -> bool {
    match (value, segments) {
        (Value::Table(table), _) => remove(table, segments),
        (Value::Array(items), [Segment::Seq { index }, rest @ ..]) => items
            .get_mut(*index)
            .is_some_and(|item| remove_in(item, rest)),
        _ => false,
    }
}

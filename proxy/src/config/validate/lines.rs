//! Line numbers for problems: a TOML parse error carries its own span, and a validation problem's
//! TOML path is looked up in the source so the user is pointed at the line to fix.

use scalelab_common::problem::Problem;
use toml::de::{DeArray, DeTable, DeValue};

/// Turns a TOML syntax or type error into a problem with a line number.
pub fn parse_problem(source: &str, error: &toml::de::Error) -> Problem {
    let line = error.span().map(|span| line_of(source, span.start));
    let path = error
        .message()
        .lines()
        .next()
        .map(|_| "(file)".to_string())
        .unwrap_or_default();
    Problem {
        path,
        line,
        message: error.message().trim().to_string(),
    }
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// Finds the line of a TOML path such as `upstreams.api.servers[1].addr`, or of its nearest
/// existing parent when the key itself is missing.
pub fn locate(source: &str, path: &str) -> Option<usize> {
    let root = DeTable::parse(source).ok()?;
    let mut span = root.span();
    let mut table: Option<&DeTable> = Some(root.get_ref());
    let mut array: Option<&DeArray> = None;
    for segment in split_path(path) {
        let value = match segment {
            Segment::Key(key) => table?
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == key)
                .map(|(k, v)| (k.span(), v)),
            Segment::Index(index) => array?.get(index).map(|v| (v.span(), v)),
        };
        let Some((key_span, value)) = value else {
            break;
        };
        span = key_span;
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    Some(line_of(source, span.start))
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        for index in rest.split('[') {
            if let Ok(n) = index.trim_end_matches(']').parse() {
                segments.push(Segment::Index(n));
            }
        }
    }
    segments
}

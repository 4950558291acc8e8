//! The serde mirror of a route's traffic split (`upstream` as a weighted list of groups, each
//! with optional `match` rules that pin a request to it) and of its `mirror` table. Kept apart
//! so the canary's keys read together.

use super::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A route's `upstream`: one group's name, or a weighted list of groups (a canary split).
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a group name, or a list of { group = \"NAME\", weight = N, match = { ... } }"
)]
pub enum FileRouteUpstream {
    One(String),
    Split(Vec<FileSplitTarget>),
}

/// One entry of a split: `{ group = "canary", weight = 5, match = { header."X-Canary" = "1" } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSplitTarget {
    pub group: String,
    pub weight: Option<i64>,
    #[serde(rename = "match")]
    pub pin: Option<FileMatch>,
}

/// `match = { header = { NAME = VALUE }, cookie = { NAME = VALUE } }`: every listed header
/// and cookie must have exactly that value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMatch {
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    #[serde(default)]
    pub cookie: BTreeMap<String, String>,
}

/// A route's `mirror = { group, percent, max_body }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMirror {
    pub group: String,
    /// A share of the route's requests, 0 to 100; fractions allowed (`0.5`).
    pub percent: Option<f64>,
    pub max_body: Option<ByteSize>,
}

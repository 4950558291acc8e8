//! A route's traffic split, validated: the groups its `upstream` list names with their weights,
//! the `match` rules that pin a request to one of them first, and the key that makes the split
//! sticky (a user stays on one side). The choice itself is `balance::split`'s, per request.

use super::balancing::HashKey;

/// `upstream = [{ group, weight, match }, ...]` and the route's `split_key`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Split {
    /// In the file's order; every group is defined, none is listed twice, and the weights
    /// add up to more than zero.
    pub targets: Vec<SplitTarget>,
    /// `None`: each request is drawn at random; else the key's hash decides, so the same key
    /// lands on the same group while the weights stay as they are.
    pub key: Option<HashKey>,
}

/// One group of a split.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SplitTarget {
    pub group: String,
    /// Its share is `weight / sum of weights`; 0 takes only the requests its `match` pins.
    pub weight: u32,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
}

/// `match = { header = { NAME = VALUE }, cookie = { NAME = VALUE } }`: a request that has
/// every one of these values goes to the target's group whatever the weights say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    /// Header names lower-cased (HTTP/2 sends them so); values compared exactly.
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
}

/// Weights above this are refused: the split's arithmetic stays far from overflow, and a
/// per-mille share (1 of 1000) is finer than any rollout needs.
pub const MAX_SPLIT_WEIGHT: u32 = 10_000;

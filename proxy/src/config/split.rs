//! A route's traffic split, validated: the groups its `upstream` list names with their weights,
//! the `match` rules that pin a request to one of them first, and the key that makes the split
//! sticky (a user stays on one side). The choice itself is `balance::splitting`'s, per request.

use super::balancing::HashKey;

// The targets are the pure chooser's own types (`balance` does not depend on `config`).
pub use crate::balance::splitting::{Pin, SplitTarget};

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

/// Weights above this are refused: the split's arithmetic stays far from overflow, and a
/// per-mille share (1 of 1000) is finer than any rollout needs.
pub const MAX_SPLIT_WEIGHT: u32 = 10_000;

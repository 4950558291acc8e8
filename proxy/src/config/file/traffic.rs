//! The serde mirror of the traffic-control keys: a route's `rate_limits` entries and a group's
//! `queue` table. Kept apart from the other tables so that this feature's keys read together.

use serde::Deserialize;

/// One `rate_limits = [{ ... }]` entry of a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRateLimit {
    pub name: String,
    pub rate: String,
    pub burst: Option<i64>,
    pub key: Option<String>,
    pub store: Option<String>,
    pub on_store_error: Option<String>,
}

/// A group's `queue = { max, timeout }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQueue {
    pub max: Option<i64>,
    pub timeout: Option<String>,
}

//! The serde mirror of a group's balancing keys beyond `strategy`: `hash` (what consistent
//! hashing hashes, and how), `sticky` (cookie affinity) and `outlier` (passive ejection). Kept apart so the feature's keys
//! read together.

use serde::Deserialize;

/// A group's `hash = { key, algorithm }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHash {
    pub key: String,
    pub algorithm: Option<String>,
}

/// A group's `sticky = { cookie, ttl, secure, http_only }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSticky {
    pub cookie: Option<String>,
    pub ttl: Option<String>,
    pub secure: Option<bool>,
    pub http_only: Option<bool>,
}

/// A group's `circuit = { max_requests, max_pending }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCircuit {
    pub max_requests: i64,
    pub max_pending: Option<i64>,
}

/// A group's `outlier = { consecutive_5xx, consecutive_gateway_errors, base_ejection,
/// max_ejection }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOutlier {
    pub consecutive_5xx: Option<i64>,
    pub consecutive_gateway_errors: Option<i64>,
    pub base_ejection: Option<String>,
    pub max_ejection: Option<String>,
    pub error_rate: Option<FileErrorRate>,
}

/// `outlier.error_rate = { threshold, min_requests, window }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileErrorRate {
    pub threshold: Option<String>,
    pub min_requests: Option<i64>,
    pub window: Option<String>,
}

//! A route's `mirror`, validated: which group gets a copy of the route's requests, how many of
//! them, and the largest request body a copy carries.

/// `mirror = { group, percent, max_body }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mirror {
    /// A defined group that speaks clear-text HTTP/1.1 (the mirror's own client speaks only
    /// that).
    pub group: String,
    /// The share of the route's requests copied, 0 to 100.
    pub percent: f64,
    /// A request whose body is longer is not mirrored (a cut body would be another request).
    pub max_body: u64,
}

/// `max_body` when the file does not say: enough for the JSON bodies of the lab's APIs.
pub const DEFAULT_MIRROR_MAX_BODY: u64 = 64 * 1024;

//! The proxy's own header names as `HeaderName` constants, for looking fields up in a map.
//!
//! `HeaderMap::get` with a `&str` parses the name on every call (a byte table walk and a
//! search among the standard names) before hashing it; a `HeaderName` is hashed at once. The
//! `&str` constants of `headers` stay for `insert_header`, whose name Pingora parses in any case
//! and whose case it keeps as given.

use http::header::HeaderName;

pub const REQUEST_ID: HeaderName = HeaderName::from_static(super::REQUEST_ID);
pub const STRATEGY_OVERRIDE: HeaderName = HeaderName::from_static(super::STRATEGY_OVERRIDE);
pub const EXPLAIN: HeaderName = HeaderName::from_static(super::EXPLAIN);
pub const DEBUG_TOKEN: HeaderName = HeaderName::from_static(super::DEBUG_TOKEN);
pub const FORWARDED_FOR: HeaderName = HeaderName::from_static(super::FORWARDED_FOR);
/// Marks a mirrored copy of a request (`mirror`), so the shadow group can tell it apart.
pub const MIRROR: HeaderName = HeaderName::from_static("x-scalelab-mirror");

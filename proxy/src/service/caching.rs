//! The cache's part of the request path: `lookup` (the request's cache mode, coalescing, and
//! answering hits and stale objects), `origin_response` (the cache's storing decision on the
//! origin's response mapped to headers, collecting its body, stale-if-error on a 5xx), `refresh` (the
//! background refresh of a stale object) and `invalidate` (the `POST /cache/invalidate`
//! endpoint). This file holds what a request carries between those phases.

mod invalidate;
mod lookup;
mod origin_response;
mod refresh;

pub use invalidate::{invalidate, INVALIDATE_PATH};
pub use lookup::{lookup, serve_stale_on_error};
pub use origin_response::{
    decorate, on_upstream_body, on_upstream_response, replace_body_if_stale,
};

use crate::cache::policy::Conditionals;
use crate::cache::{CacheStore, Entry, FillGuard};
use crate::telemetry::CacheUse;
use pingora::prelude::Session;
use std::sync::Arc;

/// How this request uses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Looked up and missed (or found only a stale-if-error candidate).
    Miss,
    /// `?bypass_cache=true`: no lookup, but the response is stored.
    Bypass,
    /// `Cache-Control: no-cache` from the client: go to the origin, store the answer.
    Revalidate,
}

impl Mode {
    /// How the request went forward, in `Cache-Status` terms (RFC 9211 `fwd`).
    fn forward(self) -> &'static str {
        match self {
            Mode::Miss => "fwd=miss",
            Mode::Bypass => "fwd=bypass",
            Mode::Revalidate => "fwd=request",
        }
    }
}

/// Cache state one request carries between phases.
pub struct CacheCtx {
    pub store: Arc<CacheStore>,
    pub key: String,
    pub mode: Mode,
    /// Held while this request fills the key, so concurrent misses wait for it.
    pub fill: Option<FillGuard>,
    /// A stored object usable only if the origin fails.
    pub stale: Option<Arc<Entry>>,
    collect: Option<Box<crate::cache::Collect>>,
    /// Set when the origin failed with 5xx and the stale object replaces its answer.
    serving_stale: Option<Arc<Entry>>,
    stale_body_sent: bool,
    cache_status: String,
    stored_note: &'static str,
    /// `X-Cache` of a response served from the cache, for the access log.
    pub served: Option<&'static str>,
}

impl CacheCtx {
    /// The `X-Cache` word of a response that came from the origin: the header and the access
    /// log's `cache=` both write this one, so they never disagree (issue 31: the log said
    /// `MISS` where the header said `BYPASS`).
    pub fn origin_word(&self) -> &'static str {
        match self.use_kind() {
            CacheUse::Stale => "STALE",
            CacheUse::Bypass => "BYPASS",
            _ => "MISS",
        }
    }

    /// How this request used the cache, for the latency histogram (a hit served from the
    /// store is counted by the caller, which knows it answered one).
    pub fn use_kind(&self) -> CacheUse {
        match (self.serving_stale.is_some(), self.mode) {
            (true, _) => CacheUse::Stale,
            (false, Mode::Bypass) => CacheUse::Bypass,
            (false, Mode::Miss | Mode::Revalidate) => CacheUse::Miss,
        }
    }
}

fn conditionals(session: &Session) -> Conditionals<'_> {
    let headers = &session.req_header().headers;
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    Conditionals {
        if_none_match: text(http::header::IF_NONE_MATCH),
        if_modified_since: text(http::header::IF_MODIFIED_SINCE),
    }
}

fn request_header(session: &Session, name: &str) -> Option<String> {
    header_value(&session.req_header().headers, name)
}

/// `request_header` on the headers alone, which (unlike the session) may be held across an
/// await of a `Send` future.
fn header_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

//! The listeners: one Pingora service per listen address (`services`), the connection bound
//! of each (`connection_limit`), and the HTTP/1.1 edge's own bookkeeping. Every request the proxy refuses is counted by reason
//! in `scalelab_requests_refused_total{reason}`: the refusals of admission (`Reject`) and the
//! request heads Pingora's parser refuses before any request context exists, which are also
//! answered here in the proxy's JSON format and logged once in the access log.

pub mod connection_limit;
pub mod services;
#[cfg(test)]
mod tests;

use crate::error::{Answer, Reject};
use pingora::{Error, ErrorType};
use prometheus::{IntCounterVec, Opts};
use std::sync::OnceLock;

/// The reason label of a refusal, or `None` for a failure that is not the client's doing (no
/// healthy upstream, an upstream error, an internal error).
pub fn refusal_reason(reject: &Reject) -> Option<&'static str> {
    Some(match reject {
        Reject::NoRoute { .. } => "no_route",
        Reject::UnknownStrategy { .. } => "unknown_strategy",
        Reject::HeadersTooLarge { .. } => "headers_too_large",
        Reject::BodyTooLarge { .. } => "body_too_large",
        Reject::BadRequest { .. } => "bad_request",
        Reject::UpgradeRefused { .. } => "upgrade_refused",
        Reject::Unauthorized(_) => "unauthorized",
        Reject::RateLimited(_) => "rate_limited",
        Reject::Access(refusal) => refusal.reason(),
        // A full queue or a wait past its timeout: refused to protect the servers.
        Reject::UpstreamBusy { .. } => "upstream_busy",
        Reject::Status { code } if (400..500).contains(code) => "other",
        Reject::Status { .. }
        | Reject::NoHealthyUpstream { .. }
        | Reject::NoDiscoveredServer { .. }
        | Reject::UpstreamTimeout { .. }
        | Reject::UpstreamFailed { .. }
        | Reject::Internal => return None,
    })
}

/// Counts `reject` if it is a refusal.
pub fn count_refusal(reject: &Reject) {
    if let Some(reason) = refusal_reason(reject) {
        count(reason);
    }
}

/// What to do with a request head Pingora could not read: the reason it is counted under and,
/// when the client can still be told, the answer. Pure.
pub fn head_error(error: &Error) -> (&'static str, Option<Answer>) {
    let context = error.context.as_ref().map(ToString::to_string);
    match error.etype() {
        ErrorType::InvalidHTTPHeader
            if context
                .as_deref()
                .is_some_and(|c| c.starts_with("Request header larger than")) =>
        {
            (
                "head_too_large",
                Some(Answer::error(431, "request header section too large")),
            )
        }
        // The parser's context quotes the client's bytes; the client is told only the kind.
        ErrorType::InvalidHTTPHeader => (
            "malformed_head",
            Some(Answer::new(
                400,
                serde_json::json!({"error": "bad request", "detail": "malformed request head"}),
            )),
        ),
        ErrorType::ReadTimedout => (
            "header_timeout",
            Some(Answer::error(
                408,
                "request header not received within the time limit",
            )),
        ),
        _ => ("incomplete_head", None),
    }
}

/// Counts one refusal under `reason`.
pub fn count(reason: &'static str) {
    if let Some(counter) = refusals() {
        counter.with_label_values(&[reason]).inc();
    }
}

fn refusals() -> Option<&'static IntCounterVec> {
    static REFUSED: OnceLock<Option<IntCounterVec>> = OnceLock::new();
    REFUSED
        .get_or_init(|| {
            register(IntCounterVec::new(
                Opts::new(
                    "scalelab_requests_refused_total",
                    "Requests the proxy refused itself, by reason (malformed heads included).",
                ),
                &["reason"],
            ))
        })
        .as_ref()
}

/// Registers a counter vector in Prometheus' default registry (which `metrics` renders).
pub(crate) fn register(vec: Result<IntCounterVec, prometheus::Error>) -> Option<IntCounterVec> {
    let vec = vec
        .map_err(|error| tracing::error!(%error, "cannot build an edge metric"))
        .ok()?;
    if let Err(error) = prometheus::register(Box::new(vec.clone())) {
        tracing::error!(%error, "cannot register an edge metric");
    }
    Some(vec)
}

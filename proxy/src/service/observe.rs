//! What a finished request leaves behind: one access-log line and, unless `[proxy]
//! request_metrics = false`, its count in the route's and the upstream's metric series.

use super::RequestCtx;
use crate::telemetry::{self, CacheUse};
use pingora::prelude::Session;
use pingora::Error;

/// One access-log line per request.
pub(super) fn access_log(session: &Session, error: Option<&Error>, ctx: &RequestCtx, status: u16) {
    let req = session.req_header();
    let server = ctx.lease.as_ref().map(|lease| lease.server().addr);
    tracing::info!(
        target: "access",
        method = %req.method,
        path = %req.uri.path(),
        status,
        route = ctx.route_name(),
        upstream = ctx.upstream_name().unwrap_or("-"),
        server = %server.map_or_else(|| "-".to_string(), |addr| addr.to_string()),
        strategy = ctx.strategy.name(),
        attempts = ctx.attempts,
        cache = ctx.cache_served.unwrap_or(if ctx.cache.is_some() { "MISS" } else { "-" }),
        duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        request_id = ctx.request_id.to_str().unwrap_or("-"),
        error = error.map(|e| e.etype().as_str()),
    );
}

/// Counts one finished request in its route's series, and the retries it needed.
pub(super) fn record_request(session: &Session, ctx: &RequestCtx, status: u16) {
    if status == 0 {
        // The client left before any answer: nothing was answered to count.
        return;
    }
    let cache = match (&ctx.cache_served, &ctx.cache) {
        (Some("HIT"), _) => CacheUse::Hit,
        (Some(_), _) => CacheUse::Stale,
        (None, Some(cache)) => cache.use_kind(),
        (None, None) => CacheUse::None,
    };
    let Some(metrics) = ctx.snapshot.route_metrics(ctx.route) else {
        return;
    };
    metrics.record(
        &session.req_header().method,
        status,
        cache,
        ctx.started.elapsed(),
        session.body_bytes_sent(),
    );
    // A route a reload removed records nothing more, its retries included.
    if metrics.is_retired() {
        return;
    }
    if let Some(upstream) = ctx.upstream_name() {
        telemetry::retries(
            upstream,
            u64::from(ctx.attempts.saturating_sub(1)),
            status < 500,
        );
    }
}

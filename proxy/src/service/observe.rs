//! What a finished request leaves behind: one access-log line and, unless `[proxy]
//! request_metrics = false`, its count in the route's and the upstream's metric series.

use super::RequestCtx;
use crate::access_log;
use crate::telemetry::{self, CacheUse};
use http::HeaderValue;
use pingora::prelude::Session;
use pingora::protocols::http::ServerSession;
use pingora::Error;
use std::time::{Duration, SystemTime};

/// One access-log line per request (`access_log` formats and batches it).
pub(super) fn access_log(
    session: &Session,
    error: Option<&Error>,
    ctx: &RequestCtx,
    status: u16,
    elapsed: Duration,
) {
    let req = session.req_header();
    // The client's IP is usually known from the upstream request; a request answered before
    // one (a cache hit, a refusal) formats it here, on the stack.
    let mut ip = [0u8; 64];
    let client: &[u8] = match &ctx.client.ip {
        Some(value) => value.as_bytes(),
        None => session
            .client_addr()
            .and_then(|addr| addr.as_inet())
            .map_or(&[], |addr| ip_text(addr.ip(), &mut ip)),
    };
    let trace_hex = ctx.trace.as_ref().map(|trace| trace.trace_id.hex());
    let header = |name: http::header::HeaderName| req.headers.get(name).map(|v| v.as_bytes());
    access_log::record(&access_log::Line {
        time: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
        client,
        method: req.method.as_str(),
        path: req.uri.path().as_bytes(),
        protocol: protocol(req.version),
        status,
        body_bytes: session.body_bytes_sent(),
        referer: header(http::header::REFERER),
        user_agent: header(http::header::USER_AGENT),
        route: ctx.route_name(),
        upstream: ctx.upstream_name(),
        upstream_path: ctx.upstream_path.as_deref().map(str::as_bytes),
        server: ctx
            .attempts
            .lease
            .as_ref()
            .map(|lease| lease.server().addr_header.as_bytes()),
        strategy: ctx.strategy.name(),
        attempts: ctx.attempts.count,
        cache: ctx
            .cache
            .as_ref()
            .map_or("-", |cache| cache.served.unwrap_or(cache.origin_word())),
        duration: elapsed,
        request_id: ctx.request_id.as_bytes(),
        trace_id: trace_hex.as_ref().map(|hex| &hex[..]),
        error: error.map(|e| e.etype().as_str()),
    });
}

/// The access-log line of a request head Pingora could not read: no method, path or route is
/// known, `error` is the reason it is counted under, and the status is 0 when the client could
/// not be answered.
pub(super) fn head_error_line(
    session: &ServerSession,
    status: u16,
    body_bytes: usize,
    request_id: &HeaderValue,
    reason: &'static str,
) {
    let mut ip = [0u8; 64];
    let client = session
        .client_addr()
        .and_then(|addr| addr.as_inet())
        .map_or(&[][..], |addr| ip_text(addr.ip(), &mut ip));
    access_log::record(&access_log::Line {
        time: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
        client,
        method: "-",
        path: b"-",
        protocol: "-",
        status,
        body_bytes,
        referer: None,
        user_agent: None,
        route: "unmatched",
        upstream: None,
        upstream_path: None,
        server: None,
        strategy: "-",
        attempts: 0,
        cache: "-",
        duration: Duration::ZERO,
        request_id: request_id.as_bytes(),
        trace_id: None,
        error: Some(reason),
    });
}

/// `ip` written into `buffer` (an IPv6 address takes at most 45 bytes).
fn ip_text(ip: std::net::IpAddr, buffer: &mut [u8; 64]) -> &[u8] {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let written = write!(cursor, "{ip}").map_or(0, |()| cursor.position() as usize);
    &buffer[..written]
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Counts one finished request in its route's series, and the retries it needed.
pub(super) fn record_request(session: &Session, ctx: &RequestCtx, status: u16, elapsed: Duration) {
    if status == 0 {
        // The client left before any answer: nothing was answered to count.
        return;
    }
    let served = ctx.cache.as_ref().and_then(|cache| cache.served);
    let cache = match (&served, &ctx.cache) {
        (Some("HIT"), _) => CacheUse::Hit,
        (Some(_), _) => CacheUse::Stale,
        (None, Some(cache)) => cache.use_kind(),
        (None, None) => CacheUse::None,
    };
    let Some(metrics) = ctx.snapshot.route_metrics(ctx.route) else {
        return;
    };
    let req = session.req_header();
    metrics.record(
        &req.method,
        telemetry::Protocol::of(req.version),
        status,
        cache,
        super::tunnel::duration(ctx, elapsed),
        session.body_bytes_sent(),
        ctx.trace
            .as_ref()
            .filter(|trace| trace.sampled)
            .map(|trace| trace.trace_id),
    );
    // A route a reload removed records nothing more, its retries included.
    if metrics.is_retired() {
        return;
    }
    if let Some(upstream) = ctx.upstream_name() {
        telemetry::retries(
            upstream,
            u64::from(ctx.attempts.count.saturating_sub(1)),
            status < 500,
        );
    }
}

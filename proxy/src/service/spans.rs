//! The request path's part in tracing (`crate::trace`): the context read at admission, the
//! `traceparent` sent upstream, the phases and attempts noted as they happen, `Server-Timing`,
//! and the spans handed to the exporter when the request ends. Every function returns at once
//! when the request has no trace context (no `[tracing]`) and no timeline.

use super::RequestCtx;
use crate::trace::request::{RequestTrace, ServerFacts, Timeline};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;
use pingora::Result;
use scalelab_common::trace::{TRACEPARENT, TRACESTATE};
use std::time::Instant;

/// Reads or starts the trace (with `[tracing]`), and starts the timeline of a request that is
/// sampled or shows `Server-Timing` (decided after `ctx.debug`).
pub(super) fn start(session: &Session, ctx: &mut RequestCtx) {
    if let Some(settings) = ctx.snapshot.config.tracing() {
        ctx.trace = Some(RequestTrace::start(
            &session.req_header().headers,
            settings.sample_ratio,
        ));
    }
    if ctx.explain.debug || ctx.trace.as_ref().is_some_and(|trace| trace.sampled) {
        ctx.timeline = Some(Box::new(Timeline::new(ctx.started)));
    }
}

/// When a phase starts: an instant only if the request keeps a timeline.
pub(super) fn mark(ctx: &RequestCtx) -> Option<Instant> {
    ctx.timeline.as_ref().map(|_| Instant::now())
}

/// Ends a phase begun at `mark`.
pub(super) fn phase(
    ctx: &mut RequestCtx,
    name: &'static str,
    began: Option<Instant>,
    detail: Option<&'static str>,
) {
    if let (Some(timeline), Some(began)) = (ctx.timeline.as_mut(), began) {
        timeline.phase(name, began, detail);
    }
}

/// A new upstream try of the leased server.
pub(super) fn attempt(ctx: &mut RequestCtx) {
    let Some(timeline) = ctx.timeline.as_mut() else {
        return;
    };
    if let (Some(lease), Some(pool)) = (&ctx.attempts.lease, &ctx.pool) {
        timeline.attempt(pool.name(), lease.server().addr);
    }
}

pub(super) fn attempt_failed(ctx: &mut RequestCtx, error: &pingora::Error) {
    if let Some(timeline) = ctx.timeline.as_mut() {
        timeline.failed(error.etype().as_str());
    }
}

pub(super) fn attempt_responded(ctx: &mut RequestCtx, status: u16) {
    if let Some(timeline) = ctx.timeline.as_mut() {
        timeline.responded(status);
    }
}

/// The child `traceparent` (the attempt's span as parent when sampled, else the proxy's span)
/// and the caller's `tracestate` when it was valid; a malformed pair is never passed on.
pub(super) fn forward(ctx: &RequestCtx, upstream_request: &mut RequestHeader) -> Result<()> {
    let Some(trace) = &ctx.trace else {
        return Ok(());
    };
    let parent = ctx
        .timeline
        .as_ref()
        .filter(|_| trace.sampled)
        .and_then(|timeline| timeline.attempts.last())
        .map_or(trace.span_id, |attempt| attempt.span_id);
    match trace.traceparent(parent) {
        Some(value) => upstream_request.insert_header(TRACEPARENT, value)?,
        None => {
            upstream_request.remove_header(TRACEPARENT);
        }
    }
    match &trace.tracestate {
        Some(state) => upstream_request.insert_header(TRACESTATE, state.clone())?,
        None => {
            upstream_request.remove_header(TRACESTATE);
        }
    }
    Ok(())
}

/// `Server-Timing` on an answer this request may show diagnostics on (`own_headers` decides).
pub(super) fn server_timing(ctx: &RequestCtx, response: &mut ResponseHeader) -> Result<()> {
    if let Some(value) = ctx
        .timeline
        .as_ref()
        .and_then(|timeline| timeline.server_timing(ctx.route_name()))
    {
        response.insert_header(
            http::header::HeaderName::from_static("server-timing"),
            value,
        )?;
    }
    Ok(())
}

/// Hands a sampled request's spans to the exporter.
pub(super) fn finish(
    session: &Session,
    ctx: &RequestCtx,
    status: u16,
    error: Option<&pingora::Error>,
) {
    let (Some(trace), Some(timeline)) = (&ctx.trace, &ctx.timeline) else {
        return;
    };
    if !trace.sampled {
        return;
    }
    let req = session.req_header();
    let header =
        |name: http::header::HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
    let route_path = ctx
        .route
        .and_then(|i| ctx.snapshot.routes.get(i))
        .map(|route| route.path.as_str());
    let client = ctx
        .client
        .ip
        .as_ref()
        .and_then(|ip| ip.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            session
                .client_addr()
                .and_then(|addr| addr.as_inet())
                .map(|addr| addr.ip().to_string())
        });
    let cache = ctx
        .cache
        .as_ref()
        .map_or("-", |cache| cache.served.unwrap_or(cache.origin_word()));
    let facts = ServerFacts {
        method: req.method.as_str(),
        route: ctx.route_name(),
        route_path,
        path: req.uri.path(),
        scheme: if super::rules::arrived_over_tls(session) {
            "https"
        } else {
            "http"
        },
        host: header(http::header::HOST).or_else(|| req.uri.authority().map(|a| a.as_str())),
        protocol: match req.version {
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_10 => "1.0",
            _ => "1.1",
        },
        status,
        client: client.as_deref(),
        user_agent: header(http::header::USER_AGENT),
        request_id: ctx.request_id.to_str().unwrap_or("-"),
        cache,
        error: error.map(|e| e.etype().as_str()),
    };
    crate::trace::submit(crate::trace::request::spans(trace, timeline, &facts));
}

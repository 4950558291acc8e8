//! The HTTP/1.1 edge's part of admission: settings Pingora leaves per session (pipelining) and
//! the framing rules of `framing` applied to the request head before anything else reads it.

use super::RequestCtx;
use crate::config::admin::DebugHeaders;
use crate::error::Reject;
use crate::framing::{self, Framing};
use crate::headers;
use crate::state::Shared;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::protocols::http::ServerSession;
use pingora::Error;

/// Applies the client limits of `[proxy]` to the session, and normalises or refuses the
/// request's framing.
pub(super) fn admit_framing(session: &mut Session, ctx: &RequestCtx) -> Result<(), Reject> {
    let limits = &ctx.snapshot.config.proxy().client;
    // RFC 9112 section 9.3.2: requests a client pipelines are answered in order. Pingora
    // otherwise answers the first and closes the connection, dropping the rest.
    session.as_downstream_mut().set_pipelining_enabled(true);
    // Only a connection that may stay open gets the keep-alive timeout: setting it on one the
    // client asked to close (or an HTTP/1.0 one) would keep it open.
    if session.as_downstream().get_keepalive().is_some() {
        session.set_keepalive(Some(limits.keepalive_seconds()));
    }
    session.set_read_timeout(Some(limits.client_body_timeout));
    let head = session.req_header();
    let checked = framing::check_host(head.version, &head.headers)
        .and_then(|()| framing::check(&head.headers));
    match checked {
        Ok(Framing::Unchanged) => {}
        Ok(Framing::SingleContentLength(length)) => {
            let head = session.req_header_mut();
            head.remove_header(&http::header::CONTENT_LENGTH);
            head.insert_header(http::header::CONTENT_LENGTH, length)
                .map_err(|_| Reject::Internal)?;
        }
        Err(error) => {
            return Err(Reject::BadRequest {
                detail: error.to_string(),
            })
        }
    }
    Ok(())
}

/// Takes the body limit of the request's route and refuses a declared length over it (413).
pub(super) fn limit_body(session: &Session, ctx: &mut RequestCtx) -> Result<(), Reject> {
    ctx.body.limit = ctx
        .route
        .and_then(|route| ctx.snapshot.routes.get(route))
        .and_then(|route| route.max_body_bytes)
        .unwrap_or(ctx.snapshot.config.proxy().client.max_body_bytes);
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > ctx.body.limit) {
        return Err(Reject::BodyTooLarge {
            limit: ctx.body.limit,
        });
    }
    Ok(())
}

/// Counts request body bytes as they pass; a chunked body over the limit ends the request
/// with 413 (or a cut connection, if the response has started).
pub(super) fn count_body(ctx: &mut RequestCtx, body: Option<&bytes::Bytes>) -> Result<(), Reject> {
    ctx.body.seen += body.map_or(0, |chunk| chunk.len() as u64);
    if ctx.body.seen > ctx.body.limit {
        return Err(Reject::BodyTooLarge {
            limit: ctx.body.limit,
        });
    }
    Ok(())
}

/// A request head Pingora could not read: counted by reason, written to the access log as one
/// line (the log is the one place every answered request appears), and answered in the proxy's
/// JSON format when the client can still be told.
pub(super) fn answer_head_error(
    shared: &Shared,
    session: &ServerSession,
    error: &Error,
) -> Option<(ResponseHeader, Bytes)> {
    let (reason, answer) = crate::listeners::head_error(error);
    crate::listeners::count(reason);
    let request_id = headers::new_request_id();
    let snapshot = shared.snapshot();
    // A head this malformed is not worth checking a client's trust for: only `on` shows the
    // generation here.
    let generation = (snapshot.config.proxy().debug_headers.mode == DebugHeaders::On)
        .then_some(&snapshot.generation_header);
    let response = answer.and_then(|answer| {
        super::answer::response(&answer, &request_id, generation)
            .map_err(|error| tracing::warn!(%error, "cannot build the answer to a malformed head"))
            .ok()
    });
    let (status, body_bytes) = response
        .as_ref()
        .map_or((0, 0), |(head, body)| (head.status.as_u16(), body.len()));
    super::observe::head_error_line(session, status, body_bytes, &request_id, reason);
    response
}

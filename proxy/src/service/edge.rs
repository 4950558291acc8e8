//! The HTTP/1.1 edge's part of admission: settings Pingora leaves per session (pipelining) and
//! the framing rules of `framing` applied to the request head before anything else reads it.

use crate::error::Reject;
use crate::framing::{self, Framing};
use crate::headers;
use crate::state::Shared;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::protocols::http::ServerSession;
use pingora::Error;

/// Prepares the session and normalises or refuses the request's framing.
pub(super) fn admit_framing(session: &mut Session) -> Result<(), Reject> {
    // RFC 9112 section 9.3.2: requests a client pipelines are answered in order. Pingora
    // otherwise answers the first and closes the connection, dropping the rest.
    session.as_downstream_mut().set_pipelining_enabled(true);
    match framing::check(&session.req_header().headers) {
        Ok(Framing::Unchanged) => Ok(()),
        Ok(Framing::SingleContentLength(length)) => {
            let head = session.req_header_mut();
            head.remove_header(&http::header::CONTENT_LENGTH);
            head.insert_header(http::header::CONTENT_LENGTH, length)
                .map_err(|_| Reject::Internal)?;
            Ok(())
        }
        Err(error) => Err(Reject::BadRequest {
            detail: error.to_string(),
        }),
    }
}

/// A request head Pingora could not read: counted by reason, logged once in the access log, and
/// answered in the proxy's JSON format when the client can still be told.
pub(super) fn answer_head_error(
    shared: &Shared,
    session: &ServerSession,
    error: &Error,
) -> Option<(ResponseHeader, Bytes)> {
    let (reason, answer) = crate::edge::head_error(error);
    crate::edge::count(reason);
    let request_id = headers::new_request_id();
    tracing::info!(
        target: "access",
        method = "-",
        path = "-",
        status = answer.as_ref().map_or(0, |answer| answer.status),
        route = "unmatched",
        client = %session.client_addr().map_or_else(|| "-".to_string(), ToString::to_string),
        request_id = request_id.to_str().unwrap_or("-"),
        error = reason,
    );
    let answer = answer?;
    super::answer::response(&answer, &request_id, &shared.snapshot().generation_header)
        .map_err(|error| tracing::warn!(%error, "cannot build the answer to a malformed head"))
        .ok()
}

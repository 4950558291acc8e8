//! The HTTP/1.1 edge's part of admission: settings Pingora leaves per session (pipelining) and
//! the framing rules of `framing` applied to the request head before anything else reads it.

use crate::error::Reject;
use crate::framing::{self, Framing};
use pingora::prelude::Session;

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

//! The one writer of the proxy's own response headers, for every answer a request gets:
//! proxied from a server, served from the cache, or made by the proxy itself. It writes the
//! request id, the diagnostic headers when this request may see them (`debug`), the rate
//! limits' budget, the explain header composed from every phase's notes (`context::Explain`),
//! and then the response header rules, so a rule sees and may change all of them.

use super::{rate_limiting, rules, RequestCtx};
use crate::headers;
use http::header::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// Where the answer came from; it decides which of the headers apply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A server's response: the strategy and the server are named.
    Proxied,
    /// An object from the cache: no server was asked.
    Cached,
    /// The proxy's own answer (a refusal, a failure, a redirect, a fixed response).
    Answered,
}

pub(super) fn write(
    session: &Session,
    ctx: &mut RequestCtx,
    header: &mut ResponseHeader,
    origin: Origin,
) -> Result<()> {
    header.insert_header(headers::REQUEST_ID, ctx.request_id.clone())?;
    if ctx.explain.debug {
        header.insert_header(
            headers::CONFIG_GENERATION,
            ctx.snapshot.generation_header.clone(),
        )?;
        if origin == Origin::Proxied {
            header.insert_header(
                headers::STRATEGY,
                HeaderValue::from_static(ctx.strategy.name()),
            )?;
            if let Some(lease) = &ctx.attempts.lease {
                header
                    .insert_header(headers::UPSTREAM_SERVER, lease.server().addr_header.clone())?;
            }
        }
    }
    // A refusal has no budget to report: the request did not pass, or was not counted.
    if origin != Origin::Answered {
        rate_limiting::add_quota_headers(ctx, header)?;
    }
    if let Some(explanation) = ctx.explain.take() {
        header.insert_header(headers::EXPLAIN, explanation)?;
    }
    rules::response_headers(session, ctx, header)
}

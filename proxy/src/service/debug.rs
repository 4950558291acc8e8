//! The diagnostic response headers (`X-Upstream-Server`, `X-Strategy`, `X-Config-Generation`
//! and the explain header) and who may see them (`[proxy] debug_headers`). They name internal
//! addresses and the config's state, so the daemon sends none by default; with `off` the
//! request path neither decides trust nor builds any of them.

use super::{limits, RequestCtx};
use crate::config::admin::DebugHeaders;
use crate::headers;
use crate::snapshot::Snapshot;
use http::header::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// Whether this request's answers carry the diagnostic headers: always under `on`; under
/// `trusted` for a client in `debug_trusted` (seen through `trusted_proxies`, as rate limits
/// see it) or a request whose `X-Scalelab-Debug-Token` is the admin token.
pub(super) fn allowed(session: &Session, snapshot: &Snapshot) -> bool {
    let proxy = &snapshot.config.proxy();
    match proxy.debug_headers.mode {
        DebugHeaders::Off => false,
        DebugHeaders::On => true,
        DebugHeaders::Trusted => {
            let req = session.req_header();
            let by_token = snapshot.config.admin().token.as_ref().is_some_and(|token| {
                req.headers
                    .get(headers::names::DEBUG_TOKEN)
                    .is_some_and(|value| token.matches(value.as_bytes()))
            });
            by_token
                || session
                    .client_addr()
                    .and_then(|addr| addr.as_inet())
                    .is_some_and(|peer| {
                        let forwarded = req
                            .headers
                            .get(headers::names::FORWARDED_FOR)
                            .and_then(|v| v.to_str().ok());
                        let client = crate::ratelimit::key::client_ip(
                            peer.ip(),
                            forwarded,
                            &proxy.trusted_proxies,
                        );
                        proxy.debug_headers.trusted.contains(client)
                    })
        }
    }
}

/// Adds the diagnostic headers of a proxied response (the caller checked `ctx.debug`).
pub(super) fn add_headers(ctx: &mut RequestCtx, response: &mut ResponseHeader) -> Result<()> {
    response.insert_header(
        headers::CONFIG_GENERATION,
        ctx.snapshot.generation_header.clone(),
    )?;
    response.insert_header(
        headers::STRATEGY,
        HeaderValue::from_static(ctx.strategy.name()),
    )?;
    if let Some(lease) = &ctx.lease {
        response.insert_header(headers::UPSTREAM_SERVER, lease.server().addr_header.clone())?;
    }
    let pick = limits::explanation(ctx.split_note.take(), ctx.explanation.take());
    if let Some(explanation) = limits::explanation(ctx.limits_note.take(), pick) {
        response.insert_header(headers::EXPLAIN, explanation)?;
    }
    Ok(())
}

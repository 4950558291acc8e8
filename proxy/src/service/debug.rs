//! Who may see the diagnostic response headers (`X-Upstream-Server`, `X-Strategy`, `X-Config-Generation`
//! and the explain header; `own_headers` writes them) under `[proxy] debug_headers`. They name internal
//! addresses and the config's state, so the daemon sends none by default; with `off` the
//! request path neither decides trust nor builds any of them.

use crate::config::admin::DebugHeaders;
use crate::headers;
use crate::snapshot::Snapshot;
use pingora::prelude::Session;

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

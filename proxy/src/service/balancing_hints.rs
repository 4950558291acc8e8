//! Balancing's side of a request beyond its strategy: what it brings (the hash of its
//! `hash.key` for `strategy = "hash"`, the server its sticky cookie names), what each try
//! teaches the balancers (response time, failures), and on the way back the sticky cookie for
//! the server that answered when the request did not already name it.

#[cfg(test)]
mod tests;

use super::RequestCtx;
use crate::balance::hashing::key_hash;
use crate::balance::Strategy;
use crate::config::balancing::{HashKey, StickySettings};
use crate::headers;
use crate::upstream::{Hint, UpstreamPool};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// The request's side of balancing, carried from admission to the response.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Affinity {
    pub hint: Hint,
    /// The index of the server the current try went to.
    pub picked: Option<usize>,
}

/// Reads the sticky cookie and, for a hash pick, hashes the key. A request without the key
/// gets `key: None`, which `select` answers by round robin (documented in the README).
pub(super) fn hint(session: &Session, ctx: &RequestCtx, pool: &UpstreamPool) -> Hint {
    let req = session.req_header();
    let mut hint = Hint::default();
    if let Some(sticky) = &pool.config.balancing.sticky {
        if let Some(value) = cookie(&req.headers, &sticky.cookie) {
            hint.sticky = pool.sticky_server(value);
            hint.sticky_stale = hint.sticky.is_none();
        }
    }
    if ctx.strategy == Strategy::Hash {
        if let Some(settings) = &pool.config.balancing.hash {
            hint.key = match &settings.key {
                HashKey::Header(name) => req
                    .headers
                    .get(name.as_str())
                    .map(|v| key_hash(v.as_bytes())),
                HashKey::Cookie(name) => cookie(&req.headers, name).map(|v| key_hash(v.as_bytes())),
                HashKey::Query(name) => req
                    .uri
                    .query()
                    .and_then(|q| headers::query_param(q, name))
                    .map(|v| key_hash(v.as_bytes())),
                HashKey::Path => Some(key_hash(req.uri.path().as_bytes())),
                HashKey::ClientIp => session.client_addr().and_then(|a| a.as_inet()).map(|peer| {
                    let forwarded = req
                        .headers
                        .get(headers::names::FORWARDED_FOR)
                        .and_then(|v| v.to_str().ok());
                    let trusted = &ctx.snapshot.config.proxy().trusted_proxies;
                    let ip = crate::ratelimit::key::client_ip(peer.ip(), forwarded, trusted);
                    key_hash(ip.to_string().as_bytes())
                }),
            };
        }
    }
    hint
}

/// Feeds the current try's outcome to the balancers: its time to the server's peak EWMA
/// (whatever the group's strategy, so a switch to `ewma` starts from real numbers), and its
/// status (`None`: no answer at all) to outlier detection. A failure's time counts too: a
/// timeout is the slowest answer there is, and a quick reset barely lowers the estimate (a
/// faster observation only blends in as time passes).
pub(super) fn observe_try(ctx: &RequestCtx, status: Option<u16>) {
    if let (Some(lease), Some(pool)) = (&ctx.attempts.lease, &ctx.pool) {
        if let Some(started) = ctx.attempts.started {
            lease.server().observe_latency(started.elapsed());
        }
        pool.observe_outcome(lease.server(), status);
    }
}

/// Sets the sticky cookie when the group has `sticky` and the request's cookie did not
/// already name the server that answered (no cookie, a stale one, or a re-balance).
pub(super) fn set_cookie(ctx: &RequestCtx, response: &mut ResponseHeader) -> Result<()> {
    let (Some(pool), Some(picked)) = (&ctx.pool, ctx.affinity.picked) else {
        return Ok(());
    };
    let Some(sticky) = &pool.config.balancing.sticky else {
        return Ok(());
    };
    if ctx.affinity.hint.sticky == Some(picked) {
        return Ok(());
    }
    let Some(token) = pool
        .servers
        .get(picked)
        .and_then(|s| s.sticky_token.as_deref())
    else {
        return Ok(());
    };
    response.append_header(http::header::SET_COOKIE, set_cookie_value(sticky, token))?;
    Ok(())
}

/// `NAME=VALUE; Path=/; Max-Age=TTL; SameSite=Lax[; Secure][; HttpOnly]`.
pub(super) fn set_cookie_value(sticky: &StickySettings, token: &str) -> String {
    let mut text = format!(
        "{}={token}; Path=/; Max-Age={}; SameSite=Lax",
        sticky.cookie,
        sticky.ttl.as_secs()
    );
    if sticky.secure {
        text.push_str("; Secure");
    }
    if sticky.http_only {
        text.push_str("; HttpOnly");
    }
    text
}

/// The value of cookie `name` in the request's `Cookie` fields (the first one, as RFC 6265
/// servers do), without surrounding quotes.
pub(super) fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
}

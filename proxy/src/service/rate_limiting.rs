//! The rate limit step of admission: reads each limit's key from the request (the client
//! address, a header, a query parameter, a verified claim) and asks the route's limits.

use super::RequestCtx;
use crate::cache::RemoteTier;
use crate::config::LimitKey;
use crate::error::Reject;
use crate::headers;
use crate::ratelimit::{self, KeyValues};
use pingora::prelude::Session;
use std::borrow::Cow;

/// Refuses a request over one of its route's rate limits (429); notes each limit's verdict for
/// the explain header when asked.
pub(super) async fn check_rate_limits(
    session: &Session,
    ctx: &mut RequestCtx,
    route: usize,
    claims: Option<&serde_json::Value>,
    remote: Option<&RemoteTier>,
) -> Result<(), Reject> {
    let snapshot = ctx.snapshot.clone();
    let Some(limits) = snapshot.limits.get(route).filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let req = session.req_header();
    let route_name = snapshot.routes.get(route).map_or("", |r| r.name.as_str());
    let keys: KeyValues<'_> = limits
        .0
        .iter()
        .map(|limit| match &limit.config.key {
            LimitKey::ClientIp => session.client_addr().and_then(|a| a.as_inet()).map(|peer| {
                let forwarded = req
                    .headers
                    .get(headers::names::FORWARDED_FOR)
                    .and_then(|v| v.to_str().ok());
                let trusted = &snapshot.config.proxy().trusted_proxies;
                let ip = ratelimit::key::client_ip(peer.ip(), forwarded, trusted);
                Cow::Owned(ip.to_string().into_bytes())
            }),
            LimitKey::Header(name) => req.headers.get(name).map(|v| Cow::Borrowed(v.as_bytes())),
            LimitKey::Query(name) => req
                .uri
                .query()
                .and_then(|q| headers::query_param(q, name))
                .map(|v| Cow::Borrowed(v.as_bytes())),
            LimitKey::Claim(name) => claims
                .and_then(|c| c.get(name))
                .and_then(|value| match value {
                    serde_json::Value::String(text) => Some(text.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    serde_json::Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .map(|text| Cow::Owned(text.into_bytes())),
            LimitKey::Route => Some(Cow::Borrowed(route_name.as_bytes())),
        })
        .collect();
    let mut note = ctx.explain.wanted.then(String::new);
    // Boxed, so the state of a limit check (a Redis round trip, for a shared limit) is not part
    // of every request's `request_filter` future, which Pingora moves into a box per request.
    let verdict = Box::pin(limits.check(&keys, ratelimit::now_ns(), note.as_mut(), remote)).await;
    if let Some(note) = note.filter(|note| !note.is_empty()) {
        ctx.explain.note(|| note);
    }
    ctx.quota = verdict.map_err(Reject::RateLimited)?;
    Ok(())
}

/// The IETF draft's `RateLimit-Policy` and `RateLimit` on a response to an allowed request of
/// a rate-limited route, whether proxied or served from the cache.
pub(super) fn add_quota_headers(
    ctx: &RequestCtx,
    response: &mut pingora::http::ResponseHeader,
) -> pingora::Result<()> {
    if let Some(quota) = &ctx.quota {
        response.insert_header("ratelimit-policy", quota.policy.as_str())?;
        response.insert_header("ratelimit", quota.state.as_str())?;
    }
    Ok(())
}

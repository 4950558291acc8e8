//! The access gates' phase (issue 25): `[proxy]`'s IP lists before routing, then for the
//! route, in order: its IP lists, the CORS preflight, and its auth (JWT, basic or forward).
//! All of them run before rate limits and the cache, so a refused client never reaches an
//! upstream or a cached object. What they leave for later phases (CORS response headers,
//! identity headers for the upstream) is kept in `AccessCtx`; the note naming a refusing gate goes
//! to `context::Explain`.

use super::RequestCtx;
use crate::access_control::{basic_auth, cors, forward_auth, Refusal};
use crate::config::access::IpRules;
use crate::config::RouteAuth;
use crate::error::{Answer, Reject};
use crate::headers;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;
use std::net::IpAddr;

/// What the gates decided, for the phases after admission.
#[derive(Default)]
pub(super) struct AccessCtx {
    /// The route has a CORS policy: every answer says `Vary: Origin`.
    cors_route: bool,
    /// An allowed origin's CORS headers for the response.
    cors_headers: Vec<(&'static str, String)>,
    /// Headers the upstream gets from the verified identity (claims, forward auth).
    identity: Vec<(HeaderName, HeaderValue)>,
}

/// How a route's gates stop a request.
pub(super) enum Stopped {
    /// A refusal (counted by admission).
    Refused(Reject),
    /// A CORS preflight, answered by the proxy.
    Preflight(Answer),
}

impl From<Reject> for Stopped {
    fn from(reject: Reject) -> Stopped {
        Stopped::Refused(reject)
    }
}

/// The client address as every gate sees it: the connection's peer, or behind
/// `[proxy] trusted_proxies` the first untrusted `X-Forwarded-For` hop (the same function rate
/// limits and the debug headers use).
pub(super) fn client_ip(session: &Session, ctx: &RequestCtx) -> Option<IpAddr> {
    let peer = session.client_addr().and_then(|a| a.as_inet())?.ip();
    let forwarded = session
        .req_header()
        .headers
        .get(headers::names::FORWARDED_FOR)
        .and_then(|v| v.to_str().ok());
    Some(crate::ratelimit::key::client_ip(
        peer,
        forwarded,
        &ctx.snapshot.config.proxy().trusted_proxies,
    ))
}

/// `[proxy]`'s IP lists, checked before the route is looked up.
pub(super) fn check_proxy_ip(session: &Session, ctx: &mut RequestCtx) -> Result<(), Reject> {
    let snapshot = ctx.snapshot.clone();
    check_ip(session, ctx, &snapshot.config.proxy().access, "[proxy]")
}

fn check_ip(
    session: &Session,
    ctx: &mut RequestCtx,
    rules: &IpRules,
    whose: &str,
) -> Result<(), Reject> {
    if rules.is_empty() {
        return Ok(());
    }
    // A request whose peer is not an IP address (a Unix socket) has no address to allow.
    let client = client_ip(session, ctx);
    let verdict = match client {
        Some(ip) if rules.deny.as_ref().is_some_and(|l| l.set.contains(ip)) => Some("deny"),
        Some(ip) if rules.allow.as_ref().is_some_and(|l| !l.set.contains(ip)) => Some("allow"),
        // No address (a Unix socket peer) cannot be in an allow list; a deny list alone lets it by.
        None if rules.allow.is_some() => Some("allow"),
        None => None,
        Some(_) => None,
    };
    match verdict {
        None => Ok(()),
        Some(list) => {
            note(
                ctx,
                format!(
                    "access: ip gate refused {} ({whose} {list} list)",
                    client.map_or_else(|| "-".to_string(), |ip| ip.to_string())
                ),
            );
            Err(Reject::Access(Refusal::Ip))
        }
    }
}

/// The route's gates, after the route is known. Returns the verified token's claims on a
/// JWT route (for rate limits keyed by a claim and header rules).
pub(super) async fn check_route(
    proxy: &super::Proxy,
    session: &Session,
    ctx: &mut RequestCtx,
    route: usize,
) -> std::result::Result<Option<serde_json::Value>, Stopped> {
    let snapshot = ctx.snapshot.clone();
    let Some(config) = snapshot.routes.get(route) else {
        return Ok(None);
    };
    let gates = &config.access;
    check_ip(session, ctx, &gates.ip, "route's")?;
    if let Some(policy) = &gates.cors {
        ctx.access.cors_route = true;
        let req = session.req_header();
        let text = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        match cors::decide(
            policy,
            &req.method,
            text("origin"),
            text("access-control-request-method"),
            text("access-control-request-headers"),
        ) {
            cors::Decision::NotCors => {}
            cors::Decision::Preflight(headers) => {
                // Answered here: a preflight never reaches auth, limits, the cache or an upstream.
                let mut answer = Answer::raw(204, bytes::Bytes::new(), "text/plain".to_string());
                answer.headers = headers;
                return Err(Stopped::Preflight(answer));
            }
            cors::Decision::Refused if is_preflight(session) => {
                note(ctx, "access: cors gate refused the preflight".to_string());
                return Err(Reject::Access(Refusal::Cors).into());
            }
            cors::Decision::Refused => {
                // The request goes on without CORS headers: the browser withholds the
                // response from the page. Counted as a refusal all the same.
                crate::listeners::count("cors");
            }
            cors::Decision::Actual(headers) => ctx.access.cors_headers = headers,
        }
    }
    let authorization = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match config.auth {
        RouteAuth::None => Ok(None),
        RouteAuth::Jwt => {
            let claims = proxy.check_token(session, ctx, route)?;
            if let Some(claims) = &claims {
                ctx.access.identity = config
                    .access
                    .claims_to_headers
                    .iter()
                    .filter_map(|entry| {
                        let value = match claims.get(&entry.claim)? {
                            serde_json::Value::String(text) => text.clone(),
                            serde_json::Value::Number(n) => n.to_string(),
                            serde_json::Value::Bool(b) => b.to_string(),
                            _ => return None,
                        };
                        Some((entry.header.clone(), HeaderValue::from_str(&value).ok()?))
                    })
                    .collect();
            }
            Ok(claims)
        }
        RouteAuth::Basic => {
            let Some(settings) = &gates.basic else {
                return Err(Reject::Internal.into());
            };
            match basic_auth::check(settings, authorization).await {
                Ok(user) => {
                    ctx.client.token_verified = true;
                    ctx.client.subject = Some(user);
                    Ok(None)
                }
                Err(refusal) => {
                    note(
                        ctx,
                        "access: basic gate refused the credentials".to_string(),
                    );
                    Err(Reject::Access(refusal).into())
                }
            }
        }
        RouteAuth::Forward => {
            let Some(settings) = &gates.forward else {
                return Err(Reject::Internal.into());
            };
            let req = session.req_header();
            let pool = snapshot
                .pools
                .iter()
                .find(|pool| pool.name() == settings.upstream);
            let uri = req.uri.path_and_query().map_or("/", |p| p.as_str());
            let asking = forward_auth::Asking {
                route: &config.name,
                method: req.method.as_str(),
                uri,
                host: req
                    .headers
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .or_else(|| req.uri.authority().map(|a| a.as_str())),
                client: client_ip(session, ctx),
                headers: &req.headers,
            };
            match Box::pin(forward_auth::check(settings, pool.map(|p| &**p), &asking)).await {
                Ok(passed) => {
                    ctx.client.token_verified = true;
                    ctx.access.identity = passed.headers;
                    Ok(None)
                }
                Err(refusal) => {
                    note(
                        ctx,
                        format!(
                            "access: forward gate refused ({} from the auth service)",
                            refusal.status()
                        ),
                    );
                    Err(Reject::Access(refusal).into())
                }
            }
        }
    }
}

fn is_preflight(session: &Session) -> bool {
    let req = session.req_header();
    req.method == http::Method::OPTIONS && req.headers.contains_key("access-control-request-method")
}

/// Names the gate that refused in the explain header (`context::Explain`, when asked for).
fn note(ctx: &mut RequestCtx, text: String) {
    ctx.explain.note(|| text);
}

/// CORS headers on every response of a CORS route (proxied, cached, answered by the proxy):
/// the allowed origin's headers, and `Vary: Origin` in any case.
pub(super) fn decorate(ctx: &RequestCtx, response: &mut ResponseHeader) -> Result<()> {
    if !ctx.access.cors_route {
        return Ok(());
    }
    for (name, value) in &ctx.access.cors_headers {
        response.insert_header(*name, value.as_str())?;
    }
    response.append_header(http::header::VARY, "Origin")?;
    Ok(())
}

/// The upstream request: client copies of the identity headers removed, then the verified
/// identity set; basic auth's `Authorization` removed unless `forward_credentials`.
pub(super) fn prepare_upstream(
    ctx: &RequestCtx,
    upstream_request: &mut pingora::http::RequestHeader,
) -> Result<()> {
    let Some(route) = ctx.route.and_then(|i| ctx.snapshot.routes.get(i)) else {
        return Ok(());
    };
    for name in route.access.identity_headers() {
        upstream_request.remove_header(name);
    }
    if route.auth == RouteAuth::Basic && !route.access.forward_credentials {
        upstream_request.remove_header(&http::header::AUTHORIZATION);
    }
    for (name, value) in &ctx.access.identity {
        upstream_request.append_header(name.clone(), value.clone())?;
    }
    Ok(())
}

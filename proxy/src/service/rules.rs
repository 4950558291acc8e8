//! The edge rules on the request path, in their documented order: `https_redirect` (right
//! after the route is known), then a route's `redirect` or `respond` (after auth and rate
//! limits, before the cache), then the path the upstream sees (`strip_prefix`, `rewrite`,
//! `add_prefix`) and the request header rules (`[proxy]`'s, then the route's), and on the way
//! back the response header rules. The rules themselves were compiled with the config; this
//! only renders them.

use super::RequestCtx;
use crate::config::edge::{HeaderRules, RuleValue};
use crate::config::Route;
use crate::error::Answer;
use crate::headers;
use crate::template::Vars;
use http::header::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;
use pingora::Result;
use std::borrow::Cow;

/// The request's host as the client named it, without the port (`Host`, or HTTP/2's
/// `:authority`).
fn host(session: &Session) -> Option<&str> {
    let req = session.req_header();
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(host, |(inside, _)| inside),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    (!host.is_empty()).then_some(host)
}

/// `[proxy] https_redirect` (or the route's own setting): a plain-HTTP request gets 308 to the
/// same URL on the first HTTPS listener, unless its path starts with one of
/// `https_redirect_except`. A request without a host cannot be redirected and is served.
pub(super) fn https_redirect(
    session: &Session,
    ctx: &mut RequestCtx,
    route: Option<&Route>,
) -> Option<Answer> {
    let proxy = ctx.snapshot.config.proxy();
    let wanted = route
        .and_then(|route| route.https_redirect)
        .unwrap_or(proxy.edge.https_redirect);
    if !wanted || arrived_over_tls(session) {
        return None;
    }
    let req = session.req_header();
    let path = req.uri.path();
    if proxy
        .edge
        .https_redirect_except
        .iter()
        .any(|prefix| path.starts_with(prefix.as_str()))
    {
        return None;
    }
    let port = proxy.tls_listen.first()?.port();
    let host = host(session)?;
    let host = if host.contains(':') {
        Cow::Owned(format!("[{host}]"))
    } else {
        Cow::Borrowed(host)
    };
    let port = if port == 443 {
        String::new()
    } else {
        format!(":{port}")
    };
    let target = req.uri.path_and_query().map_or(path, |pq| pq.as_str());
    let location = format!("https://{host}{port}{target}");
    Some(redirect_answer(308, location, ctx, "https_redirect"))
}

fn redirect_answer(status: u16, location: String, ctx: &mut RequestCtx, why: &str) -> Answer {
    let mut answer = Answer::new(
        status,
        serde_json::json!({"redirect": location, "status": status}),
    );
    ctx.explain
        .note(|| format!("redirect: {why} to {location} ({status})"));
    answer.headers.push(("location", location));
    answer
}

/// A route's own answer: its `respond`, or its `redirect` when its `path_regex` (if any)
/// matches. `None`: the request goes on to the cache and the upstream.
pub(super) fn route_answer(
    session: &Session,
    ctx: &mut RequestCtx,
    route: &Route,
) -> Option<Answer> {
    if let Some(respond) = &route.respond {
        return Some(Answer::raw(
            respond.status,
            bytes::Bytes::from(respond.body.clone()),
            respond.content_type.clone(),
        ));
    }
    let redirect = route.redirect.as_ref()?;
    let req = session.req_header();
    let path = req.uri.path();
    let captures = match &redirect.path_regex {
        Some(pattern) => Some(pattern.0.captures(path)?),
        None => None,
    };
    let vars = Vars {
        captures: captures.as_ref(),
        ..request_vars(session, ctx, route)
    };
    let location = redirect.to.render(&vars);
    let status = redirect.status_for(&req.method);
    if HeaderValue::from_str(&location).is_err() {
        // Only the client's own values can make it so (a host or path with bytes a header
        // cannot carry): its request is bad, not the proxy.
        return Some(Answer::error(
            400,
            "the redirect target made from this request is not a valid Location",
        ));
    }
    Some(redirect_answer(
        status,
        location,
        ctx,
        &format!("route {}", route.name),
    ))
}

/// The request's values for a template.
fn request_vars<'a>(session: &'a Session, ctx: &'a RequestCtx, route: &'a Route) -> Vars<'a> {
    let req = session.req_header();
    Vars {
        scheme: if arrived_over_tls(session) {
            "https"
        } else {
            "http"
        },
        host: host(session).unwrap_or(""),
        path: req.uri.path(),
        query: req.uri.query(),
        request_id: ctx.request_id.to_str().unwrap_or(""),
        client_ip: ctx
            .client
            .ip
            .as_ref()
            .and_then(|ip| ip.to_str().ok())
            .unwrap_or(""),
        route: &route.name,
        // Known once a server is chosen (header rules); empty for a redirect.
        upstream_server: ctx
            .attempts
            .lease
            .as_ref()
            .and_then(|lease| lease.server().addr_header.to_str().ok())
            .unwrap_or(""),
        captures: None,
        claims: ctx.client.claims.as_ref(),
    }
}

/// The path the upstream sees: the client's, less the route's prefix with `strip_prefix`,
/// rewritten by `rewrite` when its regex matches, then behind `add_prefix`. Borrowed when no
/// rule changes it. The explain header names the rewrite.
pub(super) fn upstream_path<'a>(
    session: &Session,
    ctx: &mut RequestCtx,
    route: &Route,
    path: &'a str,
) -> Cow<'a, str> {
    let mut path = if route.strip_prefix {
        headers::strip_path_prefix(path, &route.path)
    } else {
        Cow::Borrowed(path)
    };
    if let Some(rewrite) = &route.rewrite {
        let rewritten = rewrite.path_regex.0.captures(&path).map(|captures| {
            let vars = Vars {
                captures: Some(&captures),
                path: &path,
                ..request_vars(session, ctx, route)
            };
            rewrite.to.render(&vars)
        });
        if let Some(mut rewritten) = rewritten {
            // `to = "{1}"` with an empty group leaves nothing: the upstream still gets a path.
            if !rewritten.starts_with('/') {
                rewritten.insert(0, '/');
            }
            ctx.explain.note(|| {
                format!(
                    "rewrite: {path} -> {rewritten} ({})",
                    rewrite.path_regex.0.as_str()
                )
            });
            path = Cow::Owned(rewritten);
        }
    }
    if let Some(prefix) = &route.add_prefix {
        path = Cow::Owned(if path.starts_with('/') {
            format!("{prefix}{path}")
        } else {
            format!("{prefix}/{path}")
        });
    }
    path
}

/// Applies `[proxy]`'s request header rules, then the route's, to the upstream request.
pub(super) fn request_headers(
    session: &Session,
    ctx: &RequestCtx,
    route: &Route,
    request: &mut RequestHeader,
) -> Result<()> {
    let proxy = &ctx.snapshot.config.proxy().edge.request_headers;
    if proxy.is_empty() && route.request_headers.is_empty() {
        return Ok(());
    }
    let vars = request_vars(session, ctx, route);
    apply(proxy, &vars, request)?;
    apply(&route.request_headers, &vars, request)
}

/// Applies `[proxy]`'s response header rules, then the route's, to any response of a matched
/// route: proxied, served from the cache, or answered by the proxy itself.
pub(super) fn response_headers(
    session: &Session,
    ctx: &RequestCtx,
    response: &mut ResponseHeader,
) -> Result<()> {
    // CORS first, so a route's header rules can still change what it set.
    super::gates::decorate(ctx, response)?;
    let proxy = &ctx.snapshot.config.proxy().edge.response_headers;
    let route = ctx.route.and_then(|i| ctx.snapshot.routes.get(i));
    if proxy.is_empty() && route.is_none_or(|route| route.response_headers.is_empty()) {
        return Ok(());
    }
    let Some(route) = route else {
        return apply(proxy, &Vars::default(), response);
    };
    let vars = request_vars(session, ctx, route);
    apply(proxy, &vars, response)?;
    apply(&route.response_headers, &vars, response)
}

/// The three edits a header rule makes, on a request head or a response head alike.
trait HeaderEdit {
    fn remove(&mut self, name: &http::HeaderName);
    fn insert(&mut self, name: &http::HeaderName, value: HeaderValue) -> Result<()>;
    fn append(&mut self, name: &http::HeaderName, value: HeaderValue) -> Result<()>;
}

impl HeaderEdit for RequestHeader {
    fn remove(&mut self, name: &http::HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: &http::HeaderName, value: HeaderValue) -> Result<()> {
        self.insert_header(name.clone(), value)
    }
    fn append(&mut self, name: &http::HeaderName, value: HeaderValue) -> Result<()> {
        self.append_header(name.clone(), value).map(|_| ())
    }
}

impl HeaderEdit for ResponseHeader {
    fn remove(&mut self, name: &http::HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: &http::HeaderName, value: HeaderValue) -> Result<()> {
        self.insert_header(name.clone(), value)
    }
    fn append(&mut self, name: &http::HeaderName, value: HeaderValue) -> Result<()> {
        self.append_header(name.clone(), value).map(|_| ())
    }
}

/// One set of rules, in their order: remove, then set, then add.
fn apply(rules: &HeaderRules, vars: &Vars, head: &mut impl HeaderEdit) -> Result<()> {
    for name in &rules.remove {
        head.remove(&name.0);
    }
    for (name, value) in &rules.set {
        if let Some(value) = render(value, vars) {
            head.insert(&name.0, value)?;
        }
    }
    for (name, value) in &rules.add {
        if let Some(value) = render(value, vars) {
            head.append(&name.0, value)?;
        }
    }
    Ok(())
}

/// A rule's value for this request; `None` (the header is left out) when a variable's value
/// made it something a header cannot carry.
fn render(value: &RuleValue, vars: &Vars) -> Option<HeaderValue> {
    match value {
        RuleValue::Fixed(value) => Some(value.clone()),
        RuleValue::Template(template) => HeaderValue::from_str(&template.render(vars)).ok(),
    }
}

/// Whether the client's connection is TLS (it arrived on a `tls_listen` address): the scheme
/// the client used, which the upstream learns from `X-Forwarded-Proto`. Read from the
/// connection's digest, which Pingora fills at the handshake for HTTP/1.1 and HTTP/2 alike.
pub(super) fn arrived_over_tls(session: &Session) -> bool {
    session
        .digest()
        .is_some_and(|digest| digest.ssl_digest.is_some())
}

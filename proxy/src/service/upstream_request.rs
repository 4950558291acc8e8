//! What the upstream receives: the request rewritten for the route (prefix and control
//! parameter removed), the proxy's control and identity headers replaced by its own, and the
//! forwarding headers added.

use super::RequestCtx;
use crate::headers;
use http::header::HeaderValue;
use pingora::prelude::Session;
use pingora::{Error, ErrorType, Result};

/// Rewrites `upstream_request` (a copy of the client's request) for the upstream.
pub(super) fn rewrite_upstream_request(
    session: &mut Session,
    upstream_request: &mut pingora::http::RequestHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    super::tunnel::prepare_upstream(upstream_request, ctx)?;
    let snapshot = ctx.snapshot.clone();
    let route = ctx.route.and_then(|r| snapshot.routes.get(r));
    // Most routes change nothing: their path is never copied.
    let changed: Option<String> = route
        .filter(|r| r.strip_prefix || r.rewrite.is_some() || r.add_prefix.is_some())
        .and_then(|route| {
            let client = upstream_request.uri.path();
            let path = super::rules::upstream_path(session, ctx, route, client);
            (path != client).then(|| path.into_owned())
        });
    let path = match &changed {
        Some(path) => std::borrow::Cow::Borrowed(path.as_str()),
        None => std::borrow::Cow::Borrowed(upstream_request.uri.path()),
    };
    let query = upstream_request.uri.query();
    let rewritten =
        headers::strip_query_param(&path, query, headers::STRATEGY_PARAM).or_else(|| {
            (path != upstream_request.uri.path()).then(|| match query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            })
        });
    if let Some(rewritten) = rewritten {
        let uri = rewritten
            .parse::<http::Uri>()
            .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "bad rewritten uri"))?;
        upstream_request.set_uri(uri);
    }
    ctx.upstream_path = changed;
    // Control headers are the proxy's to read and identity headers the proxy's to set; a
    // client's own are never passed on.
    for name in headers::present(&upstream_request.headers, &headers::CLIENT_CONTROL) {
        upstream_request.remove_header(name);
    }
    super::gates::prepare_upstream(ctx, upstream_request)?;
    // A `sub` that cannot be a header value is not forwarded rather than failing the request.
    if let Some(subject) = ctx
        .client
        .subject
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        upstream_request.insert_header(headers::AUTH_SUBJECT, subject)?;
    }
    if ctx.client.ip.is_none() {
        ctx.client.ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .and_then(|addr| HeaderValue::from_str(&addr.ip().to_string()).ok());
    }
    if let Some(client_ip) = &ctx.client.ip {
        match upstream_request
            .headers
            .get(headers::names::FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(existing) => {
                let chain =
                    headers::forwarded_for(Some(existing), client_ip.to_str().unwrap_or(""));
                upstream_request.insert_header(headers::FORWARDED_FOR, chain)?;
            }
            None => upstream_request.insert_header(headers::FORWARDED_FOR, client_ip.clone())?,
        }
    }
    upstream_request.insert_header(
        headers::FORWARDED_PROTO,
        headers::forwarded_proto(super::rules::arrived_over_tls(session)),
    )?;
    upstream_request.insert_header(headers::REQUEST_ID, ctx.request_id.clone())?;
    if snapshot.config.proxy().edge.forwarded {
        let forwarded = headers::forwarded(
            upstream_request
                .headers
                .get(http::header::FORWARDED)
                .and_then(|v| v.to_str().ok()),
            ctx.client.ip.as_ref().and_then(|ip| ip.to_str().ok()),
            if super::rules::arrived_over_tls(session) {
                "https"
            } else {
                "http"
            },
            // HTTP/2 names the host in `:authority`, HTTP/1.1 in `Host`.
            session
                .req_header()
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| session.req_header().uri.authority().map(|a| a.as_str())),
        );
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            upstream_request.insert_header(http::header::FORWARDED, value)?;
        }
    }
    super::spans::forward(ctx, upstream_request)?;
    if let Some(route) = route {
        super::rules::request_headers(session, ctx, route, upstream_request)?;
    }
    Ok(())
}

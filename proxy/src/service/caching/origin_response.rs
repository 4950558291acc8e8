//! After the origin answered: the request path's side of the cache's storing decision
//! (`CacheStore::on_origin_response`): the stale object's head on a 5xx, `Cache-Status` for
//! what was decided, collecting the body, and the cache headers of a response that came from
//! the origin.

use super::{conditionals, request_header};
use crate::cache::{Entry, FillGuard, Lifetimes, OriginResponse, Storing};
use crate::headers;
use crate::service::RequestCtx;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// Asks the cache what becomes of the origin's response and records it: collection of a
/// storable body, `Cache-Status`, and on a 5xx with a stale-if-error object at hand, the
/// stored answer in place of the origin's.
pub fn on_upstream_response(
    session: &Session,
    ctx: &mut RequestCtx,
    response: &mut ResponseHeader,
) -> Result<()> {
    let verified = ctx.client.token_verified;
    let Some(cache) = ctx.cache.as_mut() else {
        return Ok(());
    };
    let Some(route) = ctx.route.and_then(|r| ctx.snapshot.routes.get(r)) else {
        return Ok(());
    };
    let Some(route_cache) = route.cache.as_ref() else {
        return Ok(());
    };
    let req = session.req_header();
    let storing = cache.store.on_origin_response(
        &OriginResponse {
            key: &cache.key,
            route: &route.name,
            method: &req.method,
            status: response.status,
            headers: &response.headers,
            request_has_authorization: req.headers.contains_key(http::header::AUTHORIZATION),
            proxy_verified_token: verified,
            cache_ttl_param: req
                .uri
                .query()
                .and_then(|q| headers::query_param(q, "cache_ttl")),
            conditionals: conditionals(session),
            request_header: &|name| request_header(session, name),
            lifetimes: Lifetimes {
                default_ttl: route_cache.default_ttl,
                stale_while_revalidate: route_cache.stale_while_revalidate,
                stale_if_error: route_cache.stale_if_error,
            },
        },
        cache.stale.take(),
    );
    let forward = cache.mode.forward();
    match storing {
        Storing::ServeStale(stale) => {
            *response = stale_header(&stale)?;
            cache.cache_status = "scalelab; fwd=stale; detail=origin-5xx".to_string();
            cache.serving_stale = Some(stale);
        }
        Storing::NotModified { detail } => {
            cache.cache_status = format!("scalelab; {forward}; fwd-status=304; detail={detail}");
        }
        Storing::Store {
            collect,
            ttl,
            ttl_source,
        } => {
            cache.collect = Some(collect);
            cache.cache_status = format!("scalelab; {forward}; stored; ttl={}", ttl.as_secs());
            cache.stored_note = ttl_source.as_str();
        }
        Storing::Skip(reason) => {
            cache.cache_status = format!("scalelab; {forward}; detail={}", reason.as_str());
        }
    }
    Ok(())
}

fn stale_header(entry: &Entry) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(entry.status, Some(entry.headers.len() + 4))?;
    for (name, value) in &entry.headers {
        header.append_header(name.clone(), value.clone())?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, entry.body.len().to_string())?;
    header.insert_header(http::header::AGE, entry.age().as_secs().to_string())?;
    Ok(header)
}

/// Adds the cache headers to a response that came from the origin.
pub fn decorate(ctx: &mut RequestCtx, response: &mut ResponseHeader) -> Result<()> {
    let Some(cache) = ctx.cache.as_ref() else {
        return Ok(());
    };
    response.insert_header(headers::CACHE, cache.origin_word())?;
    if !cache.cache_status.is_empty() {
        response.insert_header(headers::CACHE_STATUS, cache.cache_status.clone())?;
    }
    ctx.explain.note(|| {
        format!(
            "cache: key={:?}; mode={:?}; ttl from {}",
            cache.key,
            cache.mode,
            if cache.stored_note.is_empty() {
                "-"
            } else {
                cache.stored_note
            }
        )
    });
    Ok(())
}

/// Collects the origin's body for storage; stores it at the end.
pub fn on_upstream_body(ctx: &mut RequestCtx, body: &Option<Bytes>, end_of_stream: bool) {
    let Some(cache) = ctx.cache.as_mut() else {
        return;
    };
    let Some(collect) = cache.collect.as_mut() else {
        return;
    };
    if let Some(chunk) = body {
        if !collect.push(chunk) {
            cache.collect = None;
            return;
        }
    }
    if end_of_stream {
        if let Some(collect) = cache.collect.take() {
            let token = cache.fill.as_mut().and_then(FillGuard::take_fleet_token);
            cache.store.insert_filled(collect.finish(), token);
        }
        // Waiters may look again now.
        cache.fill = None;
    }
}

/// Replaces the origin's 5xx body with the stale object's body.
pub fn replace_body_if_stale(ctx: &mut RequestCtx, body: &mut Option<Bytes>) {
    let Some(cache) = ctx.cache.as_mut() else {
        return;
    };
    let Some(stale) = cache.serving_stale.as_ref() else {
        return;
    };
    if cache.stale_body_sent {
        *body = None;
    } else {
        *body = Some(stale.body.clone());
        cache.stale_body_sent = true;
    }
}

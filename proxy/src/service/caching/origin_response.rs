//! After the origin answered: whether its response is stored (and collecting its body), the
//! freshening of a stored object on a 304, the stale-if-error swap on a 5xx, and the cache
//! headers of a response that came from the origin.

use super::{conditionals, request_header, CacheCtx};
use crate::cache::policy::{self, CacheControl, Conditionals, StoreInput};
use crate::cache::{Entry, FillGuard, NewEntry};
use crate::config::RouteCache;
use crate::headers;
use crate::service::RequestCtx;
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// A response being stored: the object so far and its body as it arrives.
pub(super) struct Collect {
    new: NewEntry,
    body: BytesMut,
    max: usize,
}

/// Response fields never stored with an object: they describe one connection or one response.
const NOT_STORED_HEADERS: [&str; 10] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "age",
    "date",
    "set-cookie",
];

/// A response's fields that are stored with an object (or merged into it on a 304).
///
/// Each value is copied: Pingora's parsed header values are slices of the whole response read
/// buffer (4 KiB or more), so a clone would keep that buffer alive for as long as the object is
/// stored, several times the size of a small object and invisible to `max_bytes`.
fn storable_headers(response: &ResponseHeader) -> Vec<(http::HeaderName, http::HeaderValue)> {
    response
        .headers
        .iter()
        .filter(|(name, _)| !NOT_STORED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            let copy = http::HeaderValue::from_bytes(value.as_bytes()).ok()?;
            Some((name.clone(), copy))
        })
        .collect()
}

/// Decides whether the upstream response will be stored and prepares collection; on a 5xx
/// with a stale-if-error object at hand, swaps the answer for the stored one.
pub fn on_upstream_response(
    session: &Session,
    ctx: &mut RequestCtx,
    response: &mut ResponseHeader,
) -> Result<()> {
    let verified = ctx.client.token_verified;
    let Some(cache) = ctx.cache.as_mut() else {
        return Ok(());
    };
    let Some(route_cache) = ctx
        .route
        .and_then(|r| ctx.snapshot.routes.get(r))
        .and_then(|r| r.cache.as_ref())
    else {
        return Ok(());
    };
    if response.status.as_u16() >= 500 {
        if let Some(stale) = cache.stale.take() {
            *response = stale_header(&stale)?;
            cache.cache_status = "scalelab; fwd=stale; detail=origin-5xx".to_string();
            cache.serving_stale = Some(stale);
            return Ok(());
        }
    }
    if response.status == http::StatusCode::NOT_MODIFIED {
        let detail = freshen(session, cache, route_cache, response);
        cache.cache_status = format!(
            "scalelab; {}; fwd-status=304; detail={detail}",
            cache.mode.forward()
        );
        return Ok(());
    }
    let req = session.req_header();
    let response_cc = CacheControl::parse(
        response
            .headers
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let vary: Vec<String> = response
        .headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    let content_length = response
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let settings = &cache.store.settings;
    let decision = policy::storable(&StoreInput {
        method: req.method.as_str(),
        status: response.status.as_u16(),
        cacheable_statuses: &settings.cacheable_statuses,
        response_cc: &response_cc,
        has_set_cookie: response.headers.contains_key(http::header::SET_COOKIE),
        vary_star: vary.iter().any(|v| v == "*"),
        request_has_authorization: req.headers.contains_key(http::header::AUTHORIZATION),
        proxy_verified_token: verified,
        content_length,
        max_object_bytes: settings.max_object_bytes,
        has_trailers: policy::ends_in_trailers(&response.headers),
    });
    let (ttl, ttl_source) = policy::freshness(
        req.uri
            .query()
            .and_then(|q| crate::headers::query_param(q, "cache_ttl")),
        &response_cc,
        route_cache.default_ttl,
    );
    let forward = cache.mode.forward();
    match decision {
        Ok(()) if !ttl.is_zero() => {
            let headers = storable_headers(response);
            let tags = response
                .headers
                .get_all("surrogate-key")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect();
            let vary = vary
                .into_iter()
                .map(|name| {
                    let value = request_header(session, &name);
                    (name, value)
                })
                .collect();
            cache.collect = Some(Collect {
                new: NewEntry {
                    key: cache.key.clone(),
                    route: ctx
                        .route
                        .and_then(|r| ctx.snapshot.routes.get(r))
                        .map_or_else(String::new, |r| r.name.clone()),
                    status: response.status.as_u16(),
                    headers,
                    body: Bytes::new(),
                    head_only: req.method == http::Method::HEAD,
                    ttl,
                    ttl_source,
                    stale_while_revalidate: policy::bounded(route_cache.stale_while_revalidate),
                    stale_if_error: policy::bounded(route_cache.stale_if_error),
                    tags,
                    vary,
                },
                body: BytesMut::with_capacity(
                    content_length
                        .unwrap_or(1024)
                        .min(settings.max_object_bytes),
                ),
                max: settings.max_object_bytes,
            });
            cache.cache_status = format!("scalelab; {forward}; stored; ttl={}", ttl.as_secs());
            cache.stored_note = ttl_source.as_str();
        }
        Ok(()) => cache.cache_status = format!("scalelab; {forward}; detail=zero-ttl"),
        Err(reason) => {
            cache.cache_status = format!("scalelab; {forward}; detail={}", reason.as_str())
        }
    }
    Ok(())
}

/// The origin answered 304 to a request whose validators came from the stored object (a
/// revalidation, a background refresh, or a client's own conditional request that matches
/// what we store): that object is current, so it gets the 304's headers and a new TTL. Returns
/// what happened, for `Cache-Status`.
fn freshen(
    session: &Session,
    cache: &CacheCtx,
    route_cache: &RouteCache,
    response: &ResponseHeader,
) -> &'static str {
    let store = &cache.store;
    let key = store.storage_key(&cache.key, &|name| request_header(session, name));
    let Some((_, stored)) = store.peek(&key) else {
        return "not-stored";
    };
    // The 304 must be about our representation: its ETag, when it sends one, is ours, and the
    // validators the request carried match the stored ones.
    let named_etag = response
        .headers
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok());
    let ours = named_etag.is_none_or(|etag| {
        policy::not_modified(
            Conditionals {
                if_none_match: Some(etag),
                if_modified_since: None,
            },
            stored.validators(),
        )
    }) && policy::not_modified(conditionals(session), stored.validators());
    if !ours {
        return "validator-mismatch";
    }
    let updates = storable_headers(response);
    let mut headers: Vec<_> = stored
        .headers
        .iter()
        .filter(|(name, _)| !updates.iter().any(|(updated, _)| updated == name))
        .cloned()
        .collect();
    headers.extend(
        updates
            .into_iter()
            .filter(|(name, _)| *name != http::header::CONTENT_LENGTH),
    );
    let cc = CacheControl::parse(
        headers
            .iter()
            .filter(|(name, _)| *name == http::header::CACHE_CONTROL)
            .filter_map(|(_, v)| v.to_str().ok()),
    );
    if cc.no_store || cc.private {
        return "no-store";
    }
    let (ttl, source) = policy::freshness(
        session
            .req_header()
            .uri
            .query()
            .and_then(|q| crate::headers::query_param(q, "cache_ttl")),
        &cc,
        route_cache.default_ttl,
    );
    match store.freshen(&stored, headers, ttl, source) {
        Some(_) => "freshened",
        None => "not-stored",
    }
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
        if collect.body.len() + chunk.len() > collect.max {
            cache.collect = None;
            return;
        }
        collect.body.extend_from_slice(chunk);
    }
    if end_of_stream {
        if let Some(mut collect) = cache.collect.take() {
            // A body of unknown length grew by doubling; don't store the slack with it.
            collect.new.body =
                if collect.body.capacity() > collect.body.len() + collect.body.len() / 8 {
                    Bytes::copy_from_slice(&collect.body)
                } else {
                    collect.body.freeze()
                };
            let token = cache.fill.as_mut().and_then(FillGuard::take_fleet_token);
            cache.store.insert_filled(collect.new, token);
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

//! Before routing: the request's cache mode, the lookup with coalescing (one request fills a
//! missing key while the others wait for it), and answering hits, stale objects and
//! conditional requests from the store.

use super::super::own_headers::Origin;
use super::refresh::spawn_refresh;
use super::{conditionals, header_value, CacheCtx, Mode};
use crate::cache::policy::{self, CacheControl};
use crate::cache::{CacheStore, Found, Lookup as CacheLookup, Outcome};
use crate::config::key_template::KeyInput;
use crate::config::RouteCache;
use crate::headers;
use crate::service::RequestCtx;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;
use std::sync::Arc;

/// The fields a 304 carries from the stored response (RFC 9110 section 15.4.5).
const NOT_MODIFIED_HEADERS: [&str; 6] = [
    "cache-control",
    "content-location",
    "etag",
    "expires",
    "vary",
    "last-modified",
];

fn wants(query: Option<&str>, name: &str) -> bool {
    query
        .and_then(|q| crate::headers::query_param(q, name))
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Decides the request's cache mode and, on a usable hit, answers it. Returns true when the
/// response was sent from the cache.
pub async fn lookup(
    session: &mut Session,
    ctx: &mut RequestCtx,
    store: Arc<CacheStore>,
    route_cache: &RouteCache,
) -> Result<bool> {
    let req = session.req_header();
    let head = req.method == http::Method::HEAD;
    let key = {
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.host())
            .unwrap_or("");
        route_cache.key.render(&KeyInput {
            method: req.method.as_str(),
            host,
            path: req.uri.path(),
            query: req.uri.query(),
            headers: &req.headers,
        })
    };
    let query = req.uri.query();
    let request_cc = CacheControl::parse(
        req.headers
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let pragma_no_cache = req
        .headers
        .get(http::header::PRAGMA)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
    let mode = if wants(query, "bypass_cache") {
        Mode::Bypass
    } else if request_cc.no_cache || pragma_no_cache {
        Mode::Revalidate
    } else {
        Mode::Miss
    };
    let mut cache = CacheCtx {
        store: store.clone(),
        key,
        mode,
        fill: None,
        stale: None,
        collect: None,
        serving_stale: None,
        stale_body_sent: false,
        cache_status: String::new(),
        stored_note: "",
        served: None,
    };
    if mode != Mode::Miss {
        ctx.cache = Some(cache);
        return Ok(false);
    }
    let headers = &session.req_header().headers;
    let outcome = store
        .lookup_for_request(&CacheLookup {
            key: &cache.key,
            head,
            header: &|name| header_value(headers, name),
        })
        .await;
    match outcome {
        Outcome::Hit {
            found,
            stale,
            refresh,
        } => {
            if refresh {
                spawn_refresh(session, ctx, found.entry.clone());
            }
            ctx.cache = Some(cache);
            let served = if stale {
                Served::StaleWhileRevalidate
            } else {
                Served::Hit
            };
            serve(session, ctx, &found, served).await?;
            return Ok(true);
        }
        Outcome::Lead { fill, stale } => {
            cache.fill = Some(fill);
            cache.stale = stale;
        }
        Outcome::Forward { stale } => cache.stale = stale,
    }
    ctx.cache = Some(cache);
    Ok(false)
}

/// Which kind of cached answer this is, for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Hit,
    StaleWhileRevalidate,
    StaleIfError,
}

/// Writes a stored object as the response (headers only for HEAD).
pub async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    found: &Found,
    served: Served,
) -> Result<()> {
    // Leftover request body bytes must not be parsed as the next request (CVE-2025-4366).
    session.drain_request_body().await?;
    let entry = &found.entry;
    // A client that already has this representation gets a 304 from the cache (conditionals
    // apply only to a 2xx answer, RFC 9110 section 13.2.1).
    let asked = conditionals(session);
    // Most hits carry no conditionals: skip looking for the stored validators then.
    let not_modified = asked.any()
        && (200..300).contains(&entry.status)
        && policy::not_modified(asked, entry.validators());
    let status = if not_modified { 304 } else { entry.status };
    let mut header = ResponseHeader::build(status, Some(entry.headers.len() + 8))?;
    for (name, value) in &entry.headers {
        if !not_modified || NOT_MODIFIED_HEADERS.contains(&name.as_str()) {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    if !not_modified {
        header.insert_header(http::header::CONTENT_LENGTH, entry.body.len().to_string())?;
    }
    header.insert_header(http::header::AGE, entry.age().as_secs().to_string())?;
    let tier = found.tier_name.as_str();
    let (x_cache, cache_status) = match served {
        Served::Hit => ("HIT", format!("scalelab; hit; detail={tier}")),
        Served::StaleWhileRevalidate => {
            ("STALE", format!("scalelab; hit; fwd=stale; detail={tier}"))
        }
        Served::StaleIfError => (
            "STALE",
            format!("scalelab; fwd=stale; detail={tier}-if-error"),
        ),
    };
    header.insert_header(headers::CACHE, x_cache)?;
    header.insert_header(headers::CACHE_TIER, tier.to_string())?;
    header.insert_header(headers::CACHE_STATUS, cache_status)?;
    let key = ctx.cache.as_ref().map_or("", |c| c.key.as_str());
    ctx.explain.note(|| {
        format!(
            "cache: key={key:?}; tier={tier}; ttl={}s from {}; age={}s; ttl_left={}s; hits={}; promotion={}",
            entry.ttl.as_secs(),
            entry.ttl_source.as_str(),
            entry.age().as_secs(),
            entry.ttl_left().as_secs(),
            entry.hits(),
            found.promoted.as_deref().unwrap_or("none"),
        )
    });
    super::super::own_headers::write(session, ctx, &mut header, Origin::Cached)?;
    let no_body = not_modified || session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), no_body)
        .await?;
    if !no_body {
        session
            .write_response_body(Some(entry.body.clone()), true)
            .await?;
    }
    if let Some(cache) = ctx.cache.as_mut() {
        cache.served = Some(x_cache);
    }
    Ok(())
}

/// The origin could not be reached: answer with the stale-if-error object if there is one.
pub async fn serve_stale_on_error(session: &mut Session, ctx: &mut RequestCtx) -> bool {
    let Some(stale) = ctx.cache.as_mut().and_then(|c| c.stale.take()) else {
        return false;
    };
    let found = Found {
        tier_name: "stale".to_string(),
        entry: stale,
        promoted: None,
    };
    serve(session, ctx, &found, Served::StaleIfError)
        .await
        .is_ok()
}

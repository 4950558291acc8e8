//! The cache's part of the request path: lookup (with coalescing and stale serving) before
//! routing to an upstream, collection and storage of cacheable responses, stale-if-error, the
//! `POST /cache/invalidate` endpoint and the background refresh of stale objects.

use super::RequestCtx;
use crate::cache::key::KeyInput;
use crate::cache::policy::{self, CacheControl, Conditionals, StoreInput, Usability};
use crate::cache::{CacheStore, Entry, Fill, FillGuard, Found, NewEntry, Selector};
use crate::config::RouteCache;
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How this request uses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Looked up and missed (or found only a stale-if-error candidate).
    Miss,
    /// `?bypass_cache=true`: no lookup, but the response is stored.
    Bypass,
    /// `Cache-Control: no-cache` from the client: go to the origin, store the answer.
    Revalidate,
}

impl Mode {
    /// How the request went forward, in `Cache-Status` terms (RFC 9211 `fwd`).
    fn forward(self) -> &'static str {
        match self {
            Mode::Miss => "fwd=miss",
            Mode::Bypass => "fwd=bypass",
            Mode::Revalidate => "fwd=request",
        }
    }
}

/// Cache state one request carries between phases.
pub struct CacheCtx {
    pub store: Arc<CacheStore>,
    pub key: String,
    pub mode: Mode,
    /// Held while this request fills the key, so concurrent misses wait for it.
    pub fill: Option<FillGuard>,
    /// A stored object usable only if the origin fails.
    pub stale: Option<Arc<Entry>>,
    collect: Option<Collect>,
    /// Set when the origin failed with 5xx and the stale object replaces its answer.
    serving_stale: Option<Arc<Entry>>,
    stale_body_sent: bool,
    cache_status: String,
    stored_note: &'static str,
}

struct Collect {
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

/// The fields a 304 carries from the stored response (RFC 9110 section 15.4.5).
const NOT_MODIFIED_HEADERS: [&str; 6] = [
    "cache-control",
    "content-location",
    "etag",
    "expires",
    "vary",
    "last-modified",
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

fn conditionals(session: &Session) -> Conditionals<'_> {
    let headers = &session.req_header().headers;
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    Conditionals {
        if_none_match: text(http::header::IF_NONE_MATCH),
        if_modified_since: text(http::header::IF_MODIFIED_SINCE),
    }
}

fn request_header(session: &Session, name: &str) -> Option<String> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

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
    };
    if mode != Mode::Miss {
        ctx.cache = Some(cache);
        return Ok(false);
    }
    // A waiter re-checks after the leader finishes; the bound keeps a chain of failing
    // leaders from holding a request forever.
    for _ in 0..3 {
        // Re-derived on every pass: the leader we waited for may have learnt that the key varies.
        let storage_key = store.storage_key(&cache.key, &|name| request_header(session, name));
        let fits = |entry: &Entry| {
            entry.matches_vary(&|name| request_header(session, name)) && (head || !entry.head_only)
        };
        if let Some(found) = store.lookup(&storage_key) {
            if fits(&found.entry) {
                match found.entry.usability() {
                    Usability::Fresh => {
                        ctx.cache = Some(cache);
                        serve(session, ctx, &found, Served::Hit).await?;
                        return Ok(true);
                    }
                    Usability::StaleRevalidate => {
                        if found.entry.claim_refresh() {
                            spawn_refresh(session, ctx, &found.entry);
                        }
                        ctx.cache = Some(cache);
                        serve(session, ctx, &found, Served::StaleWhileRevalidate).await?;
                        return Ok(true);
                    }
                    Usability::StaleIfError => cache.stale = Some(found.entry.clone()),
                    Usability::Expired => {}
                }
            }
        }
        let answers = |entry: &Entry| {
            fits(entry)
                && matches!(
                    entry.usability(),
                    Usability::Fresh | Usability::StaleRevalidate
                )
        };
        match store.begin_fill(&storage_key, &answers) {
            Fill::Leader(guard) => {
                cache.fill = Some(guard);
                break;
            }
            // A leader stored it since our lookup: the next pass finds it.
            Fill::Stored => {}
            Fill::Wait(mut waiter) => {
                let bound = store.settings.lock_timeout;
                if tokio::time::timeout(bound, waiter.changed()).await.is_err() {
                    // The leader is slow: go to the origin too rather than wait longer.
                    break;
                }
            }
        }
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
        header.insert_header("content-length", entry.body.len().to_string())?;
    }
    header.insert_header("age", entry.age().as_secs().to_string())?;
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
    header.insert_header("x-cache", x_cache)?;
    header.insert_header("x-cache-tier", tier.to_string())?;
    header.insert_header("cache-status", cache_status)?;
    header.insert_header("x-request-id", ctx.request_id.clone())?;
    header.insert_header(
        "x-config-generation",
        ctx.snapshot.generation_header.clone(),
    )?;
    if ctx.explain {
        let key = ctx.cache.as_ref().map_or("", |c| c.key.as_str());
        header.insert_header(
            "x-scalelab-explain",
            format!(
                "cache: key={key:?}; tier={tier}; ttl={}s from {}; age={}s; ttl_left={}s; hits={}; promotion={}",
                entry.ttl.as_secs(),
                entry.ttl_source.as_str(),
                entry.age().as_secs(),
                entry.ttl_left().as_secs(),
                entry.hits(),
                found.promoted.as_deref().unwrap_or("none"),
            ),
        )?;
    }
    let no_body = not_modified || session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), no_body)
        .await?;
    if !no_body {
        session
            .write_response_body(Some(entry.body.clone()), true)
            .await?;
    }
    ctx.cache_served = Some(x_cache);
    Ok(())
}

/// Decides whether the upstream response will be stored and prepares collection; on a 5xx
/// with a stale-if-error object at hand, swaps the answer for the stored one.
pub fn on_upstream_response(
    session: &Session,
    ctx: &mut RequestCtx,
    response: &mut ResponseHeader,
) -> Result<()> {
    let verified = ctx.token_verified;
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
                    stale_while_revalidate: route_cache.stale_while_revalidate,
                    stale_if_error: route_cache.stale_if_error,
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
    header.insert_header("content-length", entry.body.len().to_string())?;
    header.insert_header("age", entry.age().as_secs().to_string())?;
    Ok(header)
}

/// Adds the cache headers to a response that came from the origin.
pub fn decorate(ctx: &RequestCtx, response: &mut ResponseHeader) -> Result<()> {
    let Some(cache) = ctx.cache.as_ref() else {
        return Ok(());
    };
    let x_cache = if cache.serving_stale.is_some() {
        "STALE"
    } else {
        match cache.mode {
            Mode::Bypass => "BYPASS",
            Mode::Miss | Mode::Revalidate => "MISS",
        }
    };
    response.insert_header("x-cache", x_cache)?;
    if !cache.cache_status.is_empty() {
        response.insert_header("cache-status", cache.cache_status.clone())?;
    }
    if ctx.explain {
        response.append_header(
            "x-scalelab-explain",
            format!(
                "cache: key={:?}; mode={:?}; ttl from {}",
                cache.key,
                cache.mode,
                if cache.stored_note.is_empty() {
                    "-"
                } else {
                    cache.stored_note
                }
            ),
        )?;
    }
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
            cache.store.insert(collect.new);
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

/// Fetches a stale object again through this proxy's own listener, with `no-cache` so the
/// answer replaces the stored object, and with the object's validators so an unchanged object
/// costs the origin only a 304 (which freshens it). Runs in the background; the client already
/// has its stale answer.
fn spawn_refresh(session: &Session, ctx: &RequestCtx, entry: &Entry) {
    let Some(listen) = ctx.snapshot.config.proxy.listen.first().copied() else {
        return;
    };
    let target = if listen.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    let req = session.req_header();
    let path = req
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut request =
        format!("GET {path} HTTP/1.1\r\nCache-Control: no-cache\r\nConnection: close\r\n");
    for name in [
        http::header::HOST,
        http::header::AUTHORIZATION,
        http::header::ACCEPT,
    ] {
        if let Some(value) = req.headers.get(&name).and_then(|v| v.to_str().ok()) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    // The varying headers select the variant being refreshed.
    for (name, value) in &entry.vary {
        if matches!(name.as_str(), "host" | "authorization" | "accept") {
            continue;
        }
        if let Some(value) = value {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let validators = entry.validators();
    for (name, value) in [
        (http::header::IF_NONE_MATCH, validators.etag),
        (http::header::IF_MODIFIED_SINCE, validators.last_modified),
    ] {
        if let Some(value) = value {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    tokio::spawn(async move {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(target).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut sink = Vec::new();
            stream.read_to_end(&mut sink).await?;
            Ok::<_, std::io::Error>(())
        };
        if let Err(error) = tokio::time::timeout(Duration::from_secs(60), attempt)
            .await
            .unwrap_or(Ok(()))
        {
            tracing::warn!(%error, "background cache refresh failed");
        }
    });
}

/// `POST /cache/invalidate` with `{"key"|"prefix"|"tag": ..., "soft": bool}`.
pub async fn invalidate(
    session: &mut Session,
    ctx: &RequestCtx,
    store: &CacheStore,
) -> Result<(u16, serde_json::Value)> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > 64 * 1024 {
            return Ok((413, json!({"error": "body too large", "limit": 65536})));
        }
        body.extend_from_slice(&chunk);
    }
    let _ = ctx;
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            return Ok((
                400,
                json!({"error": "invalid JSON body", "detail": error.to_string()}),
            ));
        }
    };
    let soft = value
        .get("soft")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let text = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let Some(selector) = Selector::from_one(text("key"), text("prefix"), text("tag")) else {
        return Ok((
            400,
            json!({"error": "expected exactly one of \"key\", \"prefix\" (non-empty) or \"tag\" as a string"}),
        ));
    };
    Ok((200, store.invalidate_report(&selector, soft)))
}

//! The request path's side of mirroring: whether this request is copied (`percent`), the
//! head as it goes upstream, the body as it streams by (up to `max_body`), and the hand-off to
//! `crate::mirror`'s task once the body is whole. Nothing here waits for the copy.

use super::RequestCtx;
use crate::balance::splitting::mirrored;
use crate::upstream::UpstreamPool;
use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::prelude::Session;
use std::sync::Arc;

/// A copy being put together.
pub(super) struct Copying {
    pool: Arc<UpstreamPool>,
    route: String,
    max_body: u64,
    /// The head of the latest try, as sent upstream; a retry replaces it and restarts the body.
    head: Option<(http::Method, String, http::HeaderMap)>,
    body: BytesMut,
}

/// Decides, for a request admission forwards, whether it is copied.
pub(super) fn start(session: &Session, ctx: &mut RequestCtx, route: usize) {
    // An upgrade is its own connection, not a request a shadow can answer.
    if ctx.upgrade.is_some() {
        return;
    }
    let snapshot = ctx.snapshot.clone();
    let Some(route_config) = snapshot.routes.get(route) else {
        return;
    };
    let Some(mirror) = &route_config.mirror else {
        return;
    };
    if !mirrored(mirror.percent, fastrand::u64(..)) {
        return;
    }
    let Some(pool) = snapshot.mirror_pool(route).cloned() else {
        return;
    };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > mirror.max_body) {
        crate::mirror::count(&route_config.name, pool.name(), "too_large");
        return;
    }
    ctx.mirror = Some(Copying {
        pool,
        route: route_config.name.clone(),
        max_body: mirror.max_body,
        head: None,
        body: BytesMut::new(),
    });
}

/// Keeps the head this try sends upstream (after the route's rewrites).
pub(super) fn capture_head(ctx: &mut RequestCtx, request: &RequestHeader) {
    let Some(copying) = ctx.mirror.as_mut() else {
        return;
    };
    let mut headers = request.headers.clone();
    for name in [
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
        http::header::EXPECT,
        http::header::CONNECTION,
    ] {
        headers.remove(name);
    }
    // Lets the shadow tell a copy from a client's request.
    headers.insert(
        crate::headers::names::MIRROR,
        http::HeaderValue::from_static("1"),
    );
    let target = request
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    copying.head = Some((request.method.clone(), target, headers));
    copying.body.clear();
}

/// Collects a body chunk; at the end of the body, sends the copy.
pub(super) fn on_body(ctx: &mut RequestCtx, chunk: Option<&Bytes>, end: bool) {
    let Some(copying) = ctx.mirror.as_mut() else {
        return;
    };
    if let Some(chunk) = chunk {
        if (copying.body.len() + chunk.len()) as u64 > copying.max_body {
            crate::mirror::count(&copying.route, copying.pool.name(), "too_large");
            ctx.mirror = None;
            return;
        }
        copying.body.extend_from_slice(chunk);
    }
    if !end {
        return;
    }
    let Some(copying) = ctx.mirror.take() else {
        return;
    };
    let Some((method, target, headers)) = copying.head else {
        crate::mirror::count(&copying.route, copying.pool.name(), "incomplete");
        return;
    };
    let copy = crate::mirror::Copy {
        method,
        target,
        headers,
        body: copying.body.freeze(),
    };
    crate::mirror::spawn(copying.pool, copying.route, copy);
}

/// At the request's end: a copy whose body never ended (the client or the upstream gave up
/// first) is counted and dropped.
pub(super) fn finish(ctx: &mut RequestCtx) {
    if let Some(copying) = ctx.mirror.take() {
        crate::mirror::count(&copying.route, copying.pool.name(), "incomplete");
    }
}

//! The background refresh of a stale object, through this proxy's own listener.

use crate::cache::Entry;
use crate::http1;
use crate::service::RequestCtx;
use http::header::{
    HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, HOST, IF_MODIFIED_SINCE,
    IF_NONE_MATCH,
};
use pingora::prelude::Session;
use std::sync::Arc;
use std::time::Duration;

/// How long a refresh may take, body included. Generous, since the origin behind the stale
/// object may be slow, but bounded so that a hung refresh does not hold a task and a
/// connection forever.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(60);

/// Fetches a stale object again through this proxy's own listener, with `no-cache` so the
/// answer replaces the stored object, and with the object's validators so an unchanged object
/// costs the origin only a 304 (which freshens it). Runs in the background; the client already
/// has its stale answer. A refresh that fails, times out or gets an error status is logged as a
/// warning.
pub(super) fn spawn_refresh(session: &Session, ctx: &RequestCtx, entry: Arc<Entry>) {
    let Some(listen) = ctx.snapshot.config.proxy().listen.first().copied() else {
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
    let mut headers = http::HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for name in [HOST, AUTHORIZATION, ACCEPT] {
        if let Some(value) = req.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    // The varying headers select the variant being refreshed.
    for (name, value) in &entry.vary {
        if matches!(name.as_str(), "host" | "authorization" | "accept") {
            continue;
        }
        if let Some(value) = value {
            insert(&mut headers, name, value);
        }
    }
    let validators = entry.validators();
    for (name, value) in [
        (IF_NONE_MATCH, validators.etag),
        (IF_MODIFIED_SINCE, validators.last_modified),
    ] {
        if let Some(value) = value {
            insert(&mut headers, name.as_str(), value);
        }
    }
    tokio::spawn(async move {
        let failed = match http1::get(target, &path, headers, REFRESH_TIMEOUT).await {
            Ok(status) if status.as_u16() < 400 => {
                tracing::debug!(
                    path,
                    status = status.as_u16(),
                    "background cache refresh done"
                );
                false
            }
            Ok(status) => {
                tracing::warn!(
                    path,
                    status = status.as_u16(),
                    "background cache refresh got an error status"
                );
                true
            }
            Err(error) => {
                tracing::warn!(path, %error, "background cache refresh failed");
                true
            }
        };
        if failed {
            entry.release_refresh();
        }
    });
}

/// Adds a field taken from a stored object. Its name and value came from valid fields, so this
/// should not fail; if it does, the field is left out rather than the whole refresh.
fn insert(headers: &mut http::HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

//! `POST /cache/invalidate`, the seed's invalidation endpoint on the proxy listener.

use crate::cache::{CacheStore, Invalidation};
use crate::service::RequestCtx;
use pingora::prelude::Session;
use pingora::Result;
use serde_json::json;

/// The largest request body the endpoint reads.
const MAX_BODY: usize = 64 * 1024;

/// `POST /cache/invalidate` with `{"key"|"prefix"|"tag": ..., "soft": bool}`, read by the
/// same parser as the admin API's `DELETE /admin/cache`. The request context is unused: the
/// endpoint needs only the body and the store, but is called like the other cache phases.
pub async fn invalidate(
    session: &mut Session,
    _ctx: &RequestCtx,
    store: &CacheStore,
) -> Result<(u16, serde_json::Value)> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok((413, json!({"error": "body too large", "limit": MAX_BODY})));
        }
        body.extend_from_slice(&chunk);
    }
    match Invalidation::from_json(&body) {
        Ok(request) => Ok((200, store.invalidate_report(&request))),
        Err(error) => Ok((400, error.body())),
    }
}

//! `POST /cache/invalidate`, the seed's invalidation endpoint on the proxy listener.

use crate::cache::{CacheStore, Invalidation};
use crate::error::Answer;
use pingora::prelude::Session;
use pingora::Result;
use serde_json::json;

/// The endpoint's path on the proxy listener (with `POST`).
pub const INVALIDATE_PATH: &str = "/cache/invalidate";

/// The largest request body the endpoint reads.
const MAX_BODY: usize = 64 * 1024;

/// `POST /cache/invalidate` with `{"key"|"prefix"|"tag": ..., "soft": bool}`, read by the
/// same parser as the admin API's `DELETE /admin/cache`.
pub async fn invalidate(session: &mut Session, store: &CacheStore) -> Result<Answer> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(Answer::new(
                413,
                json!({"error": "body too large", "limit": MAX_BODY}),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(match Invalidation::from_json(&body) {
        Ok(request) => Answer::ok(store.invalidate_everywhere(&request).await),
        Err(error) => Answer::new(400, error.body()),
    })
}

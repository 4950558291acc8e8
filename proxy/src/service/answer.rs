//! The one writer of answers the proxy makes itself on the proxy listener (the admin API has
//! its own, `IntoResponse for Answer`): status, JSON body, request id, and the config
//! generation when the request may see the diagnostic headers.

use super::RequestCtx;
use crate::error::Answer;
use crate::headers;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// Writes an answer the proxy makes itself (a refusal, a failure, the invalidation endpoint's
/// result); the only writer of such answers on the proxy listener.
pub(super) async fn write_answer(
    session: &mut Session,
    ctx: &RequestCtx,
    answer: &Answer,
) -> Result<()> {
    let generation = ctx.debug.then_some(&ctx.snapshot.generation_header);
    let (mut header, body) = response(answer, &ctx.request_id, generation)?;
    // A refusal by a rate limit explains itself when asked, as a proxied response does.
    if let Some(note) = &ctx.limits_note {
        header.insert_header(headers::EXPLAIN, note.as_str())?;
    }
    if let Some(note) = super::gates::refusal_note(ctx) {
        header.insert_header(headers::EXPLAIN, note)?;
    }
    super::rules::response_headers(session, ctx, &mut header)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// The response head and body of an answer; also used for the request heads Pingora refuses
/// before a request context exists. `generation` is the diagnostic `X-Config-Generation`,
/// given only when the request may see the diagnostic headers.
pub(super) fn response(
    answer: &Answer,
    request_id: &HeaderValue,
    generation: Option<&HeaderValue>,
) -> Result<(ResponseHeader, Bytes)> {
    let body: Bytes = answer.body_bytes();
    let mut header = ResponseHeader::build(answer.status, Some(6))?;
    header.insert_header(http::header::CONTENT_TYPE, answer.content_type())?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    header.insert_header(headers::REQUEST_ID, request_id.clone())?;
    if let Some(generation) = generation {
        header.insert_header(headers::CONFIG_GENERATION, generation.clone())?;
    }
    if answer.no_store {
        header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    }
    for (name, value) in &answer.headers {
        header.insert_header(*name, value.as_str())?;
    }
    Ok((header, body))
}

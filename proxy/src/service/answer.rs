//! The one writer of answers the proxy makes itself on the proxy listener (the admin API has
//! its own, `IntoResponse for Answer`): status, JSON body, and the proxy's own headers written
//! by `own_headers`, as on every other answer.

use super::own_headers::Origin;
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
    ctx: &mut RequestCtx,
    answer: &Answer,
) -> Result<()> {
    let (mut header, body) = answer_head(answer)?;
    super::own_headers::write(session, ctx, &mut header, Origin::Answered)?;
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
    let (mut header, body) = answer_head(answer)?;
    header.insert_header(headers::REQUEST_ID, request_id.clone())?;
    if let Some(generation) = generation {
        header.insert_header(headers::CONFIG_GENERATION, generation.clone())?;
    }
    Ok((header, body))
}

/// An answer's own head and body: status, type, length, caching and its headers.
fn answer_head(answer: &Answer) -> Result<(ResponseHeader, Bytes)> {
    let body: Bytes = answer.body_bytes();
    let mut header = ResponseHeader::build(answer.status, Some(6))?;
    header.insert_header(http::header::CONTENT_TYPE, answer.content_type())?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    if answer.no_store {
        header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    }
    for (name, value) in &answer.headers {
        header.insert_header(*name, value.as_str())?;
    }
    Ok((header, body))
}

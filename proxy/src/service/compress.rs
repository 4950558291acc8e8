//! Compression on the response path, just before the proxy's own headers and the response
//! header rules (`own_headers`), so a rule sees and may change what compression wrote:
//! `on_response` plans a proxied response and rewrites its head, `on_body` encodes its
//! body chunk by chunk, `on_cached` and `encode_cached` do the same for a cache hit, whose
//! stored body is always the upstream's identity bytes. `upstream_request` asks the upstream
//! of a compressing route for identity, so the cache holds one object per key whatever the
//! clients accept, and this is the one place that encodes.

use super::RequestCtx;
use crate::compression::plan::{merged_vary, no_transform, weak_etag};
use crate::compression::ResponseFacts;
use crate::compression::{self, counters, CompressSettings, Encoder, Flush, Plan, RequestFacts};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;
use pingora::{Error, ErrorType, Result};

/// The chunk a cached body is encoded and written in, so a large object does not become one
/// large encoded buffer.
pub(super) const CACHED_CHUNK: usize = 64 * 1024;

fn settings(ctx: &RequestCtx) -> Option<&CompressSettings> {
    ctx.route
        .and_then(|i| ctx.snapshot.routes.get(i))
        .and_then(|route| route.compress.as_ref())
}

/// The upstream of a compressing route is asked for identity: the proxy encodes for each
/// client, and the cache stores the upstream's bytes once, never one client's encoding.
pub(super) fn upstream_request(ctx: &RequestCtx, request: &mut RequestHeader) {
    if settings(ctx).is_some() {
        request.remove_header(&header::ACCEPT_ENCODING);
    }
}

/// Plans a proxied response: rewrites its head and keeps the encoder for `on_body`.
pub(super) fn on_response(
    session: &Session,
    ctx: &mut RequestCtx,
    response: &mut ResponseHeader,
) -> Result<()> {
    let Some(settings) = settings(ctx) else {
        return Ok(());
    };
    let facts = response_facts(response.status.as_u16(), response.headers.iter());
    let flush = flush_for(facts.content_type, response.headers.iter());
    let plan = plan_for(session, settings, facts);
    let encoder = apply(session, settings, &plan, flush, response)?;
    ctx.explain.note(|| explain(&plan));
    ctx.compressing = encoder.map(Box::new);
    Ok(())
}

/// Encodes one chunk of a proxied body; the last call adds the encoder's trailer.
pub(super) fn on_body(
    ctx: &mut RequestCtx,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
) -> Result<()> {
    let Some(encoder) = ctx.compressing.as_mut() else {
        return Ok(());
    };
    if encoder.is_finished() {
        *body = None;
        return Ok(());
    }
    let mut out = match body.as_deref() {
        Some(chunk) if !chunk.is_empty() => encode(encoder, chunk)?,
        _ => Bytes::new(),
    };
    if end_of_stream {
        let tail = finish(encoder)?;
        out = if out.is_empty() {
            tail
        } else {
            let mut joined = BytesMut::with_capacity(out.len() + tail.len());
            joined.extend_from_slice(&out);
            joined.extend_from_slice(&tail);
            joined.freeze()
        };
    }
    *body = (!out.is_empty() || end_of_stream).then_some(out);
    Ok(())
}

/// Plans a cache hit (`status` and `headers` are the stored object's, `head` the response
/// being built). A 304 gets the 200's `Vary` and weak `ETag`, so the client's validator
/// matches what it was sent. Returns the encoder when the body is to be encoded.
pub(super) fn on_cached(
    session: &Session,
    ctx: &mut RequestCtx,
    stored: (u16, &[(HeaderName, HeaderValue)], usize),
    not_modified: bool,
    head: &mut ResponseHeader,
) -> Result<Option<Encoder>> {
    let Some(settings) = settings(ctx) else {
        return Ok(None);
    };
    let (status, stored_headers, length) = stored;
    let mut facts = response_facts(status, stored_headers.iter().map(|(n, v)| (n, v)));
    facts.content_length = Some(length as u64);
    let flush = flush_for(
        facts.content_type,
        stored_headers.iter().map(|(n, v)| (n, v)),
    );
    let plan = plan_for(session, settings, facts);
    let encoder = if not_modified {
        if plan.vary {
            add_vary(head)?;
        }
        if plan.outcome.is_ok() {
            weaken_etag(head)?;
        }
        None
    } else {
        apply(session, settings, &plan, flush, head)?
    };
    ctx.explain.note(|| explain(&plan));
    Ok(encoder)
}

/// One chunk of a cached body, encoded; the cache lookup writes it (it is the one writer of
/// cached objects).
pub(super) fn encode_cached(encoder: &mut Encoder, chunk: &[u8]) -> Result<Bytes> {
    encode(encoder, chunk)
}

/// The end of a cached body's encoded stream.
pub(super) fn finish_cached(encoder: &mut Encoder) -> Result<Bytes> {
    finish(encoder)
}

fn encode(encoder: &mut Encoder, chunk: &[u8]) -> Result<Bytes> {
    let out = encoder.encode(chunk).map_err(failed)?;
    counters::count(encoder.encoding(), chunk.len() as u64, out.len() as u64);
    Ok(out)
}

fn finish(encoder: &mut Encoder) -> Result<Bytes> {
    let tail = encoder.finish().map_err(failed)?;
    counters::count(encoder.encoding(), 0, tail.len() as u64);
    Ok(tail)
}

fn failed(error: std::io::Error) -> Box<Error> {
    Error::because(ErrorType::InternalError, "compressing the response", error)
}

fn plan_for(session: &Session, settings: &CompressSettings, response: ResponseFacts) -> Plan {
    let request = session.req_header();
    let accept: Vec<&str> = request
        .headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    compression::plan(
        settings,
        RequestFacts {
            head: request.method == http::Method::HEAD,
            http10: !session.is_http2() && request.version < http::Version::HTTP_11,
            accept_encoding: &accept,
        },
        response,
    )
}

fn response_facts<'a>(
    status: u16,
    headers: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
) -> ResponseFacts<'a> {
    let mut facts = ResponseFacts {
        status,
        ..ResponseFacts::default()
    };
    let mut cache_control = Vec::new();
    for (name, value) in headers {
        let text = value.to_str().ok();
        if name == header::CONTENT_TYPE {
            facts.content_type = text;
        } else if name == header::CONTENT_ENCODING {
            // A value that is not text is an encoding we cannot name: leave it alone.
            facts.content_encoding = Some(text.unwrap_or("unknown"));
        } else if name == header::CONTENT_LENGTH {
            facts.content_length = text.and_then(|t| t.trim().parse().ok());
        } else if name == header::CONTENT_RANGE {
            facts.content_range = true;
        } else if name == header::CACHE_CONTROL {
            cache_control.extend(text);
        }
    }
    facts.no_transform = no_transform(cache_control);
    facts
}

/// The flush policy for a response with this type and these fields.
fn flush_for<'a>(
    content_type: Option<&str>,
    mut headers: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
) -> Flush {
    let accel_buffering = headers
        .find(|(name, _)| name.as_str() == "x-accel-buffering")
        .and_then(|(_, value)| value.to_str().ok());
    Flush::for_response(content_type, accel_buffering)
}

/// Rewrites the head for the plan; returns the encoder when the body is to be encoded.
fn apply(
    session: &Session,
    settings: &CompressSettings,
    plan: &Plan,
    flush: Flush,
    response: &mut ResponseHeader,
) -> Result<Option<Encoder>> {
    if plan.vary {
        add_vary(response)?;
    }
    let Ok(encoding) = plan.outcome else {
        return Ok(None);
    };
    let encoder = match Encoder::new(encoding, settings.level(encoding), flush) {
        Ok(encoder) => encoder,
        Err(error) => {
            // The response can still go out as it is.
            tracing::warn!(%error, encoding = encoding.token(), "cannot start an encoder");
            return Ok(None);
        }
    };
    // The encoded length is known only at the end, and a range of the identity bytes no
    // longer applies.
    response.remove_header(&header::CONTENT_LENGTH);
    response.remove_header(&header::ACCEPT_RANGES);
    response.insert_header(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.token()),
    )?;
    weaken_etag(response)?;
    if !session.is_http2() {
        // HTTP/1.1 frames a body of unknown length in chunks; HTTP/2 frames it itself.
        response.insert_header(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        )?;
    }
    Ok(Some(encoder))
}

fn add_vary(response: &mut ResponseHeader) -> Result<()> {
    let merged = merged_vary(
        response
            .headers
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    if let Some(vary) = merged {
        response.insert_header(header::VARY, vary)?;
    }
    Ok(())
}

fn weaken_etag(response: &mut ResponseHeader) -> Result<()> {
    let Some(etag) = response.headers.get(header::ETAG) else {
        return Ok(());
    };
    match etag.to_str().ok().and_then(weak_etag) {
        Some(weak) => response.insert_header(header::ETAG, weak)?,
        None => {
            response.remove_header(&header::ETAG);
        }
    }
    Ok(())
}

fn explain(plan: &Plan) -> String {
    match plan.outcome {
        Ok(encoding) => format!("compress: {}", encoding.token()),
        Err(skip) => format!("compress: identity ({})", skip.as_str()),
    }
}

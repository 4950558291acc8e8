//! Request framing the proxy refuses or normalises before a request goes upstream, on top of
//! what Pingora's HTTP/1 parser already rejects (bad `Content-Length` forms, conflicting
//! duplicates, a final coding other than `chunked`, HTTP/1.0 with `Transfer-Encoding`). Pure:
//! it reads a header map and says what to change; `service::admission` applies it.

#[cfg(test)]
mod tests;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue};

/// What a request's framing fields need before the request may be forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Forward the fields as they are.
    Unchanged,
    /// Replace every `Content-Length` field by this single value: the client sent the same
    /// length more than once (`5, 5`, or the field twice), which RFC 9112 section 6.3 allows a
    /// recipient to accept only by sending one valid value on.
    SingleContentLength(HeaderValue),
}

/// Why a request's framing is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// `chunked` applied twice is not the same encoding as once (RFC 9112 section 6.1 forbids
    /// applying it more than once); HAProxy refuses it too.
    #[error("Transfer-Encoding applies chunked more than once")]
    ChunkedTwice,
    /// Pingora reconciles equal duplicates; anything else left here is ambiguous.
    #[error("Content-Length is not one decimal length")]
    AmbiguousContentLength,
    /// RFC 9112 section 3.2: a server must answer 400 to an HTTP/1.1 request without `Host`.
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
}

/// Checks that an HTTP/1.1 request names its host (Pingora refuses two `Host` fields).
///
/// # Errors
/// `MissingHost` for an HTTP/1.1 request without one.
pub fn check_host(version: http::Version, headers: &HeaderMap) -> Result<(), FramingError> {
    if version == http::Version::HTTP_11 && !headers.contains_key(http::header::HOST) {
        return Err(FramingError::MissingHost);
    }
    Ok(())
}

/// Checks the framing fields of a request head Pingora has already accepted.
///
/// # Errors
/// When the framing is ambiguous in a way the proxy must not pass on.
pub fn check(headers: &HeaderMap) -> Result<Framing, FramingError> {
    let chunked = list_tokens(headers, &TRANSFER_ENCODING)
        .filter(|token| token.eq_ignore_ascii_case(b"chunked"))
        .count();
    if chunked > 1 {
        return Err(FramingError::ChunkedTwice);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        // Pingora drops Content-Length when Transfer-Encoding is present (RFC 9112 section 6.3).
        return Ok(Framing::Unchanged);
    }
    let lines = headers.get_all(CONTENT_LENGTH).iter().count();
    let mut tokens = list_tokens(headers, &CONTENT_LENGTH);
    let Some(first) = tokens.next() else {
        return Ok(Framing::Unchanged);
    };
    if !first.iter().all(u8::is_ascii_digit) || first.is_empty() {
        return Err(FramingError::AmbiguousContentLength);
    }
    let mut repeated = false;
    for token in tokens {
        if token != first {
            return Err(FramingError::AmbiguousContentLength);
        }
        repeated = true;
    }
    if !repeated && lines == 1 {
        return Ok(Framing::Unchanged);
    }
    // Leading zeros are one length too; send the canonical form.
    let canonical = std::str::from_utf8(first)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or(FramingError::AmbiguousContentLength)?;
    Ok(Framing::SingleContentLength(HeaderValue::from(canonical)))
}

/// The comma-separated elements of every line of a list-valued field, trimmed of optional
/// whitespace (RFC 9110 section 5.6.1); empty elements are skipped, as the RFC allows.
fn list_tokens<'a>(
    headers: &'a HeaderMap,
    name: &'a http::header::HeaderName,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .map(|token| token.trim_ascii())
        .filter(|token| !token.is_empty())
}

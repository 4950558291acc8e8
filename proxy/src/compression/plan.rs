//! Whether one response is compressed, and whether it varies on `Accept-Encoding`. Pure.
//!
//! The response's own properties are looked at first: a response that is never compressed
//! (already encoded, `no-transform`, a range, a bodiless status, a type not listed, a body
//! known to be under `min_bytes`) is the same for every client, so it gets no `Vary`. Every
//! other one does, whatever this client accepts, since another client's copy would differ
//! (a shared cache downstream must not give one client's encoding to another).

use super::negotiate::choose;
use crate::config::compress::{CompressSettings, Encoding};

/// What the plan needs from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub head: bool,
    /// HTTP/1.0 has no chunked encoding, so a compressed body (whose length is unknown until
    /// the end) would have to close the connection: such clients get identity, as nginx's
    /// `gzip_http_version 1.1` does.
    pub http10: bool,
    /// The `Accept-Encoding` field lines.
    pub accept_encoding: &'a [&'a str],
}

/// What the plan needs from the response head.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    /// `None` when the length is unknown (chunked, or HTTP/2 without the field).
    pub content_length: Option<u64>,
    /// Any `Cache-Control` line names `no-transform`.
    pub no_transform: bool,
    /// `Content-Range` is present (a range of a representation, or a 416's size).
    pub content_range: bool,
}

/// Why a response goes out unencoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// 1xx, 204 and 304 carry no body to compress.
    Status,
    Encoded,
    NoTransform,
    /// A 206, or any response with `Content-Range`.
    Range,
    Type,
    Small,
    Head,
    Http10,
    /// The client accepts none of the route's encodings (or prefers identity).
    Client,
}

impl Skip {
    /// The word the explain header and the tests use.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Status => "status",
            Skip::Encoded => "already-encoded",
            Skip::NoTransform => "no-transform",
            Skip::Range => "range",
            Skip::Type => "type",
            Skip::Small => "small",
            Skip::Head => "head",
            Skip::Http10 => "http/1.0",
            Skip::Client => "not-accepted",
        }
    }
}

/// The decision for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Add `Accept-Encoding` to `Vary`.
    pub vary: bool,
    pub outcome: Result<Encoding, Skip>,
}

impl Plan {
    fn same_for_all(skip: Skip) -> Plan {
        Plan {
            vary: false,
            outcome: Err(skip),
        }
    }
}

pub fn plan(settings: &CompressSettings, request: RequestFacts, response: ResponseFacts) -> Plan {
    if matches!(response.status, 100..=199 | 204 | 304) {
        return Plan::same_for_all(Skip::Status);
    }
    // A range (or a 416 naming the size) is of the identity bytes.
    if response.status == 206 || response.content_range {
        return Plan::same_for_all(Skip::Range);
    }
    if response
        .content_encoding
        .is_some_and(|ce| !ce.trim().is_empty() && !ce.trim().eq_ignore_ascii_case("identity"))
    {
        return Plan::same_for_all(Skip::Encoded);
    }
    if response.no_transform {
        return Plan::same_for_all(Skip::NoTransform);
    }
    if !settings.compresses_type(response.content_type) {
        return Plan::same_for_all(Skip::Type);
    }
    // A body of unknown length is compressed: it is usually streamed or large, and its first
    // bytes cannot wait to learn its size.
    // An empty body has nothing to encode, even with `min_bytes = 0`.
    if response
        .content_length
        .is_some_and(|length| length == 0 || length < settings.min_bytes)
    {
        return Plan::same_for_all(Skip::Small);
    }
    let outcome = if request.head {
        Err(Skip::Head)
    } else if request.http10 {
        Err(Skip::Http10)
    } else {
        choose(request.accept_encoding.iter().copied(), &settings.encodings).ok_or(Skip::Client)
    };
    Plan {
        vary: true,
        outcome,
    }
}

/// Whether a `Cache-Control` line names `no-transform`.
pub fn no_transform<'a>(lines: impl IntoIterator<Item = &'a str>) -> bool {
    lines.into_iter().any(|line| {
        line.split(',')
            .any(|directive| directive.trim().eq_ignore_ascii_case("no-transform"))
    })
}

/// `Vary` with `Accept-Encoding` merged in: `None` when the field already names it (or `*`).
pub fn merged_vary<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for line in lines {
        for name in line.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" || name.eq_ignore_ascii_case("accept-encoding") {
                return None;
            }
            names.push(name);
        }
    }
    names.push("Accept-Encoding");
    Some(names.join(", "))
}

/// A strong `ETag` made weak (the encoded bytes differ from the identity ones, RFC 9110
/// section 8.8.1); a weak one stays; a malformed one (not a quoted string) is dropped, as
/// nginx's gzip filter does. `None`: remove the field.
pub fn weak_etag(etag: &str) -> Option<String> {
    if etag.starts_with("W/") {
        Some(etag.to_string())
    } else if etag.starts_with('"') && etag.len() >= 2 && etag.ends_with('"') {
        Some(format!("W/{etag}"))
    } else {
        None
    }
}

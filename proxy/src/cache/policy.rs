//! Cache decisions as pure functions: what may be stored, how long it stays fresh and where
//! that TTL came from, and whether a stored object may be served fresh or stale.

use std::time::Duration;

/// The longest lifetime an object can be given: 365 days. A client (`?cache_ttl=`), an origin
/// (`max-age`, `s-maxage`) or the config (`default_ttl`, stale windows) asking for more gets
/// this, so an object's deadlines (its TTL plus a stale window) stay far from `Duration`'s
/// limit.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `lifetime`, at most `MAX_TTL`.
pub fn bounded(lifetime: Duration) -> Duration {
    lifetime.min(MAX_TTL)
}

/// Seconds in `Cache-Control` or `?cache_ttl=`. A number too large for a `u64` counts as the
/// largest one (RFC 9111 section 1.2.2), which `bounded` then caps, rather than as absent.
fn delta_seconds(text: &str) -> Option<u64> {
    match text.parse::<u64>() {
        Ok(seconds) => Some(seconds),
        Err(error) if *error.kind() == std::num::IntErrorKind::PosOverflow => Some(u64::MAX),
        Err(_) => None,
    }
}

/// The directives of a `Cache-Control` field that matter to a shared cache.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
}

impl CacheControl {
    /// Parses every `Cache-Control` value of a message (they combine).
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in values {
            for directive in value.split(',') {
                let directive = directive.trim();
                let (name, argument) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "max-age" => cc.max_age = argument.and_then(delta_seconds),
                    "s-maxage" => cc.s_maxage = argument.and_then(delta_seconds),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Why a response is not stored (also shown by the explain header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Method,
    Status,
    NoStore,
    Private,
    SetCookie,
    VaryStar,
    AuthorizedNotPublic,
    UnverifiedAuthorization,
    TooLarge,
    ZeroTtl,
    Trailers,
}

impl NotStored {
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::SetCookie => "set-cookie",
            NotStored::VaryStar => "vary-star",
            NotStored::AuthorizedNotPublic => "authorization-without-public",
            NotStored::UnverifiedAuthorization => "authorization-not-verified-by-proxy",
            NotStored::TooLarge => "too-large",
            NotStored::ZeroTtl => "zero-ttl",
            NotStored::Trailers => "trailers",
        }
    }
}

/// The facts `storable` decides on.
#[derive(Debug, Clone, Copy)]
pub struct StoreInput<'a> {
    pub method: &'a str,
    pub status: u16,
    pub cacheable_statuses: &'a [u16],
    pub response_cc: &'a CacheControl,
    pub has_set_cookie: bool,
    pub vary_star: bool,
    pub request_has_authorization: bool,
    pub proxy_verified_token: bool,
    pub content_length: Option<usize>,
    pub max_object_bytes: usize,
    /// The response ends in trailer fields (`ends_in_trailers`), which a stored object would
    /// lose.
    pub has_trailers: bool,
}

/// Whether a response announces trailer fields (`Trailer`) or is gRPC's, whose status always
/// comes in trailers: the store keeps a head and a body, so a hit would drop them.
pub fn ends_in_trailers(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRAILER)
        || headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Whether a response may be stored (RFC 9111 section 3 for a shared cache, plus our limits).
///
/// # Errors
/// The first reason it may not.
pub fn storable(input: &StoreInput<'_>) -> Result<(), NotStored> {
    if input.method != "GET" && input.method != "HEAD" {
        return Err(NotStored::Method);
    }
    if !input.cacheable_statuses.contains(&input.status) {
        return Err(NotStored::Status);
    }
    if input.response_cc.no_store {
        return Err(NotStored::NoStore);
    }
    if input.response_cc.private {
        return Err(NotStored::Private);
    }
    if input.has_set_cookie {
        return Err(NotStored::SetCookie);
    }
    if input.vary_star {
        return Err(NotStored::VaryStar);
    }
    if input.has_trailers {
        return Err(NotStored::Trailers);
    }
    if input.request_has_authorization {
        // RFC 9111 section 3.5: only with public or s-maxage; we additionally require that this
        // proxy verified the token, so a hit can never reach a client that would fail auth.
        if !input.proxy_verified_token {
            return Err(NotStored::UnverifiedAuthorization);
        }
        if !input.response_cc.public && input.response_cc.s_maxage.is_none() {
            return Err(NotStored::AuthorizedNotPublic);
        }
    }
    if input
        .content_length
        .is_some_and(|length| length > input.max_object_bytes)
    {
        return Err(NotStored::TooLarge);
    }
    Ok(())
}

/// Where an object's TTL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlSource {
    CacheTtlParam,
    SMaxage,
    MaxAge,
    RouteDefault,
}

/// Shown as the name of the control it came from, as in the explain header.
impl serde::Serialize for TtlSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl TtlSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TtlSource::CacheTtlParam => "cache_ttl",
            TtlSource::SMaxage => "s-maxage",
            TtlSource::MaxAge => "max-age",
            TtlSource::RouteDefault => "default_ttl",
        }
    }
}

/// Freshness lifetime: `?cache_ttl=N` (the seed's control) wins, then `s-maxage`, then
/// `max-age`, then the route's default; at most `MAX_TTL` whichever it is.
pub fn freshness(
    cache_ttl_param: Option<&str>,
    cc: &CacheControl,
    default_ttl: Duration,
) -> (Duration, TtlSource) {
    let seconds = |n: u64| bounded(Duration::from_secs(n));
    if let Some(n) = cache_ttl_param.and_then(delta_seconds) {
        return (seconds(n), TtlSource::CacheTtlParam);
    }
    if let Some(n) = cc.s_maxage {
        return (seconds(n), TtlSource::SMaxage);
    }
    if let Some(n) = cc.max_age {
        return (seconds(n), TtlSource::MaxAge);
    }
    (bounded(default_ttl), TtlSource::RouteDefault)
}

/// A request's conditional fields (RFC 9110 section 13.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditionals<'a> {
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
}

impl Conditionals<'_> {
    pub fn any(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
}

/// A stored response's validators.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

/// Whether the request's conditionals say the client already has the representation with
/// these validators, so a 304 answers it (RFC 9110 sections 13.1.2 and 13.1.3, evaluated in the
/// order of section 13.2.2). `If-None-Match` uses the weak comparison and, when present, decides
/// alone. `If-Modified-Since` matches an exactly equal `Last-Modified`, as nginx does by default
/// (`if_modified_since exact`): clients echo the date they were given.
pub fn not_modified(request: Conditionals<'_>, stored: Validators<'_>) -> bool {
    if let Some(list) = request.if_none_match {
        let Some(etag) = stored.etag else {
            return false;
        };
        let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
        let ours = opaque(etag);
        return list
            .split(',')
            .any(|candidate| candidate.trim() == "*" || opaque(candidate) == ours);
    }
    match (request.if_modified_since, stored.last_modified) {
        (Some(since), Some(modified)) => since.trim() == modified.trim(),
        _ => false,
    }
}

/// How a stored object may be used at age `age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usability {
    Fresh,
    /// Past its TTL but within stale-while-revalidate: serve it and refresh in the background.
    StaleRevalidate,
    /// Past stale-while-revalidate but within stale-if-error: only when the origin fails.
    StaleIfError,
    Expired,
}

/// How an object with these lifetimes may be used at age `age`. The sums saturate, so even
/// lifetimes that escaped `bounded` cannot overflow.
pub fn usability(age: Duration, ttl: Duration, swr: Duration, sie: Duration) -> Usability {
    if age < ttl {
        Usability::Fresh
    } else if age < ttl.saturating_add(swr) {
        Usability::StaleRevalidate
    } else if age < ttl.saturating_add(sie) {
        Usability::StaleIfError
    } else {
        Usability::Expired
    }
}

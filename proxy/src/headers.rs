//! Request and response rewrites as pure functions on strings and header maps: request ids,
//! `X-Forwarded-*`, removal of the control query parameter, and hop-by-hop response fields.

pub mod names;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const REQUEST_ID: &str = "x-request-id";
pub const STRATEGY_OVERRIDE: &str = "x-scalelab-strategy";
pub const EXPLAIN: &str = "x-scalelab-explain";
/// Carries the admin token on the proxy listener to see the diagnostic headers under
/// `debug_headers = "trusted"`; its own field, because `Authorization` belongs to the routes'
/// JWTs and is forwarded upstream.
pub const DEBUG_TOKEN: &str = "x-scalelab-debug-token";
pub const STRATEGY_PARAM: &str = "strategy";
pub const AUTH_SUBJECT: &str = "x-auth-subject";
pub const AUTH_CLAIMS: &str = "x-auth-claims";
pub const CONFIG_GENERATION: &str = "x-config-generation";
pub const STRATEGY: &str = "x-strategy";
pub const UPSTREAM_SERVER: &str = "x-upstream-server";
pub const FORWARDED_FOR: &str = "x-forwarded-for";
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";
pub const CACHE: &str = "x-cache";
pub const CACHE_TIER: &str = "x-cache-tier";
/// RFC 9211.
pub const CACHE_STATUS: &str = "cache-status";

/// Response fields that describe one connection and must not be relayed (RFC 9110 section 7.6.1).
/// `Connection` and `Transfer-Encoding` are left to pingora, which frames the downstream
/// response itself.
pub static HOP_BY_HOP_RESPONSE: [http::HeaderName; 5] = [
    http::HeaderName::from_static("keep-alive"),
    http::HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
];

/// `X-Forwarded-Proto` for a request that arrived over TLS or in clear text. Static values:
/// a `&str` would be copied into a new buffer on every request.
pub fn forwarded_proto(tls: bool) -> http::HeaderValue {
    if tls {
        http::HeaderValue::from_static("https")
    } else {
        http::HeaderValue::from_static("http")
    }
}

/// RFC 7239's `Forwarded` with this hop appended to the client's `existing` one: `for` (an
/// IPv6 address in quotes and brackets), `proto`, and `host` quoted (a port's `:` is not a
/// token character).
pub fn forwarded(
    existing: Option<&str>,
    client_ip: Option<&str>,
    proto: &str,
    host: Option<&str>,
) -> String {
    let mut hop = String::new();
    match client_ip {
        Some(ip) if ip.contains(':') => hop.push_str(&format!("for=\"[{ip}]\"")),
        Some(ip) => hop.push_str(&format!("for={ip}")),
        None => hop.push_str("for=unknown"),
    }
    hop.push_str(&format!(";proto={proto}"));
    if let Some(host) = host {
        let escaped = host.replace('\\', "\\\\").replace('"', "\\\"");
        hop.push_str(&format!(";host=\"{escaped}\""));
    }
    match existing.map(str::trim).filter(|e| !e.is_empty()) {
        Some(existing) => format!("{existing}, {hop}"),
        None => hop,
    }
}

/// A client's request id is kept when it is 1..=128 characters of `[A-Za-z0-9._:-]`; anything
/// else (empty, too long, spaces, control bytes) is replaced, so ids are safe to log.
pub fn valid_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// A new request id: a per-process random prefix and a counter. Unique within the process and,
/// with the 64-bit random prefix, across processes; it costs no system call per request,
/// unlike a UUIDv4 that reads the OS random source each time.
pub fn new_request_id() -> http::HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(random_seed);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Hex digits written into a stack buffer, which the value then owns: its one allocation.
    // (`from_bytes` would copy it into a buffer whose first clone, for the upstream request,
    // allocates again to become shareable; an owner's clones only count references.)
    let mut buffer = [0u8; 33];
    write_hex(&mut buffer[..16], prefix);
    buffer[16] = b'-';
    write_hex(&mut buffer[17..], n);
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buffer))
        .unwrap_or_else(|_| http::HeaderValue::from_static("-"))
}

fn write_hex(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS once per process, which is all the entropy needed here.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(scalelab_common::clock::since_epoch().as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// The `X-Forwarded-For` value to send: the client's chain with the peer address appended.
pub fn forwarded_for(existing: Option<&str>, client_ip: &str) -> String {
    match existing.map(str::trim).filter(|s| !s.is_empty()) {
        Some(chain) => format!("{chain}, {client_ip}"),
        None => client_ip.to_string(),
    }
}

/// Finds `name=value` in a query string.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// The path-and-query with every `name=...` parameter removed, or `None` when it has none.
pub fn strip_query_param(path: &str, query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    query_param(query, name)?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .filter(|pair| !pair.is_empty())
        .collect();
    Some(if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    })
}

/// The path a route with `strip_prefix` sends upstream: `/worker/stats` under `/worker`
/// becomes `/stats`, and the prefix itself becomes `/`.
pub fn strip_path_prefix<'p>(path: &'p str, prefix: &str) -> std::borrow::Cow<'p, str> {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some("") => std::borrow::Cow::Borrowed("/"),
        Some(rest) if rest.starts_with('/') => std::borrow::Cow::Borrowed(rest),
        _ => std::borrow::Cow::Borrowed(path),
    }
}

/// Header names listed in a `Connection` field, lowercased; they are hop-by-hop too.
pub fn connection_nominated(value: &str) -> impl Iterator<Item = String> + '_ {
    // Filtered before lowercasing, so the usual `keep-alive` and `close` allocate nothing.
    value
        .split(',')
        .map(str::trim)
        .filter(|token| {
            !token.is_empty()
                && !token.eq_ignore_ascii_case("close")
                && !token.eq_ignore_ascii_case("keep-alive")
        })
        .map(str::to_ascii_lowercase)
}

/// The request headers a client may send to steer the proxy or pose as it: the proxy's to
/// read, never passed upstream.
pub static CLIENT_CONTROL: [http::HeaderName; 5] = [
    names::STRATEGY_OVERRIDE,
    names::EXPLAIN,
    names::DEBUG_TOKEN,
    http::HeaderName::from_static(AUTH_SUBJECT),
    http::HeaderName::from_static(AUTH_CLAIMS),
];

/// Which of `names` (at most 64) `map` holds, found in one pass over the map's (few) names: most messages
/// carry none of them, and `remove_header` hashes its name (and updates pingora's case map)
/// even when there is nothing to remove. The names are `HeaderName`s so that removing one
/// hashes it at once; a `&str` would be parsed again first.
pub fn present(
    map: &http::HeaderMap,
    names: &'static [http::HeaderName],
) -> impl Iterator<Item = &'static http::HeaderName> {
    let mut found = 0u64;
    for key in map.keys() {
        if let Some(i) = names.iter().position(|name| name == key) {
            found |= 1 << i;
        }
    }
    names
        .iter()
        .enumerate()
        .filter(move |(i, _)| found & (1 << i) != 0)
        .map(|(_, name)| name)
}

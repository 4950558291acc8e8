//! Protocol upgrades (RFC 9110 section 7.8) as pure rules: which requests may ask the chosen
//! server to switch protocols (WebSocket and other tokens), and which lose their `Upgrade`
//! field and go on as ordinary HTTP/1.1 requests. The proxy never switches protocols on its
//! own: it only relays a server's 101, after which Pingora copies bytes both ways until one
//! side closes. The series of open tunnels are in `series`.

pub mod series;
#[cfg(test)]
mod tests;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, Version};

/// What to do with a request's `Upgrade` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// The request has no `Upgrade` field.
    None,
    /// A valid upgrade request: forward it as it is.
    Forward,
    /// Forward it with only these protocols (the others, such as `h2c`, are not passed on).
    ForwardOnly(String),
    /// Not an upgrade the proxy passes on: drop `Upgrade` and its connection options, and
    /// serve the request as an ordinary one.
    Strip,
    /// The route does not pass upgrades (`upgrades = false`): 400.
    Refuse,
}

/// What the config allows for one request.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// The route's `upgrades`.
    pub route: bool,
    /// `[proxy] forward_h2c_upgrade`.
    pub h2c: bool,
}

/// The connection options and fields that belong to an upgrade and go with it when it is
/// stripped (`HTTP2-Settings` only means something next to `Upgrade: h2c`).
pub const UPGRADE_FIELDS: [&str; 2] = ["upgrade", "http2-settings"];

/// Classifies a request head. Only HTTP/1.1 has upgrades (an HTTP/1.0 `Upgrade` is ignored,
/// RFC 9110 section 7.8), and `Upgrade` counts only when `Connection` names it, as a sender
/// must; anything else is a stray hop-by-hop field and is removed.
pub fn classify(version: Version, headers: &HeaderMap, allowed: Allowed) -> Upgrade {
    if !headers.contains_key(UPGRADE) {
        return Upgrade::None;
    }
    if version != Version::HTTP_11 || !connection_names(headers, "upgrade") {
        return Upgrade::Strip;
    }
    let mut count = 0;
    let kept: Vec<&str> = headers
        .get_all(UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .inspect(|_| count += 1)
        .filter(|token| allowed.h2c || !is_h2c(token))
        .collect();
    if kept.is_empty() {
        Upgrade::Strip
    } else if !allowed.route {
        Upgrade::Refuse
    } else if kept.len() == count {
        Upgrade::Forward
    } else {
        Upgrade::ForwardOnly(kept.join(", "))
    }
}

/// Whether a `Connection` field lists `option` (case-insensitive).
fn connection_names(headers: &HeaderMap, option: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(option))
}

/// `h2c`, with or without a version suffix (`h2c/1`).
fn is_h2c(token: &str) -> bool {
    let name = token.split('/').next().unwrap_or(token);
    name.eq_ignore_ascii_case("h2c")
}

/// A `Connection` value without the `removed` options, or `None` when nothing is left.
pub fn connection_without(value: &str, removed: &[&str]) -> Option<String> {
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|token| !token.is_empty() && !removed.iter().any(|r| token.eq_ignore_ascii_case(r)))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// Request fields that describe one connection (RFC 9110 section 7.6.1), removed from an
/// upgrade request before it goes upstream. Pingora removes them from other requests itself;
/// an upgrade's are the proxy's to normalise, because Pingora's own normalisation passes only
/// `Upgrade: websocket`.
pub const HOP_BY_HOP_REQUEST: [&str; 6] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
];

/// The fields a client's `Connection` names besides the upgrade's own options (and `close` and
/// `keep-alive`, which are not fields): hop-by-hop, so not sent upstream. `host` is never
/// removed this way.
pub fn nominated_fields(connection: &str) -> Vec<String> {
    connection
        .split(',')
        .map(str::trim)
        .filter(|token| {
            !token.is_empty()
                && !["upgrade", "http2-settings", "close", "keep-alive", "host"]
                    .iter()
                    .any(|own| token.eq_ignore_ascii_case(own))
        })
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The `Connection` value of an upgrade request sent upstream: the upgrade option, plus
/// `HTTP2-Settings` when that field goes along (an h2c upgrade).
pub fn upstream_connection(has_http2_settings: bool) -> &'static str {
    if has_http2_settings {
        "Upgrade, HTTP2-Settings"
    } else {
        "Upgrade"
    }
}

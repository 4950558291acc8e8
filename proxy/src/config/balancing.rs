//! A group's validated balancing settings beyond its strategy: the EWMA decay, what consistent
//! hashing hashes (`HashSettings`) and cookie affinity (`StickySettings`). Read from
//! `file/balancing`, checked by `validate/balancing`.

use std::time::Duration;

/// Everything `strategy = "ewma" | "hash"` and `sticky` need, with their defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Balancing {
    /// Peak EWMA's time constant: an observation `decay` old weighs 1/e of a fresh one.
    #[serde(with = "super::humantime_serde_compat")]
    pub ewma_decay: Duration,
    /// `None` without a `hash` table: a hash pick then has no key and falls back to round robin.
    pub hash: Option<HashSettings>,
    pub sticky: Option<StickySettings>,
    /// Passive ejection of servers that fail real requests; `None` is off.
    pub outlier: Option<OutlierSettings>,
    /// A limit on the group's requests in flight across its servers; `None` is none.
    pub circuit: Option<CircuitSettings>,
}

/// Circuit breaking (Envoy's `circuit_breakers`): at most `max_requests` in flight across
/// the group's servers; beyond, a request waits in the group's queue only while fewer than
/// `max_pending` wait there, else it gets 503 at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CircuitSettings {
    pub max_requests: u32,
    pub max_pending: u32,
}

impl Default for Balancing {
    fn default() -> Balancing {
        Balancing {
            ewma_decay: DEFAULT_EWMA_DECAY,
            hash: None,
            sticky: None,
            outlier: None,
            circuit: None,
        }
    }
}

/// Linkerd's and Finagle's default.
pub const DEFAULT_EWMA_DECAY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HashSettings {
    pub key: HashKey,
    pub algorithm: HashAlgorithm,
}

/// Where a request's hash key comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// `header.NAME` (the name lower-cased, as HTTP/2 sends it).
    Header(String),
    /// `cookie.NAME`.
    Cookie(String),
    /// `query.NAME`.
    Query(String),
    /// The client's address, behind `trusted_proxies` like the rate limits' key.
    ClientIp,
    /// The request path without its query.
    Path,
}

impl HashKey {
    pub fn parse(text: &str) -> Option<HashKey> {
        let named = |prefix: &str| {
            text.strip_prefix(prefix)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
        };
        match text {
            "client_ip" => Some(HashKey::ClientIp),
            "path" => Some(HashKey::Path),
            _ => named("header.")
                .filter(|name| http::HeaderName::from_bytes(name.as_bytes()).is_ok())
                .map(|name| HashKey::Header(name.to_ascii_lowercase()))
                .or_else(|| {
                    named("cookie.")
                        .filter(|name| is_cookie_name(name))
                        .map(HashKey::Cookie)
                })
                .or_else(|| named("query.").map(HashKey::Query)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// A ring of virtual nodes (Karger et al., ketama): a key goes to the first node clockwise.
    Ring,
    /// Google's Maglev lookup table: more even than a ring, one index per request.
    Maglev,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StickySettings {
    pub cookie: String,
    #[serde(with = "super::humantime_serde_compat")]
    pub ttl: Duration,
    pub secure: bool,
    pub http_only: bool,
}

/// An RFC 6265 cookie name: a token (visible ASCII except separators).
pub fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// Outlier detection (Envoy's `outlier_detection`): a server whose real responses fail this
/// many times in a row is ejected for `base_ejection x times ejected` (at most ten times),
/// never past `max_ejection_percent` of the group nor its last available server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutlierSettings {
    /// Any 5xx; 0 turns the rule off.
    pub consecutive_5xx: u32,
    /// 502, 503, 504 and failures to get a response at all; 0 turns the rule off.
    pub consecutive_gateway_errors: u32,
    #[serde(with = "super::humantime_serde_compat")]
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
    /// `None` without an `error_rate` table.
    pub error_rate: Option<ErrorRate>,
}

/// Eject a server whose share of 5xx (and failed exchanges) within the current `window`
/// reaches `threshold_percent`, once it answered at least `min_requests` in that window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorRate {
    pub threshold_percent: u32,
    pub min_requests: u32,
    #[serde(with = "super::humantime_serde_compat")]
    pub window: Duration,
}

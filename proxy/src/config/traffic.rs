//! The validated form of a route's `rate_limits` and of `[proxy] trusted_proxies`: a rate, a
//! burst and the request part whose value names a bucket. Parsed by `validate::limits`, used by
//! `ratelimit`.

use std::fmt;
use std::time::Duration;

/// One `rate_limits` entry of a route.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RateLimit {
    /// Unique within the route; the 429 body, the metrics and the explain header name it.
    pub name: String,
    pub rate: Rate,
    /// How many requests a key may send back to back after being idle (GCRA's bucket size).
    pub burst: u32,
    pub key: LimitKey,
    /// Where the buckets live.
    pub store: LimitStore,
}

/// Where a limit keeps its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitStore {
    /// In this proxy: each proxy has its own budget.
    Memory,
    /// In the `[redis]` server: one budget for every proxy using it. `deny_on_error` decides
    /// a request while Redis cannot answer (`on_store_error = "deny"`; default allow).
    Redis { deny_on_error: bool },
}

/// `count` requests per `period`, written like "20/s" or "600/min".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    /// The time one request costs: the period divided by the count (GCRA's emission interval).
    pub fn interval(&self) -> Duration {
        self.period / self.count.max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s".to_string(),
            60 => "min".to_string(),
            3600 => "h".to_string(),
            _ => humantime::format_duration(self.period).to_string(),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What names a request's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address: the peer, or the first untrusted `X-Forwarded-For` hop when the
    /// peer is one of `[proxy] trusted_proxies`.
    ClientIp,
    /// A request header's value (the name is stored lowercase).
    Header(http::HeaderName),
    /// A query parameter's value.
    Query(String),
    /// A claim of the verified token (only on `auth = "jwt"` routes).
    Claim(String),
    /// One bucket for the whole route.
    Route,
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitKey::ClientIp => f.write_str("client_ip"),
            LimitKey::Header(name) => write!(f, "header.{name}"),
            LimitKey::Query(name) => write!(f, "query.{name}"),
            LimitKey::Claim(name) => write!(f, "jwt.{name}"),
            LimitKey::Route => f.write_str("route"),
        }
    }
}

impl serde::Serialize for LimitKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `[proxy] trusted_proxies`: the peers whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl serde::Serialize for TrustedProxies {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

/// A group's `queue`: where requests wait when every candidate server is at its
/// `max_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueSettings {
    /// Waiting requests beyond this are refused at once (503).
    pub max: usize,
    /// A request that waited this long is refused (503).
    #[serde(serialize_with = "super::humantime_serde_compat::serialize")]
    pub timeout: Duration,
}

impl Default for QueueSettings {
    /// Without a `queue` table a group still queues a little, so that a `max_connections` alone
    /// smooths short bursts instead of refusing them.
    fn default() -> QueueSettings {
        QueueSettings {
            max: 100,
            timeout: Duration::from_secs(2),
        }
    }
}

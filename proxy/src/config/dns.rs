//! Service discovery's validated settings: `[dns]` (resolvers, refresh bounds, timeout,
//! `max_stale`) and a group's named servers and SRV `discovery`. Read from `file/dns` and
//! `FileServer`'s `name`/`port`, checked by `validate/dns`; resolved by `crate::discovery`.

use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(60);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(300);

/// `[dns]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsSettings {
    /// Name servers asked; empty: the system's `/etc/resolv.conf`.
    pub resolvers: Vec<SocketAddr>,
    /// A fixed refresh interval; `None`: each answer's TTL within `[min_refresh, max_refresh]`.
    #[serde(serialize_with = "super::serialize_optional_duration")]
    pub refresh: Option<Duration>,
    #[serde(with = "super::humantime_serde_compat")]
    pub min_refresh: Duration,
    #[serde(with = "super::humantime_serde_compat")]
    pub max_refresh: Duration,
    /// One resolution's bound, all attempts and name servers included.
    #[serde(with = "super::humantime_serde_compat")]
    pub timeout: Duration,
    /// How long an NXDOMAIN or empty answer leaves the last good set serving before the group
    /// loses those servers.
    #[serde(with = "super::humantime_serde_compat")]
    pub max_stale: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            resolvers: Vec::new(),
            refresh: None,
            min_refresh: DEFAULT_MIN_REFRESH,
            max_refresh: DEFAULT_MAX_REFRESH,
            timeout: DEFAULT_TIMEOUT,
            max_stale: DEFAULT_MAX_STALE,
        }
    }
}

impl DnsSettings {
    /// When to ask again after an answer valid for `ttl`: the fixed `refresh` (a source's own
    /// first), else the TTL within the bounds.
    pub fn next_refresh(&self, own: Option<Duration>, ttl: Option<Duration>) -> Duration {
        if let Some(fixed) = own.or(self.refresh) {
            return fixed;
        }
        ttl.unwrap_or(self.min_refresh)
            .clamp(self.min_refresh, self.max_refresh.max(self.min_refresh))
    }
}

/// `servers = [{ name = "api.internal", port = 8080, weight = 1 }]`: every A and AAAA address
/// of the name becomes a server with these settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedServer {
    pub name: String,
    pub port: u16,
    pub weight: u32,
    pub max_connections: Option<u32>,
}

/// `discovery = { srv = "...", refresh = "10s" }`: the group's servers from SRV records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SrvDiscovery {
    pub srv: String,
    #[serde(serialize_with = "super::serialize_optional_duration")]
    pub refresh: Option<Duration>,
}

/// What of a group comes from DNS.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DnsSources {
    pub names: Vec<NamedServer>,
    pub srv: Option<SrvDiscovery>,
}

impl DnsSources {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.srv.is_none()
    }
}

/// Where a resolved server came from, for `/admin/upstreams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The name resolved (the SRV name for SRV records).
    pub name: String,
    /// `A` (A and AAAA) or `SRV`.
    pub record: &'static str,
    /// The SRV record's target, priority and weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A DNS name as resolvers accept it: dot-separated labels of letters, digits, `-` and `_`
/// (SRV's `_service._proto`), each 1 to 63 bytes, 253 at most, an optional final dot.
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolvers_accept() {
        for good in [
            "api.internal",
            "api.internal.",
            "_http._tcp.api",
            "a-b.c1",
            "localhost",
        ] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a/b",
            &"x".repeat(64),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn refresh_follows_the_ttl_within_bounds_unless_fixed() {
        let dns = DnsSettings::default();
        let s = Duration::from_secs;
        assert_eq!(dns.next_refresh(None, Some(s(0))), s(1));
        assert_eq!(dns.next_refresh(None, Some(s(30))), s(30));
        assert_eq!(dns.next_refresh(None, Some(s(3600))), s(60));
        assert_eq!(dns.next_refresh(None, None), s(1));
        assert_eq!(dns.next_refresh(Some(s(10)), Some(s(3600))), s(10));
        let fixed = DnsSettings {
            refresh: Some(s(7)),
            ..DnsSettings::default()
        };
        assert_eq!(fixed.next_refresh(None, Some(s(30))), s(7));
        assert_eq!(fixed.next_refresh(Some(s(2)), None), s(2));
    }
}

//! The serde mirror of service discovery: the `[dns]` table and a group's `discovery` (SRV).

use serde::Deserialize;

/// `[dns]`: where and how often names are resolved.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDns {
    /// `IP:PORT` (or `IP`, port 53) of each name server; none: the system's `/etc/resolv.conf`.
    pub resolvers: Option<Vec<String>>,
    /// A fixed refresh interval instead of the record TTL.
    pub refresh: Option<String>,
    pub min_refresh: Option<String>,
    pub max_refresh: Option<String>,
    pub timeout: Option<String>,
    pub max_stale: Option<String>,
}

/// `discovery = { srv = "_http._tcp.api.internal", refresh = "10s" }` in `[upstreams.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDiscovery {
    pub srv: String,
    pub refresh: Option<String>,
}

//! The serde mirror of how a group reaches its servers: `protocol` (a string on the group) and
//! the `tls = { enabled, sni, ca, verify }` table.

use serde::Deserialize;

/// A group's `tls` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstreamTls {
    pub enabled: Option<bool>,
    pub sni: Option<String>,
    pub ca: Option<String>,
    pub verify: Option<bool>,
}

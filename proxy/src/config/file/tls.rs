//! The `[tls]` table: the listener's certificates and its lowest protocol version.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// `"1.2"` (the default) or `"1.3"`.
    pub min_version: Option<String>,
    #[serde(default)]
    pub certificates: Vec<FileCertificate>,
}

/// One `[[tls.certificates]]` entry; paths are relative to the config file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCertificate {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub server_names: Vec<String>,
}

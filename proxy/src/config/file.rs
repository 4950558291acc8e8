//! The serde mirror of `config.toml`: one struct per TOML table, unknown keys rejected.
//!
//! Nothing here is validated beyond TOML types; durations and addresses stay strings so that
//! `validate` can report every bad value at once, each with its TOML path.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub proxy: FileProxy,
    #[serde(default)]
    pub upstreams: BTreeMap<String, FileUpstream>,
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    /// The `[lab]` table belongs to `scalelab up` (which processes to start); the proxy keeps it
    /// opaque so one file can describe the whole lab.
    #[serde(default)]
    pub lab: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProxy {
    pub listen: Option<Vec<String>>,
    pub admin_listen: Option<String>,
    pub threads: Option<i64>,
    pub shutdown_timeout: Option<String>,
    pub max_header_bytes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub strategy: Option<String>,
    #[serde(default)]
    pub servers: Vec<FileServer>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub retries: Option<i64>,
    pub fail_timeout: Option<String>,
    pub health_check: Option<FileHealthCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub addr: String,
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealthCheck {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub name: Option<String>,
    pub path: String,
    pub host: Option<String>,
    pub methods: Option<Vec<String>>,
    pub upstream: String,
}

//! The serde mirror of the edge rules: a route's hosts, `redirect`, `respond`, `add_prefix`,
//! `rewrite` and header rules, and the `[proxy]` defaults of the same.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `host = "example.com"` or `host = ["example.com", "*.example.com"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileHosts {
    One(String),
    Many(Vec<String>),
}

impl FileHosts {
    pub fn names(&self) -> &[String] {
        match self {
            FileHosts::One(name) => std::slice::from_ref(name),
            FileHosts::Many(names) => names,
        }
    }
}

/// `redirect = { to = "https://{host}{path_and_query}", status = 301, path_regex = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRedirect {
    pub to: String,
    pub status: Option<i64>,
    pub path_regex: Option<String>,
}

/// `respond = { status = 200, body = "...", content_type = "text/plain" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRespond {
    pub status: Option<i64>,
    pub body: Option<String>,
    pub content_type: Option<String>,
}

/// `rewrite = { path_regex = "^/old/(.*)$", to = "/new/{1}" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRewrite {
    pub path_regex: String,
    pub to: String,
}

/// `request_headers = { set = { NAME = "value" }, add = { ... }, remove = ["NAME"] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeaderRules {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

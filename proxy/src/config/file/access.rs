//! The serde mirror of the access gates' keys (issue 25): the tables a route's `basic`,
//! `forward` and `cors` hold. The lists (`allow`, `deny`, `allow_file`, `deny_file`) and
//! `claims_to_headers`, `forward_credentials` are plain keys of `[proxy]` and the route.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `basic = { users_file = "htpasswd", realm = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBasic {
    pub users_file: String,
    pub realm: Option<String>,
}

/// `forward = { upstream, path, copy_request_headers, copy_response_headers, timeout, cache,
/// on_error }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileForward {
    pub upstream: String,
    pub path: Option<String>,
    pub copy_request_headers: Option<Vec<String>>,
    pub copy_response_headers: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub cache: Option<String>,
    pub on_error: Option<String>,
}

/// `cors = { origins, methods, headers, expose_headers, credentials, max_age }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCors {
    pub origins: Vec<String>,
    pub methods: Option<Vec<String>>,
    pub headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub credentials: Option<bool>,
    pub max_age: Option<String>,
}

/// `claims_to_headers = { sub = "X-User", tenant = "X-Tenant" }`.
pub type FileClaimsToHeaders = BTreeMap<String, String>;

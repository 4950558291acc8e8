//! The validated access gates (issue 25): IP allow and deny lists (`[proxy]` and per route),
//! and per route basic auth, forward auth, CORS and `claims_to_headers`. Read from
//! `file/access`, checked by `validate/access`; the request path applies them in
//! `service::gates` with the rules of `crate::access_control`.
//!
//! Files (`allow_file`, `deny_file`, `users_file`) are read here, when the config is parsed,
//! so a reload re-reads them and a broken one is a config problem like any other. The
//! certificate watcher watches them too (`Config::access_files`).

pub mod htpasswd;
pub mod ip;

use htpasswd::Htpasswd;
use http::{HeaderName, Method};
use ip::IpSet;
use serde::ser::SerializeStruct;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// An allow or a deny list: its inline networks and its file's together.
#[derive(Debug, Clone, PartialEq)]
pub struct IpList {
    pub set: Arc<IpSet>,
    /// The networks written inline, as written (for the summary and the reload diff).
    pub inline: Vec<String>,
    /// The list file, with a hash of its text so a reload that changed only the file is seen.
    pub file: Option<ListFile>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListFile {
    pub path: PathBuf,
    pub entries: usize,
    /// Hex SHA-256 of the file's text (first 16 characters).
    pub sha256: String,
}

impl serde::Serialize for IpList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("IpList", 2)?;
        s.serialize_field("networks", &self.inline)?;
        s.serialize_field("file", &self.file)?;
        s.end()
    }
}

/// `allow`/`allow_file` and `deny`/`deny_file` of `[proxy]` or a route. A client in `deny` is
/// refused; with an allow list, a client not in it is refused too.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IpRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<IpList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny: Option<IpList>,
}

impl IpRules {
    pub fn is_empty(&self) -> bool {
        self.allow.is_none() && self.deny.is_none()
    }
}

/// A route's `basic = { users_file, realm }`.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicSettings {
    pub users_file: PathBuf,
    pub realm: String,
    pub users: Arc<Htpasswd>,
    /// Hex SHA-256 of the users file: part of the verified-credentials cache key, so a changed
    /// file never answers from an old verdict.
    pub sha256: String,
}

impl serde::Serialize for BasicSettings {
    /// The file, its user count and hash; never a password hash.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("BasicSettings", 4)?;
        s.serialize_field("users_file", &self.users_file)?;
        s.serialize_field("realm", &self.realm)?;
        s.serialize_field("users", &self.users.len())?;
        s.serialize_field("sha256", &self.sha256)?;
        s.end()
    }
}

/// What forward auth does when the auth service cannot answer (timeout, connection failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnForwardError {
    /// 503 (the default).
    Unavailable,
    /// 403.
    Deny,
    /// Let the request through without identity headers.
    Allow,
}

/// A route's `forward = { upstream, path, ... }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ForwardSettings {
    pub upstream: String,
    pub path: String,
    #[serde(serialize_with = "serialize_names")]
    pub copy_request_headers: Vec<HeaderName>,
    #[serde(serialize_with = "serialize_names")]
    pub copy_response_headers: Vec<HeaderName>,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// How long a decision is kept per credentials; zero: not cached.
    #[serde(with = "humantime_serde_compat")]
    pub cache: Duration,
    pub on_error: OnForwardError,
}

/// One `origins` entry of a route's `cors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginPattern {
    /// `*`: any origin (never with `credentials`).
    Any,
    /// `https://app.example` (scheme, host and port as the browser sends them, lowercase).
    Exact(String),
    /// `*.example.com` (any scheme) or `https://*.example.com`: a subdomain at any depth.
    Subdomains {
        scheme: Option<String>,
        suffix: String,
    },
}

impl OriginPattern {
    /// An `origins` entry: `*`, `https://app.example[:port]`, `*.example.com` or
    /// `https://*.example.com`.
    pub fn parse(text: &str) -> Result<OriginPattern, String> {
        if text == "*" {
            return Ok(OriginPattern::Any);
        }
        let lower = text.to_ascii_lowercase();
        let (scheme, rest) = match lower.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, lower.as_str()),
        };
        if let Some(scheme) = scheme {
            if scheme.is_empty()
                || !scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                return Err(format!("invalid scheme in origin {text:?}"));
            }
        }
        if rest.contains('/') || rest.is_empty() {
            return Err(format!(
                "invalid origin {text:?}: write scheme://host[:port] with no path, or *.domain"
            ));
        }
        if let Some(suffix) = rest.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("invalid wildcard origin {text:?}"));
            }
            return Ok(OriginPattern::Subdomains {
                scheme: scheme.map(str::to_string),
                suffix: format!(".{suffix}"),
            });
        }
        if rest.contains('*') {
            return Err(format!(
                "invalid origin {text:?}: '*' only as the first label (*.domain)"
            ));
        }
        match scheme {
            Some(_) => Ok(OriginPattern::Exact(lower)),
            None => Err(format!(
                "origin {text:?} needs its scheme (https://{text}), or a wildcard *.domain"
            )),
        }
    }
}

/// A route's `cors = { origins, methods, headers, expose_headers, credentials, max_age }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CorsPolicy {
    pub origins: Vec<OriginPattern>,
    #[serde(serialize_with = "serialize_methods")]
    pub methods: Vec<Method>,
    /// Request headers a preflight may ask for, lowercase.
    pub headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub credentials: bool,
    #[serde(serialize_with = "super::serialize_optional_duration")]
    pub max_age: Option<Duration>,
}

/// One `claims_to_headers` entry: the verified token's `claim` sent upstream as `header`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClaimHeader {
    pub claim: String,
    #[serde(serialize_with = "serialize_name")]
    pub header: HeaderName,
}

/// A route's gates besides `auth = "jwt"`, in the order they run (see `service::gates`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RouteAccess {
    #[serde(flatten)]
    pub ip: IpRules,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardSettings>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims_to_headers: Vec<ClaimHeader>,
    /// Send basic auth's `Authorization` upstream (off: it is removed).
    pub forward_credentials: bool,
}

impl RouteAccess {
    /// The headers the proxy sets from an identity (claims, forward auth's answer): a client's
    /// own copies of them are removed before the request goes upstream.
    pub fn identity_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.claims_to_headers.iter().map(|c| &c.header).chain(
            self.forward
                .iter()
                .flat_map(|forward| forward.copy_response_headers.iter()),
        )
    }
}

fn serialize_names<S: serde::Serializer>(names: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(names.iter().map(HeaderName::as_str))
}

fn serialize_name<S: serde::Serializer>(name: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name.as_str())
}

fn serialize_methods<S: serde::Serializer>(methods: &[Method], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(methods.iter().map(Method::as_str))
}

use super::humantime_serde_compat;

impl super::Config {
    /// The files the access gates read (IP list files, htpasswd files): the certificate
    /// watcher reloads when one changes.
    pub fn access_files(&self) -> Vec<&Path> {
        fn lists(rules: &IpRules) -> impl Iterator<Item = &Path> {
            [&rules.allow, &rules.deny]
                .into_iter()
                .flatten()
                .filter_map(|list| list.file.as_ref().map(|f| f.path.as_path()))
        }
        let mut files: Vec<&Path> = lists(&self.proxy.access).collect();
        for route in &self.routes {
            files.extend(lists(&route.access.ip));
            if let Some(basic) = &route.access.basic {
                files.push(basic.users_file.as_path());
            }
        }
        files
    }
}

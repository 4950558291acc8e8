//! The edge rules after validation: what a route answers by itself (`redirect`, `respond`), how
//! its path is rewritten for the upstream (`add_prefix`, `rewrite`), the header rules of the
//! proxy and of each route, and `[proxy] https_redirect`. Regexes are compiled and templates
//! parsed here, once per config; the request path only renders them.

use crate::template::Template;
use http::header::{HeaderName, HeaderValue};

/// A compiled regex, compared and shown by its source.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

/// `redirect = { to, status, path_regex }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Redirect {
    pub to: Template,
    /// `None`: 301 for GET and HEAD, 308 (which keeps the method and body) for the others.
    pub status: Option<u16>,
    /// When set, the redirect applies only to paths it matches; its groups are `{1}`, `{name}`.
    pub path_regex: Option<Pattern>,
}

impl Redirect {
    /// The status of a redirect of a `method` request.
    pub fn status_for(&self, method: &http::Method) -> u16 {
        self.status.unwrap_or(
            if matches!(*method, http::Method::GET | http::Method::HEAD) {
                301
            } else {
                308
            },
        )
    }
}

/// `respond = { status, body, content_type }`: the route answers by itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Respond {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

/// `rewrite = { path_regex, to }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PathRewrite {
    pub path_regex: Pattern,
    pub to: Template,
}

/// One header rule's value: made once when it names no variable.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleValue {
    Fixed(HeaderValue),
    Template(Template),
}

impl serde::Serialize for RuleValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RuleValue::Fixed(value) => {
                serializer.serialize_str(&String::from_utf8_lossy(value.as_bytes()))
            }
            RuleValue::Template(template) => serializer.serialize_str(template.source()),
        }
    }
}

/// A header name shown as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub HeaderName);

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

/// `request_headers` or `response_headers`: applied in the order remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HeaderRules {
    pub set: Vec<(Name, RuleValue)>,
    pub add: Vec<(Name, RuleValue)>,
    pub remove: Vec<Name>,
}

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// The `[proxy]` edge settings every route shares.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProxyEdge {
    /// Plain-HTTP requests get 308 to the same URL on the HTTPS listener (the first
    /// `tls_listen`; validation requires one).
    pub https_redirect: bool,
    /// Path prefixes left on plain HTTP (ACME's challenges).
    pub https_redirect_except: Vec<String>,
    /// Applied before each route's own rules.
    pub request_headers: HeaderRules,
    pub response_headers: HeaderRules,
    /// Send RFC 7239's `Forwarded` upstream too.
    pub forwarded: bool,
}

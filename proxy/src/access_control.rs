//! Access control at the edge (issue 25): the gates a request passes after its route is known
//! and before rate limits and the cache, in this order: IP lists (`config::access::ip`), the CORS preflight
//! (`cors`), then the route's auth: JWT (`scalelab-auth`), basic (`basic_auth`, `config::access::htpasswd`) or
//! forward auth (`forward_auth`). `service::gates` applies them; what a refusal answers is here
//! (`error::Answer` is built from it there, so this tree does not depend on `error`). The
//! pure parts `config` needs to load a config (the IP set, htpasswd files, origin patterns)
//! live in `config::access`, as `key_template` does for the cache.

pub mod basic_auth;
pub mod cors;
pub mod forward_auth;

use serde_json::{json, Value};

/// Why a gate refused a request; each is counted in `scalelab_requests_refused_total` under
/// its `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is denied, or not in the allow list (403).
    Ip,
    /// A CORS preflight from an origin, or asking for a method or header, the route does not
    /// allow (403, no CORS headers).
    Cors,
    /// No or wrong basic credentials (401 with the realm's challenge).
    Basic { realm: String },
    /// The auth service said no: its answer, passed on as it was given.
    Forward(ForwardAnswer),
    /// The auth service could not be asked (timeout, connection failure): 503, or 403 with
    /// `on_error = "deny"`.
    ForwardUnavailable { status: u16, detail: String },
}

/// What the auth service answered, as the client gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAnswer {
    pub status: u16,
    /// `WWW-Authenticate`, `Location`, `Content-Type` and the route's copied response headers.
    pub headers: Vec<(&'static str, String)>,
    pub body: bytes::Bytes,
}

impl Refusal {
    /// The label of `scalelab_requests_refused_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Ip => "ip",
            Refusal::Cors => "cors",
            Refusal::Basic { .. } => "basic",
            Refusal::Forward(_) | Refusal::ForwardUnavailable { .. } => "forward",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Refusal::Ip | Refusal::Cors => 403,
            Refusal::Basic { .. } => 401,
            Refusal::Forward(answer) => answer.status,
            Refusal::ForwardUnavailable { status, .. } => *status,
        }
    }

    /// What the client gets: status, body, headers. A forward auth refusal's body is the
    /// auth service's own (`Body::Raw`); every other one is JSON.
    pub fn parts(&self) -> (u16, Body, Vec<(&'static str, String)>) {
        match self {
            Refusal::Ip => (
                403,
                Body::Json(json!({"error": "forbidden", "reason": "ip"})),
                Vec::new(),
            ),
            Refusal::Cors => (
                403,
                Body::Json(json!({"error": "forbidden", "reason": "cors"})),
                Vec::new(),
            ),
            Refusal::Basic { realm } => (
                401,
                Body::Json(json!({"error": "unauthorized", "reason": "basic"})),
                vec![(
                    "www-authenticate",
                    format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
                )],
            ),
            Refusal::Forward(given) => {
                let content_type = given
                    .headers
                    .iter()
                    .find(|(name, _)| *name == "content-type")
                    .map_or_else(|| "text/plain".to_string(), |(_, v)| v.clone());
                let headers = given
                    .headers
                    .iter()
                    .filter(|(name, _)| *name != "content-type")
                    .cloned()
                    .collect();
                (
                    given.status,
                    Body::Raw {
                        bytes: given.body.clone(),
                        content_type,
                    },
                    headers,
                )
            }
            Refusal::ForwardUnavailable { status, detail } => (
                *status,
                Body::Json(
                    json!({"error": "auth service unavailable", "reason": "forward", "detail": detail}),
                ),
                Vec::new(),
            ),
        }
    }
}

/// A refusal's body.
pub enum Body {
    Json(Value),
    Raw {
        bytes: bytes::Bytes,
        content_type: String,
    },
}

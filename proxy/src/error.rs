//! Why the proxy answers a request itself, and the one place that turns those reasons and
//! pingora's errors into HTTP statuses and JSON bodies: every answer the proxy makes itself,
//! on the proxy listener (refusals, the invalidation endpoint) or the admin API, is an
//! `Answer`, written by one writer on each listener.

use crate::balance::Strategy;
use pingora::{Error, ErrorSource, ErrorType};
use serde_json::{json, Value};

/// An answer the proxy makes itself: a status, a JSON body, and the headers that go with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// Headers besides `Content-Type` (RFC 6750's challenge on a 401, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
    /// Refusals and failures say `Cache-Control: no-store`, so no cache keeps them.
    pub no_store: bool,
    /// A body that is not JSON (a route's `respond`), sent instead of `body`.
    pub raw: Option<RawBody>,
}

/// An answer's body as configured, with its media type.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBody {
    pub bytes: bytes::Bytes,
    pub content_type: String,
}

impl Answer {
    /// A `status` answer with `body`.
    pub fn new(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body,
            headers: Vec::new(),
            no_store: false,
            raw: None,
        }
    }

    /// A `status` answer whose body is `bytes` of `content_type` (a route's `respond`).
    pub fn raw(status: u16, bytes: bytes::Bytes, content_type: String) -> Answer {
        Answer {
            raw: Some(RawBody {
                bytes,
                content_type,
            }),
            ..Answer::new(status, Value::Null)
        }
    }

    /// The media type of the body as sent.
    pub fn content_type(&self) -> &str {
        self.raw
            .as_ref()
            .map_or("application/json", |raw| raw.content_type.as_str())
    }

    /// A 200 answer with `body`.
    pub fn ok(body: Value) -> Answer {
        Answer::new(200, body)
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: impl Into<String>) -> Answer {
        Answer::new(status, json!({"error": message.into()}))
    }

    /// The 401 of a missing or wrong admin token (`[admin] token`), on the admin listener and
    /// for the proxy listener's `POST /cache/invalidate`: JSON with RFC 6750's challenge,
    /// saying nothing about the token.
    pub fn admin_token_required() -> Answer {
        let mut answer = Answer::error(
            401,
            "this endpoint needs Authorization: Bearer <admin token> ([admin] token)",
        );
        answer.headers.push((
            "www-authenticate",
            "Bearer realm=\"scalelab-admin\"".to_string(),
        ));
        answer.no_store = true;
        answer
    }

    /// The body as sent.
    pub fn body_bytes(&self) -> bytes::Bytes {
        match &self.raw {
            Some(raw) => raw.bytes.clone(),
            None => bytes::Bytes::from(self.body.to_string().into_bytes()),
        }
    }
}

impl From<&Reject> for Answer {
    fn from(reject: &Reject) -> Answer {
        // A gate's refusal renders itself (a forward auth refusal is not JSON).
        if let Reject::Access(refusal) = reject {
            return access_answer(refusal);
        }
        let status = reject.status();
        Answer {
            status,
            body: reject.body(),
            headers: reject.extra_headers(),
            no_store: status >= 500 || status == 401 || status == 429,
            raw: None,
        }
    }
}

impl From<Reject> for Answer {
    fn from(reject: Reject) -> Answer {
        Answer::from(&reject)
    }
}

/// The answer of an access gate's refusal; never stored by a cache.
fn access_answer(refusal: &crate::access_control::Refusal) -> Answer {
    let (status, body, headers) = refusal.parts();
    let mut answer = match body {
        crate::access_control::Body::Json(body) => Answer::new(status, body),
        crate::access_control::Body::Raw {
            bytes,
            content_type,
        } => Answer::raw(status, bytes, content_type),
    };
    answer.headers = headers;
    answer.no_store = true;
    answer
}

/// A request the proxy refuses or cannot complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("no route matches {path}")]
    NoRoute { path: String },
    #[error("unknown strategy {given:?}")]
    UnknownStrategy { given: String },
    #[error("request header section is {size} bytes, over the {limit}-byte limit")]
    HeadersTooLarge { size: usize, limit: usize },
    #[error("request body over the {limit}-byte limit")]
    BodyTooLarge { limit: u64 },
    #[error("no healthy server in upstream {upstream}")]
    NoHealthyUpstream { upstream: String },
    /// A group whose servers come from DNS has none: its names do not resolve (`discovery`).
    #[error("upstream {upstream} has no server: {reason}")]
    NoDiscoveredServer { upstream: String, reason: String },
    #[error("every server of upstream {upstream} is at its max_connections ({reason})")]
    UpstreamBusy {
        upstream: String,
        reason: &'static str,
    },
    #[error("upstream {upstream} timed out")]
    UpstreamTimeout { upstream: String },
    #[error("upstream {upstream} failed: {detail}")]
    UpstreamFailed { upstream: String, detail: String },
    #[error("bad request: {detail}")]
    BadRequest { detail: String },
    #[error("route {route} does not pass protocol upgrades")]
    UpgradeRefused { route: String },
    #[error("unauthorized: {0}")]
    Unauthorized(scalelab_auth::Rejection),
    #[error("over rate limit {}", .0.limit)]
    RateLimited(crate::ratelimit::Refusal),
    #[error("status {code}")]
    Status { code: u16 },
    #[error("refused by the {} gate", .0.reason())]
    Access(crate::access_control::Refusal),
    #[error("internal error")]
    Internal,
}

impl Reject {
    pub fn status(&self) -> u16 {
        match self {
            Reject::NoRoute { .. } => 404,
            Reject::UnknownStrategy { .. }
            | Reject::BadRequest { .. }
            | Reject::UpgradeRefused { .. } => 400,
            Reject::HeadersTooLarge { .. } => 431,
            Reject::BodyTooLarge { .. } => 413,
            Reject::NoHealthyUpstream { .. }
            | Reject::NoDiscoveredServer { .. }
            | Reject::UpstreamBusy { .. } => 503,
            Reject::UpstreamTimeout { .. } => 504,
            Reject::UpstreamFailed { .. } => 502,
            Reject::Unauthorized(_) => 401,
            Reject::RateLimited(_) => 429,
            Reject::Status { code } => *code,
            Reject::Access(refusal) => refusal.status(),
            Reject::Internal => 500,
        }
    }

    /// The JSON body: always an `error` message, plus the fields that help the caller.
    pub fn body(&self) -> Value {
        match self {
            Reject::NoRoute { path } => json!({"error": "no route", "path": path}),
            Reject::UnknownStrategy { given } => json!({
                "error": "unknown strategy",
                "given": given,
                "valid": Strategy::NAMES,
            }),
            Reject::HeadersTooLarge { size, limit } => json!({
                "error": "request header fields too large",
                "size": size,
                "limit": limit,
            }),
            Reject::BodyTooLarge { limit } => {
                json!({"error": "request body too large", "limit": limit})
            }
            Reject::NoHealthyUpstream { upstream } => {
                json!({"error": "no healthy upstream server", "upstream": upstream})
            }
            Reject::NoDiscoveredServer { upstream, reason } => json!({
                "error": "no upstream server",
                "upstream": upstream,
                "reason": reason,
            }),
            Reject::UpstreamBusy { upstream, reason } => json!({
                "error": "upstream busy",
                "upstream": upstream,
                "reason": reason,
                "retry_after_s": 1,
            }),
            Reject::UpstreamTimeout { upstream } => {
                json!({"error": "upstream timed out", "upstream": upstream})
            }
            Reject::UpstreamFailed { upstream, detail } => {
                json!({"error": "upstream connection failed", "upstream": upstream, "detail": detail})
            }
            Reject::BadRequest { detail } => json!({"error": "bad request", "detail": detail}),
            Reject::UpgradeRefused { route } => json!({
                "error": "protocol upgrade not allowed on this route",
                "route": route,
            }),
            Reject::Unauthorized(rejection) => rejection.json_body(),
            Reject::RateLimited(refusal) => json!({
                "error": "rate limited",
                "limit": refusal.limit,
                "retry_after_s": refusal.retry_after_s,
            }),
            Reject::Status { code } => json!({
                "error": http::StatusCode::from_u16(*code)
                    .ok()
                    .and_then(|status| status.canonical_reason())
                    .unwrap_or("error"),
            }),
            Reject::Access(refusal) => access_answer(refusal).body,
            Reject::Internal => json!({"error": "internal error"}),
        }
    }

    /// Headers the response must carry besides the JSON body (RFC 6750's challenge; when to
    /// retry, with the IETF draft's `RateLimit-Policy` and `RateLimit` on a 429).
    pub fn extra_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Reject::Unauthorized(rejection) => {
                vec![("www-authenticate", rejection.www_authenticate())]
            }
            // Queued requests wait at most seconds; one second is the soonest worth trying.
            Reject::UpstreamBusy { .. } => vec![("retry-after", "1".to_string())],
            Reject::RateLimited(refusal) => vec![
                ("retry-after", refusal.retry_after_s.to_string()),
                ("ratelimit-policy", refusal.policy.clone()),
                ("ratelimit", refusal.state.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// Classifies a pingora error that ended a proxied request. `None` means the client is
    /// gone and nothing can be sent.
    pub fn from_proxy_error(error: &Error, upstream: Option<&str>) -> Option<Reject> {
        let upstream = upstream.unwrap_or("-").to_string();
        match error.etype() {
            ErrorType::HTTPStatus(code) => Some(Reject::Status { code: *code }),
            _ => match error.esource() {
                ErrorSource::Upstream => Some(match error.etype() {
                    ErrorType::ConnectTimedout
                    | ErrorType::ReadTimedout
                    | ErrorType::WriteTimedout => Reject::UpstreamTimeout { upstream },
                    other => Reject::UpstreamFailed {
                        upstream,
                        detail: other.as_str().to_string(),
                    },
                }),
                ErrorSource::Downstream => match error.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        None
                    }
                    _ => Some(Reject::BadRequest {
                        detail: error.etype().as_str().to_string(),
                    }),
                },
                ErrorSource::Internal | ErrorSource::Unset => match error.etype() {
                    ErrorType::ConnectTimedout
                    | ErrorType::ReadTimedout
                    | ErrorType::WriteTimedout => Some(Reject::UpstreamTimeout { upstream }),
                    ErrorType::ConnectRefused
                    | ErrorType::ConnectError
                    | ErrorType::ConnectNoRoute => Some(Reject::UpstreamFailed {
                        upstream,
                        detail: error.etype().as_str().to_string(),
                    }),
                    _ => Some(Reject::Internal),
                },
            },
        }
    }
}

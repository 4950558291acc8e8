//! `AppError`: every refusal or failure a backend answers with, and the one place that picks its status code.
//!
//! Clients always get a small JSON body; internal details are logged, never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use scalelab_auth::Rejection;
use serde_json::json;

/// Which way a call to a dependency failed; it decides between 502, 503 and 504.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The dependency could not be reached (connection refused, DNS): 503.
    Unavailable,
    /// The dependency did not answer in time: 504.
    Timeout,
    /// The dependency answered, but with an error status or a body we could not use: 502.
    BadResponse,
}

/// An error a handler returns; `IntoResponse` turns it into a JSON body with the right status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed: bad JSON, wrong types, invalid parameters.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the service accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Authentication failed. The body and the `WWW-Authenticate` challenge (RFC 6750) come from
    /// the `Rejection` itself, as they do in the proxy, so the two answers cannot diverge.
    #[error("{0}")]
    Unauthorized(Rejection),
    /// A dependency failed; the body names it.
    #[error("{dependency}: {detail}")]
    Upstream {
        /// The dependency's name: `database`, `microservice`, `worker`.
        dependency: &'static str,
        /// How it failed.
        failure: UpstreamFailure,
        /// Logged only; clients see a generic message.
        detail: String,
    },
    /// The service is deliberately or temporarily unable to answer (chaos `fail_health`).
    #[error("{0}")]
    Unavailable(String),
    /// A failure injected by the chaos knobs.
    #[error("injected failure")]
    Injected,
    /// Anything else; the detail is logged and the client sees "internal error".
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// Wraps any displayable internal error (SQLite, a join error, ...) without leaking it to clients.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    /// The status code this error answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Upstream { failure, .. } => match failure {
                UpstreamFailure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
                UpstreamFailure::BadResponse => StatusCode::BAD_GATEWAY,
            },
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Injected | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::Unauthorized(rejection) => rejection.json_body(),
            Self::Upstream {
                dependency,
                failure,
                detail,
            } => {
                tracing::warn!(dependency, ?failure, detail, "dependency failed");
                let what = match failure {
                    UpstreamFailure::Unavailable => "unavailable",
                    UpstreamFailure::Timeout => "timed out",
                    UpstreamFailure::BadResponse => "returned a bad response",
                };
                json!({ "error": format!("{dependency} {what}"), "dependency": dependency })
            }
            Self::Internal(detail) => {
                tracing::error!(detail, "internal error");
                json!({ "error": "internal error" })
            }
            other => json!({ "error": other.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::Unauthorized(rejection) = &self {
            if let Ok(value) = HeaderValue::from_str(&rejection.www_authenticate()) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        // Wrong types (axum's 422) are a client error like any other bad body, so they answer 400 as the spec asks.
        let message = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(message),
            _ => Self::BadRequest(message),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

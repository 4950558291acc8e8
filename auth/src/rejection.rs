//! Why a request was refused, in one place, so the proxy, the gateway and the CLI render refusals identically.

use serde_json::json;

/// The realm every `WWW-Authenticate` challenge names.
pub const REALM: &str = "scalelab";

/// The outcome label for an accepted token, next to the `reason()` strings of `Rejection` for metrics.
pub const ACCEPTED: &str = "accepted";

/// A refused request. Each variant has a stable `reason()` string that metrics and clients can rely on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No `Authorization` header, or an empty one.
    #[error("no token was sent")]
    Missing,
    /// An `Authorization` header with a scheme other than `Bearer`, such as `Basic`.
    #[error("the authorization scheme is not Bearer")]
    BadScheme,
    /// Not a compact JWS: wrong segment count, bad base64url, or a header or payload that is not a JSON object.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// Longer than `max_token_bytes`; refused before any decoding.
    #[error("the token is larger than the configured limit")]
    TooLarge,
    /// The header's `alg` is not one of the configured algorithms, or does not fit the key it selects.
    #[error("the token's algorithm is not allowed")]
    AlgNotAllowed,
    /// No configured key verifies the signature.
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp` lies further in the past than the leeway allows.
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` lies further in the future than the leeway allows.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A claim the configuration requires is absent.
    #[error("required claim {0} is missing")]
    MissingClaim(String),
    /// `iss` differs from the configured issuer.
    #[error("the issuer is not accepted")]
    BadIssuer,
    /// `aud` does not contain the configured audience (or is present when none is configured).
    #[error("the audience is not accepted")]
    BadAudience,
    /// The header's `kid` names no key in the configured JWKS.
    #[error("no configured key has the token's kid")]
    UnknownKid,
    /// The header has a `crit` parameter; this verifier understands no extensions, so RFC 7515 requires refusal.
    #[error("the token has critical header parameters this verifier does not understand")]
    CritUnsupported,
    /// The header embeds a key (`jwk` or `x5c`); a key chosen by the token proves nothing.
    #[error("the token embeds its own key, which is never trusted")]
    EmbeddedKey,
    /// A registered claim has the wrong JSON type, such as `exp` given as a string.
    #[error("claim {0} has the wrong type")]
    InvalidClaims(String),
    /// The verifier could not use its own key; this is a bug or a key file changed underneath us, not the client's
    /// fault, but the request must still be refused.
    #[error("the token could not be verified")]
    Internal,
}

impl Rejection {
    /// Every reason string, so callers can pre-register metric label values.
    pub const ALL_REASONS: &'static [&'static str] = &[
        "missing",
        "bad_scheme",
        "malformed",
        "too_large",
        "alg_not_allowed",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "missing_claim",
        "bad_issuer",
        "bad_audience",
        "unknown_kid",
        "crit_unsupported",
        "embedded_key",
        "invalid_claims",
        "internal",
    ];

    /// The stable machine-readable reason, used in JSON bodies and as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::BadScheme => "bad_scheme",
            Rejection::Malformed => "malformed",
            Rejection::TooLarge => "too_large",
            Rejection::AlgNotAllowed => "alg_not_allowed",
            Rejection::BadSignature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::MissingClaim(_) => "missing_claim",
            Rejection::BadIssuer => "bad_issuer",
            Rejection::BadAudience => "bad_audience",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::CritUnsupported => "crit_unsupported",
            Rejection::EmbeddedKey => "embedded_key",
            Rejection::InvalidClaims(_) => "invalid_claims",
            Rejection::Internal => "internal",
        }
    }

    /// True when no token was sent at all, which RFC 6750 §3.1 answers without an `error` attribute.
    pub fn is_missing(&self) -> bool {
        matches!(self, Rejection::Missing)
    }

    /// The `WWW-Authenticate` header value for a 401 response.
    pub fn www_authenticate(&self) -> String {
        if self.is_missing() {
            format!("Bearer realm=\"{REALM}\"")
        } else {
            format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                quoted_string_safe(&self.to_string())
            )
        }
    }

    /// The JSON body for a 401 response: `{"error": "missing token" | "invalid token", "reason": ...}`.
    pub fn json_body(&self) -> serde_json::Value {
        let error = if self.is_missing() {
            "missing token"
        } else {
            "invalid token"
        };
        json!({ "error": error, "reason": self.reason() })
    }
}

/// RFC 6750 limits `error_description` to printable ASCII without `"` and `\`, so anything else is replaced rather
/// than escaped (clients are not required to understand escapes there).
fn quoted_string_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect()
}

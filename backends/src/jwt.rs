//! JWT verification: the `Authorization` header to verified claims, or a machine-readable [`Reason`] for the 401.
//!
//! Pure and IO-free so the proxy can share it. Validation is explicit: only the configured HMAC algorithms, `exp`
//! required, `nbf` checked, a small leeway, and `iss`/`aud` required and checked whenever they are configured.

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The shortest secret accepted: HS256 needs at least 256 bits of key to be as strong as its hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// Tokens longer than this are refused before any decoding, so a huge header costs nothing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How a verifier is configured; the launcher passes the same values to the proxy and the gateways.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// The shared HMAC secret.
    pub secret: Vec<u8>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Accepted algorithms; HMAC only, since the key is a shared secret.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, not even in debug logs.
        formatter
            .debug_struct("JwtSettings")
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithms", &self.algorithms)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// Why a verifier cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// The secret is shorter than [`MIN_SECRET_BYTES`].
    #[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
    SecretTooShort(usize),
    /// No algorithm, or one that is not HMAC.
    #[error("unsupported JWT algorithm list {0:?}: use HS256, HS384 and/or HS512")]
    Algorithms(String),
}

/// Why a request was not authenticated; `as_str` is the `reason` field of the 401 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No `Authorization` header.
    Missing,
    /// A scheme other than Bearer (e.g. Basic).
    UnsupportedScheme,
    /// `Bearer` with nothing after it, or an oversized token.
    Malformed,
    /// The signature does not match.
    BadSignature,
    /// `exp` is in the past.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    WrongAudience,
    /// The header's `alg` is not an accepted one (including `none`).
    AlgorithmNotAllowed,
    /// A required claim (`exp`, `iss`, `aud`) is absent.
    MissingClaim,
    /// Anything else: bad base64, bad JSON, wrong segment count, claims of the wrong type.
    Invalid,
}

impl Reason {
    /// The snake_case name used in bodies, logs and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::MissingClaim => "missing_claim",
            Self::Invalid => "invalid",
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 section 3): no error code when no credentials were sent.
    #[must_use]
    pub fn challenge(self) -> String {
        match self {
            Self::Missing => r#"Bearer realm="scalelab""#.to_owned(),
            Self::UnsupportedScheme | Self::Malformed => {
                format!(
                    r#"Bearer realm="scalelab", error="invalid_request", error_description="{}""#,
                    self.as_str()
                )
            }
            other => format!(
                r#"Bearer realm="scalelab", error="invalid_token", error_description="{}""#,
                other.as_str()
            ),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The verified claims; the registered ones are typed, the rest kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// Expiry, unix seconds; always present after verification, optional here only so that a missing `exp` is reported
    /// as [`Reason::MissingClaim`] by the validation rather than as a parse error.
    #[serde(default)]
    pub exp: Option<u64>,
    /// Every other claim.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Verifies tokens against one [`JwtSettings`]; build once, share behind an `Arc`.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Verifier")
            .field("validation", &self.validation)
            .finish_non_exhaustive()
    }
}

/// Parses a comma-separated algorithm list such as `HS256,HS512`.
///
/// # Errors
/// An empty list or a non-HMAC algorithm.
pub fn parse_algorithms(text: &str) -> Result<Vec<Algorithm>, JwtConfigError> {
    let algorithms = text
        .split(',')
        .map(|name| match name.trim().to_ascii_uppercase().as_str() {
            "HS256" => Ok(Algorithm::HS256),
            "HS384" => Ok(Algorithm::HS384),
            "HS512" => Ok(Algorithm::HS512),
            _ => Err(JwtConfigError::Algorithms(text.to_owned())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(algorithms)
}

/// Takes the token out of an `Authorization` value: `Bearer <t>` (scheme case-insensitive) or a bare token, the
/// seed's form.
///
/// # Errors
/// [`Reason::UnsupportedScheme`] for another scheme, [`Reason::Malformed`] for an empty or oversized token.
pub fn extract_token(authorization: &str) -> Result<&str, Reason> {
    let value = authorization.trim();
    let token = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return Err(Reason::UnsupportedScheme),
        // A lone "Bearer" is an empty credential, not a token named "Bearer".
        None if value.eq_ignore_ascii_case("bearer") => "",
        None => value,
    };
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(Reason::Malformed);
    }
    Ok(token)
}

impl Verifier {
    /// Builds a verifier.
    ///
    /// # Errors
    /// A short secret or an unusable algorithm list.
    pub fn new(settings: &JwtSettings) -> Result<Self, JwtConfigError> {
        if settings.secret.len() < MIN_SECRET_BYTES {
            return Err(JwtConfigError::SecretTooShort(settings.secret.len()));
        }
        let Some(&first) = settings.algorithms.first() else {
            return Err(JwtConfigError::Algorithms(String::new()));
        };
        if let Some(bad) = settings.algorithms.iter().find(|algorithm| {
            !matches!(
                algorithm,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            )
        }) {
            return Err(JwtConfigError::Algorithms(format!("{bad:?}")));
        }
        let mut validation = Validation::new(first);
        validation.algorithms.clone_from(&settings.algorithms);
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without a configured audience there is nothing to compare an `aud` claim with.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            key: DecodingKey::from_secret(&settings.secret),
            validation,
        })
    }

    /// Verifies an `Authorization` header value (absent = `None`).
    ///
    /// # Errors
    /// The [`Reason`] the request is refused.
    pub fn verify_header(&self, authorization: Option<&str>) -> Result<Claims, Reason> {
        let token = extract_token(authorization.ok_or(Reason::Missing)?)?;
        self.verify_token(token)
    }

    /// Verifies a bare token.
    ///
    /// # Errors
    /// The [`Reason`] the token is refused.
    pub fn verify_token(&self, token: &str) -> Result<Claims, Reason> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature => Reason::BadSignature,
                ErrorKind::ExpiredSignature => Reason::Expired,
                ErrorKind::ImmatureSignature => Reason::NotYetValid,
                ErrorKind::InvalidIssuer => Reason::WrongIssuer,
                ErrorKind::InvalidAudience => Reason::WrongAudience,
                ErrorKind::InvalidAlgorithm
                | ErrorKind::MissingAlgorithm
                | ErrorKind::InvalidAlgorithmName => Reason::AlgorithmNotAllowed,
                ErrorKind::MissingRequiredClaim(_) => Reason::MissingClaim,
                _ => Reason::Invalid,
            })
    }
}

#[cfg(test)]
mod tests;

//! `Verifier`: from an `Authorization` value to `Claims` or a `Rejection`.
//!
//! Order of checks, cheapest and most structural first: size, scheme, three segments, strict base64url, header JSON
//! (our own struct, because `jsonwebtoken::Header` drops `crit` and would let the token pick its algorithm), `alg`
//! against the configuration, `crit`, embedded keys, `kid`; only then `jsonwebtoken` with an explicit
//! `Validation`, and finally our own claim type and presence checks.

use crate::config::AuthSettings;
use crate::keys::{algorithm_from_name, VerifyKey};
use crate::rejection::{Rejection, ACCEPTED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Deserializer};

/// The claims of an accepted token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The `sub` claim, when present (its type was checked to be a string).
    pub sub: Option<String>,
    /// Every claim exactly as sent, as a JSON object.
    pub raw: serde_json::Value,
}

/// Verifies tokens against one `AuthSettings`. Cheap to share behind an `Arc`; holds no interior state.
#[derive(Debug, Clone)]
pub struct Verifier {
    settings: AuthSettings,
    /// One `Validation` per configured algorithm, built once rather than per request.
    validations: Vec<(Algorithm, Validation)>,
}

/// The metric label for a verification result: `accepted` or the rejection's reason.
pub fn outcome_label(result: &Result<Claims, Rejection>) -> &'static str {
    match result {
        Ok(_) => ACCEPTED,
        Err(rejection) => rejection.reason(),
    }
}

/// The header fields this verifier acts on. Deriving `Deserialize` means a duplicated `alg`, `kid` or `crit`
/// fails the parse instead of silently keeping the last value, so two parsers can't disagree about them.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
    // `jku` and `x5u` are URLs of keys: they are parsed only so a duplicate is caught, and are otherwise ignored,
    // because keys come from configuration and nothing here ever fetches anything.
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    x5u: bool,
}

/// True when the member is present at all, even as `null`, which `Option` would hide.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

impl Verifier {
    pub fn new(settings: AuthSettings) -> Self {
        let validations = settings
            .algorithms
            .iter()
            .map(|alg| (*alg, validation(&settings, *alg)))
            .collect();
        Verifier {
            settings,
            validations,
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Verifies the raw `Authorization` header value, `None` when the header is absent. Accepts
    /// `Bearer <token>` with the scheme in any case, or a bare token (the form the original gateway used).
    pub fn verify_header(&self, authorization: Option<&[u8]>) -> Result<Claims, Rejection> {
        let Some(raw) = authorization else {
            return Err(Rejection::Missing);
        };
        // A header far beyond the token limit is refused before even trimming or UTF-8 checking it.
        if raw.len() > self.settings.max_token_bytes + "Bearer ".len() + 64 {
            return Err(Rejection::TooLarge);
        }
        let Ok(value) = std::str::from_utf8(raw) else {
            return Err(Rejection::Malformed);
        };
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() {
            return Err(Rejection::Missing);
        }
        if value.eq_ignore_ascii_case("bearer") {
            return Err(Rejection::Malformed);
        }
        match value.split_once([' ', '\t']) {
            None => self.verify_token(value),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                self.verify_token(rest.trim_start_matches([' ', '\t']))
            }
            Some(_) => Err(Rejection::BadScheme),
        }
    }

    /// Verifies a token given without any scheme.
    pub fn verify_token(&self, token: &str) -> Result<Claims, Rejection> {
        if token.len() > self.settings.max_token_bytes {
            return Err(Rejection::TooLarge);
        }
        let segments: Vec<&str> = token.split('.').collect();
        let [header_b64, payload_b64, signature_b64] = segments.as_slice() else {
            return Err(Rejection::Malformed);
        };
        let header_bytes = strict_b64(header_b64)?;
        let payload_bytes = strict_b64(payload_b64)?;
        strict_b64(signature_b64)?;
        let header: RawHeader =
            serde_json::from_slice(&header_bytes).map_err(|_| Rejection::Malformed)?;
        let payload: serde_json::Value =
            serde_json::from_slice(&payload_bytes).map_err(|_| Rejection::Malformed)?;
        let Some(claims) = payload.as_object() else {
            return Err(Rejection::Malformed);
        };

        // Exact, case-sensitive names, and only those in the configuration: `none` in any spelling never matches.
        let alg = algorithm_from_name(&header.alg)
            .filter(|alg| self.settings.algorithms.contains(alg))
            .ok_or(Rejection::AlgNotAllowed)?;
        if header.crit {
            return Err(Rejection::CritUnsupported);
        }
        if header.jwk || header.x5c {
            return Err(Rejection::EmbeddedKey);
        }
        let candidates = self.candidate_keys(alg, header.kid.as_deref())?;

        let validation = self
            .validations
            .iter()
            .find_map(|(configured, validation)| (*configured == alg).then_some(validation))
            .ok_or(Rejection::AlgNotAllowed)?;
        let mut outcome = Err(Rejection::BadSignature);
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, validation) {
                Ok(_) => {
                    outcome = Ok(());
                    break;
                }
                // Another key may still verify it.
                Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => {}
                Err(error) => {
                    outcome = Err(map_error(error.kind()));
                    break;
                }
            }
        }
        // `jsonwebtoken` only reaches claim validation after the signature verified, so from here on the claims
        // are authentic and our own stricter checks may explain a claim failure more precisely.
        match outcome {
            Err(Rejection::BadSignature) => Err(Rejection::BadSignature),
            Err(rejection) if !is_claim_rejection(&rejection) => Err(rejection),
            verified => {
                self.check_claims(claims)?;
                verified?;
                let sub = claims
                    .get("sub")
                    .and_then(|sub| sub.as_str())
                    .map(str::to_owned);
                Ok(Claims { sub, raw: payload })
            }
        }
    }

    /// The keys that may verify a token with this `alg` and `kid`. With a JWKS configured, a `kid` must name one
    /// of its keys; otherwise every configured key bound to `alg` is a candidate, and the token's `kid` is ignored
    /// (it is never used as a file name or a URL).
    fn candidate_keys(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<&VerifyKey>, Rejection> {
        if let (true, Some(kid)) = (self.settings.jwks_configured, kid) {
            let key = self
                .settings
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .ok_or(Rejection::UnknownKid)?;
            return if key.accepts(alg) {
                Ok(vec![key])
            } else {
                Err(Rejection::AlgNotAllowed)
            };
        }
        let candidates: Vec<&VerifyKey> = self
            .settings
            .keys
            .iter()
            .filter(|key| key.accepts(alg))
            .collect();
        if candidates.is_empty() {
            // Validation guarantees a key for every configured algorithm, so this is unreachable in practice;
            // refusing is the only safe answer if it ever happens.
            return Err(Rejection::AlgNotAllowed);
        }
        Ok(candidates)
    }

    /// Checks `jsonwebtoken` does not make: registered claims of the wrong JSON type (it silently skips an `iss`
    /// or `aud` that fails to parse, and reports a string `exp` as merely missing), required claims outside the
    /// five it knows (it ignores those), and `iat` in the future.
    fn check_claims(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), Rejection> {
        use serde_json::Value;
        let invalid = |name: &str| Err(Rejection::InvalidClaims(name.to_owned()));
        for name in ["exp", "nbf", "iat"] {
            match claims.get(name) {
                None => {}
                Some(Value::Number(number))
                    if number.as_f64().is_some_and(|n| n.is_finite() && n >= 0.0) => {}
                Some(_) => return invalid(name),
            }
        }
        for name in ["iss", "sub", "jti"] {
            if claims.get(name).is_some_and(|value| !value.is_string()) {
                return invalid(name);
            }
        }
        match claims.get("aud") {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => return invalid("aud"),
        }
        for name in &self.settings.required_claims {
            if !claims.contains_key(name) {
                return Err(Rejection::MissingClaim(name.clone()));
            }
        }
        let leeway = self.settings.leeway.as_secs_f64();
        if let Some(iat) = claims.get("iat").and_then(Value::as_f64) {
            if iat > now_secs() + leeway {
                return Err(Rejection::NotYetValid);
            }
        }
        Ok(())
    }
}

/// `jsonwebtoken`'s defaults (60 s leeway, `nbf` unchecked) are not ours, so every field is set explicitly.
fn validation(settings: &AuthSettings, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.leeway = settings.leeway.as_secs();
    validation.reject_tokens_expiring_in_less_than = 0;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_required_spec_claims(&settings.required_claims);
    validation.iss = None;
    validation.aud = None;
    validation.sub = None;
    if let Some(issuer) = &settings.issuer {
        validation.set_issuer(&[issuer]);
    }
    if let Some(audience) = &settings.audience {
        validation.set_audience(&[audience]);
    }
    validation
}

/// Strict base64url as RFC 7515 requires: only the URL-safe alphabet, no padding, no whitespace, and canonical
/// trailing bits (the engine rejects non-zero leftover bits, so one token has exactly one encoding).
fn strict_b64(segment: &str) -> Result<Vec<u8>, Rejection> {
    if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Rejection::Malformed);
    }
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::Malformed)
}

fn map_error(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::InvalidSignature => Rejection::BadSignature,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::MissingRequiredClaim(claim) => Rejection::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => Rejection::InvalidClaims(claim.clone()),
        ErrorKind::InvalidIssuer => Rejection::BadIssuer,
        ErrorKind::InvalidAudience => Rejection::BadAudience,
        ErrorKind::InvalidSubject => Rejection::InvalidClaims("sub".to_owned()),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => Rejection::AlgNotAllowed,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => Rejection::Malformed,
        _ => Rejection::Internal,
    }
}

/// Rejections `jsonwebtoken` only produces after the signature verified.
fn is_claim_rejection(rejection: &Rejection) -> bool {
    matches!(
        rejection,
        Rejection::Expired
            | Rejection::NotYetValid
            | Rejection::MissingClaim(_)
            | Rejection::InvalidClaims(_)
            | Rejection::BadIssuer
            | Rejection::BadAudience
    )
}

fn now_secs() -> f64 {
    scalelab_common::clock::unix_secs_f64()
}

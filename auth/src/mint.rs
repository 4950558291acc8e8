//! Issuing HMAC tokens with the configured secret, for `scalelab token` and for tests.

use crate::config::AuthSettings;
use crate::keys::KeyKind;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no HMAC algorithm and secret are configured, so this process cannot sign tokens")]
    NoHmacKey,
    #[error("the token lifetime must be at least one second")]
    ZeroTtl,
    #[error("the system clock is before 1970")]
    Clock,
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs a token for `sub` that is valid from now for `ttl`, with the first configured HMAC algorithm, carrying
/// `iat`, `nbf`, `exp` and the configured `iss` and `aud`, so it passes a `Verifier` built from the same settings.
pub fn mint(settings: &AuthSettings, sub: &str, ttl: Duration) -> Result<String, MintError> {
    let secret = settings.hmac_secret.as_ref().ok_or(MintError::NoHmacKey)?;
    let alg = settings
        .algorithms
        .iter()
        .copied()
        .find(|alg| KeyKind::Hmac.fits(*alg))
        .ok_or(MintError::NoHmacKey)?;
    if ttl.as_secs() == 0 {
        return Err(MintError::ZeroTtl);
    }
    // A clock before 1970 reads as zero: refuse rather than mint a token issued in 1970.
    let now = scalelab_common::clock::unix_secs();
    if now == 0 {
        return Err(MintError::Clock);
    }
    let mut claims = json!({
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs(),
    });
    if let Some(issuer) = &settings.issuer {
        claims["iss"] = json!(issuer);
    }
    if let Some(audience) = &settings.audience {
        claims["aud"] = json!(audience);
    }
    let token = jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret),
    )?;
    Ok(token)
}

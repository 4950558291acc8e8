//! Minting dev tokens with the config's own `[auth]` table, through the same crate the proxy and the gateways verify
//! with, so a minted token is accepted by construction.

use std::path::Path;
use std::time::Duration;

/// Why no token could be minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: invalid [auth] table:\n  {issues}")]
    Invalid { path: String, issues: String },
    #[error(
        "{0} has no [auth] table, so nothing verifies tokens and there is nothing to sign with"
    )]
    NoAuth(String),
    #[error("{path}: {source}")]
    Mint {
        path: String,
        source: scalelab_auth::MintError,
    },
}

/// Loads the `[auth]` settings of the config file at `path`; `Ok(None)` when it has no `[auth]` table.
///
/// # Errors
/// The file cannot be read or its `[auth]` table is invalid (every problem is listed).
pub fn settings(path: &Path) -> Result<Option<scalelab_auth::AuthSettings>, TokenError> {
    scalelab_auth::load_from_config_file(path).map_err(|issues| TokenError::Invalid {
        path: path.display().to_string(),
        issues: issues
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  "),
    })
}

/// Mints a token for `sub`, valid for `ttl`, that the config at `path` accepts.
///
/// # Errors
/// No `[auth]` table, an invalid one, or one without an HMAC secret to sign with.
pub fn mint(path: &Path, sub: &str, ttl: Duration) -> Result<String, TokenError> {
    let settings = settings(path)?.ok_or_else(|| TokenError::NoAuth(path.display().to_string()))?;
    scalelab_auth::mint(&settings, sub, ttl).map_err(|source| TokenError::Mint {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const AUTH: &str = r#"
[auth]
algorithms = ["HS256"]
secret = "scalelab-dev-secret-change-me-0123456789"
issuer = "scalelab"
audience = "scalelab-lab"
leeway = "5s"
"#;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn a_minted_token_passes_the_verifier_built_from_the_same_file() {
        let file = write(AUTH);
        let token = mint(file.path(), "alice", Duration::from_secs(600)).unwrap();
        let verifier = scalelab_auth::Verifier::new(settings(file.path()).unwrap().unwrap());
        let claims = verifier
            .verify_header(Some(format!("Bearer {token}").as_bytes()))
            .unwrap();
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        assert_eq!(claims.raw["iss"], "scalelab");
        assert_eq!(claims.raw["aud"], "scalelab-lab");
        let exp = claims.raw["exp"].as_u64().unwrap();
        let iat = claims.raw["iat"].as_u64().unwrap();
        assert_eq!(exp - iat, 600);
        // The bare form (the seed's) is accepted too.
        assert!(verifier.verify_header(Some(token.as_bytes())).is_ok());
    }

    #[test]
    fn a_token_from_another_secret_is_refused() {
        let ours = write(AUTH);
        let theirs = write(&AUTH.replace("change-me", "other-one"));
        let token = mint(theirs.path(), "mallory", Duration::from_secs(600)).unwrap();
        let verifier = scalelab_auth::Verifier::new(settings(ours.path()).unwrap().unwrap());
        let rejection = verifier.verify_token(&token).unwrap_err();
        assert_eq!(rejection.reason(), "bad_signature");
    }

    #[test]
    fn without_auth_or_with_a_bad_one_there_is_a_clear_error() {
        let none = write("[lab]\nworkers = 2\n");
        let error = mint(none.path(), "dev", Duration::from_secs(60)).unwrap_err();
        assert!(matches!(error, TokenError::NoAuth(_)), "{error}");

        let short = write(&AUTH.replace("scalelab-dev-secret-change-me-0123456789", "short"));
        let error = mint(short.path(), "dev", Duration::from_secs(60)).unwrap_err();
        assert!(error.to_string().contains("auth.secret"), "{error}");

        let file = write(AUTH);
        let error = mint(file.path(), "dev", Duration::ZERO).unwrap_err();
        assert!(matches!(error, TokenError::Mint { .. }), "{error}");
    }
}

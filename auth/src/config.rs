//! The `[auth]` table: `AuthFileConfig` mirrors the TOML, `validate` turns it into `AuthSettings` or reports
//! every problem at once, each with its TOML path.
//!
//! One concept per module: `file` (the serde types, exactly as written), `load` (the HMAC secret, PEM public
//! keys and the JWKS file) and `checks` (algorithms, key fit, claims, leeway and size limits). This module holds
//! the validated `AuthSettings` and the entry points that tie the three together.

mod checks;
mod file;
mod load;

pub use file::{AuthFileConfig, SecretSource, DEFAULT_MAX_TOKEN_BYTES};

use crate::keys::VerifyKey;
use checks::{
    check_algorithms, check_keys_fit_algorithms, check_leeway, check_max_token_bytes,
    check_required_claims, non_empty,
};
use jsonwebtoken::Algorithm;
use load::{check_secret, hmac_key, load_jwks, load_public_keys};
use scalelab_common::problem::{Problem, Problems};
use serde::Deserialize;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Validated settings: every key is loaded and parsed, every value is in range. Build a `Verifier` from it.
#[derive(Clone)]
pub struct AuthSettings {
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) hmac_secret: Option<Vec<u8>>,
    /// Every verification key: PEM keys, then JWKS keys, then the HMAC secret as a key. The secret's bytes are
    /// also kept in `hmac_secret` because `mint` signs with them.
    pub(crate) keys: Vec<VerifyKey>,
    pub(crate) jwks_configured: bool,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) leeway: Duration,
    pub(crate) max_token_bytes: usize,
}

impl AuthSettings {
    /// The configured algorithms, in configuration order.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The claims a token must carry, including `iss` and `aud` when an issuer or audience is configured.
    pub fn required_claims(&self) -> &[String] {
        &self.required_claims
    }

    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// True when an HMAC secret is configured, which is what `mint` needs.
    pub fn can_mint(&self) -> bool {
        self.hmac_secret.is_some()
    }
}

// The secret and the keys stay out of debug output; their count is enough to debug a configuration.
impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("algorithms", &self.algorithms)
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("keys", &self.keys.len())
            .field("jwks_configured", &self.jwks_configured)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("required_claims", &self.required_claims)
            .field("leeway", &self.leeway)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish()
    }
}

/// Validates `config`, reading secrets from the process environment and files relative to `base_dir` (the config
/// file's directory).
///
/// # Errors
/// Every problem found, each with its TOML path.
pub fn validate(config: &AuthFileConfig, base_dir: &Path) -> Result<AuthSettings, Vec<Problem>> {
    validate_with_env(config, base_dir, &|name| std::env::var_os(name))
}

/// As `validate`, with the environment supplied by the caller, so tests never touch the process environment.
///
/// # Errors
/// Every problem found, each with its TOML path.
pub fn validate_with_env(
    config: &AuthFileConfig,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<AuthSettings, Vec<Problem>> {
    let mut problems = Problems::new();

    let algorithms = check_algorithms(config, &mut problems);
    let hmac_secret = check_secret(config, &algorithms, base_dir, env, &mut problems);

    let before_keys = problems.len();
    let mut keys = load_public_keys(config, &algorithms, base_dir, &mut problems);
    keys.extend(load_jwks(config, &algorithms, base_dir, &mut problems));
    // Every problem the two loaders report concerns a key file, so none means every key loaded.
    let keys_loaded = problems.len() == before_keys;
    check_keys_fit_algorithms(config, &algorithms, &keys, keys_loaded, &mut problems);

    let issuer = non_empty(&config.issuer, "auth.issuer", &mut problems);
    let audience = non_empty(&config.audience, "auth.audience", &mut problems);
    let required_claims =
        check_required_claims(config, issuer.is_some(), audience.is_some(), &mut problems);
    let leeway = check_leeway(config.leeway.as_deref(), &mut problems);
    check_max_token_bytes(config.max_token_bytes, &mut problems);

    problems.into_result(())?;
    if let Some(secret) = &hmac_secret {
        keys.push(hmac_key(secret));
    }
    Ok(AuthSettings {
        algorithms,
        hmac_secret,
        keys,
        jwks_configured: config.jwks_file.is_some(),
        issuer,
        audience,
        required_claims,
        leeway,
        max_token_bytes: config.max_token_bytes,
    })
}

/// Reads just the `[auth]` table from a whole config file's text, ignoring every other table; `Ok(None)` when the
/// file has no `[auth]` table.
///
/// # Errors
/// A TOML syntax error, or an `[auth]` table with unknown keys or wrong types, as one problem at `auth`.
pub fn parse_config_toml(text: &str) -> Result<Option<AuthFileConfig>, Problem> {
    #[derive(Deserialize)]
    struct Outer {
        auth: Option<AuthFileConfig>,
    }
    toml::from_str::<Outer>(text)
        .map(|outer| outer.auth)
        .map_err(|error| Problem::new("auth", error.to_string()))
}

/// Loads and validates the `[auth]` table of the config file at `path`, resolving key paths against its directory.
/// This is how the gateway backend and `scalelab token` share the proxy's settings.
///
/// # Errors
/// The file cannot be read, or every problem of its `[auth]` table.
pub fn load_from_config_file(path: &Path) -> Result<Option<AuthSettings>, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        vec![Problem::new(
            "auth",
            format!("cannot read {}: {error}", path.display()),
        )]
    })?;
    let Some(config) = parse_config_toml(&text).map_err(|problem| vec![problem])? else {
        return Ok(None);
    };
    let base_dir = path.parent().unwrap_or(Path::new("."));
    validate(&config, base_dir).map(Some)
}

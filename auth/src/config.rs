//! The `[auth]` table: `AuthFileConfig` mirrors the TOML, `validate` turns it into `AuthSettings` or reports
//! every problem at once, each with its TOML path.

use crate::keys::{self, KeyKind, VerifyKey, ALGORITHM_NAMES};
use jsonwebtoken::{Algorithm, DecodingKey};
use scalelab_common::problem::{Problem, Problems};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Tokens longer than this are refused before any decoding unless `max_token_bytes` says otherwise.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output; 32 bytes covers HS256.
const MIN_SECRET_BYTES: usize = 32;
/// A leeway beyond five minutes is almost certainly a unit mistake, and it would make `exp` meaningless.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
const MAX_TOKEN_BYTES_RANGE: (usize, usize) = (512, 65536);

/// The TOML `[auth]` table exactly as written; nothing here has been checked yet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFileConfig {
    /// Accepted algorithms by their RFC 7518 names; the token's `alg` must be one of them exactly.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// The HMAC secret: an inline string, `{ env = "NAME" }` or `{ file = "path" }`.
    #[serde(default)]
    pub secret: Option<SecretSource>,
    /// PEM public keys (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`) for RS/PS/ES/EdDSA.
    #[serde(default)]
    pub public_keys: Vec<PathBuf>,
    /// A JWKS file whose keys are chosen by `kid`; each key must name its `alg`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// When set, `iss` is required and must equal it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When set, `aud` is required and must be or contain it.
    #[serde(default)]
    pub audience: Option<String>,
    /// Claims that must be present; `["exp"]` unless configured.
    #[serde(default = "default_required_claims")]
    pub required_claims: Vec<String>,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`, such as `"5s"`; zero unless configured.
    #[serde(default)]
    pub leeway: Option<String>,
    /// Tokens longer than this are refused before decoding.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
}

fn default_required_claims() -> Vec<String> {
    vec!["exp".to_owned()]
}

fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}

/// Where the HMAC secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The secret itself, written in the config; fine for development only.
    Inline(String),
    /// The name of an environment variable holding the secret.
    Env(String),
    /// A file holding the secret; one trailing newline is ignored because editors and `echo` add it.
    File(PathBuf),
}

// The inline secret must not end up in logs through `{:?}` on a config.
impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::Env(name) => f.debug_tuple("Env").field(name).finish(),
            SecretSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

// A hand-written visitor, because serde's untagged enums only say "did not match any variant", while a user who
// writes `{ env = "A", file = "b" }` or `{ enc = "A" }` deserves to be told exactly what is wrong.
impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = SecretSource;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, { env = "NAME" } or { file = "path" }"#)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<SecretSource, E> {
                Ok(SecretSource::Inline(value.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretSource, A::Error> {
                let mut found: Option<SecretSource> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let source = match key.as_str() {
                        "env" => SecretSource::Env(map.next_value()?),
                        "file" => SecretSource::File(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["env", "file"])),
                    };
                    if found.is_some() {
                        return Err(de::Error::custom("use exactly one of `env` or `file`"));
                    }
                    found = Some(source);
                }
                found.ok_or_else(|| de::Error::custom("expected `env` or `file`"))
            }
        }

        deserializer.deserialize_any(SecretVisitor)
    }
}

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

fn check_algorithms(config: &AuthFileConfig, problems: &mut Problems) -> Vec<Algorithm> {
    if config.algorithms.is_empty() {
        problems.push(
            "auth.algorithms",
            "list at least one algorithm, for example [\"HS256\"]",
        );
    }
    let mut algorithms = Vec::new();
    for (index, name) in config.algorithms.iter().enumerate() {
        let path = format!("auth.algorithms[{index}]");
        match keys::algorithm_from_name(name) {
            Some(alg) if algorithms.contains(&alg) => problems.push(path, format!("{name} is listed twice")),
            Some(alg) => algorithms.push(alg),
            None if name.eq_ignore_ascii_case("none") => {
                problems.push(path, "unsigned tokens (alg none) are never accepted")
            }
            None => problems.push(
                path,
                format!("unknown algorithm {name:?}; expected one of {ALGORITHM_NAMES} (case-sensitive)"),
            ),
        }
    }
    algorithms
}

/// The HMAC secret: required with an HMAC algorithm, refused without one, then loaded from its source.
fn check_secret(
    config: &AuthFileConfig,
    algorithms: &[Algorithm],
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
    problems: &mut Problems,
) -> Option<Vec<u8>> {
    let wants_hmac = algorithms.iter().any(|alg| KeyKind::Hmac.fits(*alg));
    match &config.secret {
        None => {
            if wants_hmac {
                problems.push(
                    "auth.secret",
                    "is required because auth.algorithms contains an HMAC algorithm",
                );
            }
            None
        }
        Some(source) => {
            if !wants_hmac && !algorithms.is_empty() {
                problems.push(
                    "auth.secret",
                    "is set but auth.algorithms has no HMAC algorithm (HS256/384/512); remove it",
                );
            }
            load_secret(source, base_dir, env, problems)
        }
    }
}

/// Loads every `auth.public_keys` PEM file; a key that no configured algorithm can use is a problem, because it
/// would sit there unused while the user believes it is checked.
fn load_public_keys(
    config: &AuthFileConfig,
    algorithms: &[Algorithm],
    base_dir: &Path,
    problems: &mut Problems,
) -> Vec<VerifyKey> {
    let mut keys = Vec::new();
    for (index, path) in config.public_keys.iter().enumerate() {
        let toml_path = format!("auth.public_keys[{index}]");
        let full = resolve(base_dir, path);
        let text = match std::fs::read_to_string(&full) {
            Ok(text) => text,
            Err(error) => {
                problems.push(
                    &toml_path,
                    format!("cannot read {}: {error}", full.display()),
                );
                continue;
            }
        };
        match keys::load_pem(&text) {
            Ok((kind, key)) => {
                if !algorithms.is_empty() && !algorithms.iter().any(|alg| kind.fits(*alg)) {
                    problems.push(
                        &toml_path,
                        format!(
                            "{} is {} but auth.algorithms has no algorithm it can verify",
                            full.display(),
                            kind.describe()
                        ),
                    );
                }
                keys.push(VerifyKey {
                    kind,
                    pinned: None,
                    kid: None,
                    key,
                });
            }
            Err(message) => problems.push(&toml_path, format!("{} {message}", full.display())),
        }
    }
    keys
}

/// Loads the keys of `auth.jwks_file`, if one is configured.
fn load_jwks(
    config: &AuthFileConfig,
    algorithms: &[Algorithm],
    base_dir: &Path,
    problems: &mut Problems,
) -> Vec<VerifyKey> {
    let Some(path) = &config.jwks_file else {
        return Vec::new();
    };
    let full = resolve(base_dir, path);
    match std::fs::read_to_string(&full) {
        Ok(text) => match keys::load_jwks(&text, algorithms) {
            Ok(loaded) => loaded,
            Err(found) => {
                for problem in found {
                    problems.push("auth.jwks_file", format!("{}: {problem}", full.display()));
                }
                Vec::new()
            }
        },
        Err(error) => {
            problems.push(
                "auth.jwks_file",
                format!("cannot read {}: {error}", full.display()),
            );
            Vec::new()
        }
    }
}

/// Keys and algorithms must match both ways: keys are useless with only HMAC algorithms, and every public-key
/// algorithm needs a key that verifies it.
fn check_keys_fit_algorithms(
    config: &AuthFileConfig,
    algorithms: &[Algorithm],
    keys: &[VerifyKey],
    keys_loaded: bool,
    problems: &mut Problems,
) {
    let wants_keys = algorithms.iter().any(|alg| !KeyKind::Hmac.fits(*alg));
    if !wants_keys
        && !algorithms.is_empty()
        && (!config.public_keys.is_empty() || config.jwks_file.is_some())
    {
        problems.push(
            "auth.public_keys",
            "keys are configured but auth.algorithms has only HMAC algorithms; remove them",
        );
    }
    // Only checked when every key loaded, so a broken key file isn't reported twice.
    if !keys_loaded {
        return;
    }
    for (index, alg) in config.algorithms.iter().enumerate() {
        let Some(alg) = keys::algorithm_from_name(alg) else {
            continue;
        };
        if !KeyKind::Hmac.fits(alg) && !keys.iter().any(|key| key.accepts(alg)) {
            problems.push(
                format!("auth.algorithms[{index}]"),
                format!(
                    "{alg:?} has no key: add a matching public key to auth.public_keys or a JWKS key with \"alg\": \"{alg:?}\""
                ),
            );
        }
    }
}

/// The required claims without duplicates, plus `iss` and `aud` when an issuer or audience is configured.
fn check_required_claims(
    config: &AuthFileConfig,
    issuer_configured: bool,
    audience_configured: bool,
    problems: &mut Problems,
) -> Vec<String> {
    let mut required_claims: Vec<String> = Vec::new();
    for (index, claim) in config.required_claims.iter().enumerate() {
        let valid_name = !claim.is_empty()
            && claim
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if !valid_name {
            problems.push(
                format!("auth.required_claims[{index}]"),
                format!("{claim:?} is not a claim name (letters, digits, _ - . : only)"),
            );
        } else if !required_claims.contains(claim) {
            required_claims.push(claim.clone());
        }
    }
    // A configured issuer or audience that a token could satisfy by leaving the claim out would check nothing.
    for (configured, claim) in [(issuer_configured, "iss"), (audience_configured, "aud")] {
        if configured && !required_claims.iter().any(|c| c == claim) {
            required_claims.push(claim.to_owned());
        }
    }
    required_claims
}

fn check_max_token_bytes(max_token_bytes: usize, problems: &mut Problems) {
    let (low, high) = MAX_TOKEN_BYTES_RANGE;
    if !(low..=high).contains(&max_token_bytes) {
        problems.push(
            "auth.max_token_bytes",
            format!("{max_token_bytes} is out of range {low}..={high}"),
        );
    }
}

fn load_secret(
    source: &SecretSource,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
    problems: &mut Problems,
) -> Option<Vec<u8>> {
    let (path, bytes) = match source {
        SecretSource::Inline(value) => ("auth.secret", value.as_bytes().to_vec()),
        SecretSource::Env(name) => {
            let Some(value) = env(name) else {
                problems.push(
                    "auth.secret.env",
                    format!("environment variable {name} is not set"),
                );
                return None;
            };
            ("auth.secret.env", value.into_encoded_bytes())
        }
        SecretSource::File(file) => {
            let full = resolve(base_dir, file);
            match std::fs::read(&full) {
                Ok(mut bytes) => {
                    if bytes.last() == Some(&b'\n') {
                        bytes.pop();
                        if bytes.last() == Some(&b'\r') {
                            bytes.pop();
                        }
                    }
                    ("auth.secret.file", bytes)
                }
                Err(error) => {
                    problems.push(
                        "auth.secret.file",
                        format!("cannot read {}: {error}", full.display()),
                    );
                    return None;
                }
            }
        }
    };
    if bytes.len() < MIN_SECRET_BYTES {
        problems.push(
            path,
            format!(
                "the secret is {} bytes; HMAC secrets must be at least {MIN_SECRET_BYTES} bytes",
                bytes.len()
            ),
        );
        return None;
    }
    Some(bytes)
}

fn check_leeway(text: Option<&str>, problems: &mut Problems) -> Duration {
    let Some(text) = text else {
        return Duration::ZERO;
    };
    match humantime::parse_duration(text) {
        Ok(leeway) if leeway.subsec_nanos() != 0 => {
            problems.push(
                "auth.leeway",
                format!("{text:?} is not a whole number of seconds"),
            );
            Duration::ZERO
        }
        Ok(leeway) if leeway > MAX_LEEWAY => {
            problems.push(
                "auth.leeway",
                format!("{text:?} is more than the maximum of 5m"),
            );
            Duration::ZERO
        }
        Ok(leeway) => leeway,
        Err(error) => {
            problems.push(
                "auth.leeway",
                format!("invalid duration {text:?} ({error}); write it like \"5s\""),
            );
            Duration::ZERO
        }
    }
}

fn non_empty(value: &Option<String>, path: &str, problems: &mut Problems) -> Option<String> {
    match value {
        Some(text) if text.is_empty() => {
            problems.push(path, "must not be empty; leave it out to skip the check");
            None
        }
        other => other.clone(),
    }
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base_dir.join(path)
    }
}

/// The HMAC secret as a verification key, bound to the HMAC family only.
fn hmac_key(secret: &[u8]) -> VerifyKey {
    VerifyKey {
        kind: KeyKind::Hmac,
        pinned: None,
        kid: None,
        key: DecodingKey::from_secret(secret),
    }
}

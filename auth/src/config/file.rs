//! The serde side of `[auth]`: `AuthFileConfig` mirrors the TOML table field for field and `SecretSource` says
//! where the HMAC secret comes from. Nothing here checks a value; `validate` in the parent module does that.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::PathBuf;

/// Tokens longer than this are refused before any decoding unless `max_token_bytes` says otherwise.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
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

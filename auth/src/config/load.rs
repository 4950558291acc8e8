//! Loading key material: the HMAC secret from its source, PEM public keys and a JWKS file. Every path is resolved
//! against the config file's directory, and every failure becomes a problem at the TOML path that named the file.

use super::file::{AuthFileConfig, SecretSource};
use crate::keys::{self, KeyKind, VerifyKey};
use jsonwebtoken::{Algorithm, DecodingKey};
use scalelab_common::problem::Problems;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output; 32 bytes covers HS256.
const MIN_SECRET_BYTES: usize = 32;

/// The HMAC secret: required with an HMAC algorithm, refused without one, then loaded from its source.
pub(super) fn check_secret(
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

/// Reads the secret from its source; a secret shorter than `MIN_SECRET_BYTES` is a problem, not a key.
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

/// Loads every `auth.public_keys` PEM file; a key that no configured algorithm can use is a problem, because it
/// would sit there unused while the user believes it is checked.
pub(super) fn load_public_keys(
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
pub(super) fn load_jwks(
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

/// The HMAC secret as a verification key, bound to the HMAC family only.
pub(super) fn hmac_key(secret: &[u8]) -> VerifyKey {
    VerifyKey {
        kind: KeyKind::Hmac,
        pinned: None,
        kid: None,
        key: DecodingKey::from_secret(secret),
    }
}

/// A relative path is taken relative to the config file's directory, so a config works from any working
/// directory.
fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base_dir.join(path)
    }
}

//! Loading verification keys: PEM public keys and JWKS files, each bound to the algorithms it may verify.
//!
//! Keys are parsed with the RustCrypto crates here, at configuration time, rather than lazily inside
//! `jsonwebtoken`: a broken key then fails validation with its file name instead of turning every request into
//! `bad_signature`, and the EC curve is known, so a P-256 key can only ever verify ES256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashSet;

/// RSA keys below this size are refused; 2048 bits is the floor NIST and RFC 7518 §3.3 set for RS/PS.
const MIN_RSA_BITS: usize = 2048;

/// What a key is, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Hmac,
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind may verify `alg`. This is the binding that stops an HMAC token from being checked
    /// against an RSA public key and vice versa.
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Hmac => matches!(alg, HS256 | HS384 | HS512),
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            KeyKind::Hmac => "an HMAC secret",
            KeyKind::Rsa => "an RSA key (RS256/384/512, PS256/384/512)",
            KeyKind::P256 => "an EC P-256 key (ES256)",
            KeyKind::P384 => "an EC P-384 key (ES384)",
            KeyKind::Ed25519 => "an Ed25519 key (EdDSA)",
        }
    }
}

/// One key the verifier may try, with the constraints that decide when it applies.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub(crate) kind: KeyKind,
    /// JWKS keys are pinned to their `alg`; PEM keys and the HMAC secret only to their family.
    pub(crate) pinned: Option<Algorithm>,
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
}

impl VerifyKey {
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.pinned.is_none_or(|pinned| pinned == alg)
    }
}

/// Parses the exact algorithm names RFC 7518 defines; the match is case-sensitive on purpose, so `none`, `None`,
/// `hs256` and friends never map to anything.
pub(crate) fn algorithm_from_name(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

pub(crate) const ALGORITHM_NAMES: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// Parses one PEM public key. The error is a sentence fit to follow the key's TOML path.
pub(crate) fn load_pem(text: &str) -> Result<(KeyKind, DecodingKey), String> {
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("-----BEGIN "))
        .filter_map(|rest| rest.strip_suffix("-----"))
        .collect();
    let label = match labels.as_slice() {
        [] => return Err("is not a PEM file (no -----BEGIN line)".to_owned()),
        [label] => *label,
        _ => {
            return Err(
                "contains more than one PEM block; put one public key in each file".to_owned(),
            )
        }
    };
    match label {
        "PUBLIC KEY" => load_spki_pem(text),
        "RSA PUBLIC KEY" => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            let key = rsa::RsaPublicKey::from_pkcs1_pem(text)
                .map_err(|error| format!("is not a valid PKCS#1 RSA public key ({error})"))?;
            rsa_key(&key)
        }
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => Err(
            "is a private key; configure the public key instead (openssl pkey -in KEY -pubout)"
                .to_owned(),
        ),
        "CERTIFICATE" => Err(
            "is a certificate; extract its public key with `openssl x509 -in CERT -pubkey -noout`"
                .to_owned(),
        ),
        other => Err(format!("has PEM label {other:?}; expected PUBLIC KEY")),
    }
}

fn load_spki_pem(text: &str) -> Result<(KeyKind, DecodingKey), String> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use rsa::pkcs8::DecodePublicKey;

    if let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(text) {
        return rsa_key(&key);
    }
    if let Ok(key) = p256::PublicKey::from_public_key_pem(text) {
        let point = key.to_encoded_point(false);
        return Ok((KeyKind::P256, DecodingKey::from_ec_der(point.as_bytes())));
    }
    if let Ok(key) = p384::PublicKey::from_public_key_pem(text) {
        let point = key.to_encoded_point(false);
        return Ok((KeyKind::P384, DecodingKey::from_ec_der(point.as_bytes())));
    }
    if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(text) {
        return Ok((KeyKind::Ed25519, DecodingKey::from_ed_der(key.as_bytes())));
    }
    Err("cannot be parsed as an RSA, EC P-256, EC P-384 or Ed25519 public key".to_owned())
}

fn rsa_key(key: &rsa::RsaPublicKey) -> Result<(KeyKind, DecodingKey), String> {
    use rsa::traits::PublicKeyParts;
    let bits = key.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
        ));
    }
    Ok((
        KeyKind::Rsa,
        DecodingKey::from_rsa_raw_components(&key.n().to_bytes_be(), &key.e().to_bytes_be()),
    ))
}

/// Parses a JWKS document. Every key must carry a unique `kid` and an `alg` from `allowed`; every problem is
/// returned as a sentence starting with `keys[i]`, so one run shows all of them.
pub(crate) fn load_jwks(text: &str, allowed: &[Algorithm]) -> Result<Vec<VerifyKey>, Vec<String>> {
    let root: serde_json::Value =
        serde_json::from_str(text).map_err(|error| vec![format!("is not valid JSON ({error})")])?;
    let Some(entries) = root.get("keys").and_then(|keys| keys.as_array()) else {
        return Err(vec![
            "must be a JSON object with a \"keys\" array".to_owned()
        ]);
    };
    if entries.is_empty() {
        return Err(vec!["has an empty \"keys\" array".to_owned()]);
    }
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    let mut seen_kids = HashSet::new();
    for (index, entry) in entries.iter().enumerate() {
        match load_jwk(entry, allowed) {
            Ok(key) => {
                let kid = key.kid.clone().unwrap_or_default();
                if seen_kids.insert(kid.clone()) {
                    keys.push(key);
                } else {
                    problems.push(format!(
                        "keys[{index}]: kid {kid:?} is used by an earlier key; kids must be unique"
                    ));
                }
            }
            Err(message) => problems.push(format!("keys[{index}]: {message}")),
        }
    }
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems)
    }
}

fn load_jwk(entry: &serde_json::Value, allowed: &[Algorithm]) -> Result<VerifyKey, String> {
    let Some(object) = entry.as_object() else {
        return Err("is not a JSON object".to_owned());
    };
    let text = |name: &str| object.get(name).and_then(|value| value.as_str());
    let kid = match text("kid") {
        Some(kid) if !kid.is_empty() => kid.to_owned(),
        _ => return Err("has no \"kid\"; tokens select JWKS keys by kid".to_owned()),
    };
    let alg_name = text("alg").ok_or_else(|| {
        format!("(kid {kid:?}) has no \"alg\"; every JWKS key must be pinned to one algorithm")
    })?;
    let alg = algorithm_from_name(alg_name)
        .ok_or_else(|| format!("(kid {kid:?}) has unknown alg {alg_name:?}"))?;
    if !allowed.contains(&alg) {
        return Err(format!(
            "(kid {kid:?}) has alg {alg_name} which is not in auth.algorithms"
        ));
    }
    if let Some(usage) = object.get("use") {
        if usage.as_str() != Some("sig") {
            return Err(format!(
                "(kid {kid:?}) has \"use\" {usage}; only \"sig\" keys verify tokens"
            ));
        }
    }
    if object.contains_key("d") {
        return Err(format!(
            "(kid {kid:?}) contains private key material (\"d\"); publish only public keys"
        ));
    }
    let member = |name: &str| -> Result<Vec<u8>, String> {
        let value = text(name).ok_or_else(|| format!("(kid {kid:?}) has no \"{name}\""))?;
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|error| format!("(kid {kid:?}) has a bad base64url \"{name}\" ({error})"))
    };
    let (kind, key) = match text("kty") {
        Some("RSA") => {
            let n = rsa::BigUint::from_bytes_be(&member("n")?);
            let e = rsa::BigUint::from_bytes_be(&member("e")?);
            let key = rsa::RsaPublicKey::new(n, e)
                .map_err(|error| format!("(kid {kid:?}) is not a valid RSA key ({error})"))?;
            rsa_key(&key).map_err(|message| format!("(kid {kid:?}) {message}"))?
        }
        Some("EC") => {
            let mut point = vec![0x04];
            point.extend(member("x")?);
            point.extend(member("y")?);
            let invalid = |_| format!("(kid {kid:?}) is not a valid point on its curve");
            match text("crv") {
                Some("P-256") => {
                    p256::PublicKey::from_sec1_bytes(&point).map_err(invalid)?;
                    (KeyKind::P256, DecodingKey::from_ec_der(&point))
                }
                Some("P-384") => {
                    p384::PublicKey::from_sec1_bytes(&point).map_err(invalid)?;
                    (KeyKind::P384, DecodingKey::from_ec_der(&point))
                }
                other => {
                    return Err(format!(
                        "(kid {kid:?}) has EC curve {other:?}; expected \"P-256\" or \"P-384\""
                    ))
                }
            }
        }
        Some("OKP") => {
            if text("crv") != Some("Ed25519") {
                return Err(format!("(kid {kid:?}) is an OKP key but not Ed25519"));
            }
            let x = member("x")?;
            let bytes: [u8; 32] = x
                .as_slice()
                .try_into()
                .map_err(|_| format!("(kid {kid:?}) has an Ed25519 \"x\" that is not 32 bytes"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| format!("(kid {kid:?}) is not a valid Ed25519 key"))?;
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&bytes))
        }
        Some("oct") => {
            return Err(format!(
                "(kid {kid:?}) is a symmetric key; HMAC secrets belong in auth.secret, not in a JWKS file"
            ))
        }
        other => return Err(format!("(kid {kid:?}) has unsupported kty {other:?}")),
    };
    if !kind.fits(alg) {
        return Err(format!(
            "(kid {kid:?}) is {} and cannot verify alg {alg_name}",
            kind.describe()
        ));
    }
    Ok(VerifyKey {
        kind,
        pinned: Some(alg),
        kid: Some(kid),
        key,
    })
}

//! The attack-vector table, the one source of truth for both places that must refuse these tokens: the auth
//! crate's own test (`auth/tests/vectors.rs`) builds a `Verifier` from each vector's `[auth]` table and checks the
//! exact reason, and the proxy's integration test (`proxy/tests/it/auth.rs`, which includes this file with
//! `#[path]`) starts the real proxy with the same table and sends the same `Authorization` value.
//!
//! Every vector is built by hand so it is exactly what its name says; the controls prove the table can't pass by
//! refusing everything. An `[auth]` table here is TOML text whose key paths start with `{keys}`, which
//! `resolve_table` replaces with the absolute path of `auth/tests/keys`, so the table works from any directory.
#![allow(dead_code, clippy::unwrap_used)]

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use scalelab_auth::{parse_config_toml, validate_with_env, AuthSettings};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// At least 32 bytes, as validation demands.
pub const SECRET: &str = "scalelab-test-secret-0123456789abcdef";
/// The token the seed's README sends, verbatim: header `{"alg":"HS256","typ":"JWT"}`, payload `{}`, and the
/// jwt.io placeholder signature that belongs to a different header.
pub const SEED_README_TOKEN: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo";

/// `auth/tests/keys`, absolute, whichever crate includes this file (both live one level below the workspace).
pub fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../auth/tests/keys")
        .canonicalize()
        .unwrap()
}

pub fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(keys_dir().join(name)).unwrap()
}

/// The `[auth]` table body (without the `[auth]` line) with `{keys}` replaced by the absolute keys directory.
pub fn resolve_table(table: &str) -> String {
    table.replace("{keys}", &keys_dir().display().to_string())
}

/// Builds settings from an `[auth]` table body as a config file would, with no environment.
pub fn settings(table: &str) -> AuthSettings {
    let config = parse_config_toml(&format!("[auth]\n{}", resolve_table(table)))
        .unwrap()
        .unwrap();
    validate_with_env(&config, &keys_dir(), &|_| None).unwrap()
}

pub fn hs256_table() -> String {
    format!(
        r#"algorithms = ["HS256"]
secret = "{SECRET}"
issuer = "scalelab"
audience = "scalelab-lab"
required_claims = ["exp"]
leeway = "5s""#
    )
}

pub fn rs256_table(public_key: &str) -> String {
    format!(
        r#"algorithms = ["RS256"]
public_keys = ["{{keys}}/{public_key}"]
issuer = "scalelab"
audience = "scalelab-lab"
leeway = "5s""#
    )
}

pub fn es256_table() -> String {
    r#"algorithms = ["ES256"]
public_keys = ["{keys}/es256-public.pem"]
issuer = "scalelab"
audience = "scalelab-lab"
leeway = "5s""#
        .to_owned()
}

pub fn eddsa_table() -> String {
    r#"algorithms = ["EdDSA"]
public_keys = ["{keys}/ed25519-public.pem"]
issuer = "scalelab"
audience = "scalelab-lab""#
        .to_owned()
}

pub fn jwks_table() -> String {
    r#"algorithms = ["RS256", "ES256"]
jwks_file = "{keys}/jwks.json"
issuer = "scalelab"
audience = "scalelab-lab""#
        .to_owned()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that pass every check of the verifiers above.
pub fn good_claims() -> Value {
    let now = now();
    json!({
        "sub": "user123",
        "iss": "scalelab",
        "aud": "scalelab-lab",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    })
}

pub fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

pub fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_json(value: &Value) -> String {
    b64(&serde_json::to_vec(value).unwrap())
}

/// Signs `header_b64.payload_b64` exactly as given, so malformed encodings still carry a real signature and
/// the signature can't be what rejects them.
pub fn sign_segments(
    header_b64: &str,
    payload_b64: &str,
    alg: Algorithm,
    key: &EncodingKey,
) -> String {
    let message = format!("{header_b64}.{payload_b64}");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

pub fn hmac_key() -> EncodingKey {
    EncodingKey::from_secret(SECRET.as_bytes())
}

pub fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_der(&key_file("rs256-private-pkcs1.der"))
}

pub fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_der(&key_file("es256-private-pkcs8.der"))
}

pub fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_der(&key_file("ed25519-private-pkcs8.der"))
}

pub fn token(header: Value, claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    sign_segments(&b64_json(&header), &b64_json(claims), alg, key)
}

pub fn hs256(claims: &Value) -> String {
    token(
        json!({"alg": "HS256", "typ": "JWT"}),
        claims,
        Algorithm::HS256,
        &hmac_key(),
    )
}

/// `alg: none` in a given spelling; `signature` is appended verbatim (empty for the classic form).
pub fn unsigned(alg_spelling: &str, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64_json(&json!({"alg": alg_spelling, "typ": "JWT"})),
        b64_json(&good_claims())
    )
}

pub fn flip_first_signature_bit(token: &str) -> String {
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 0x01;
    format!("{message}.{}", b64(&bytes))
}

/// A payload whose encoding needs padding, so the padded form differs from the canonical one.
pub fn padded_payload_token() -> String {
    let header = b64_json(&json!({"alg": "HS256", "typ": "JWT"}));
    let mut claims = good_claims();
    let mut filler = String::new();
    loop {
        claims["x"] = json!(filler);
        let json = serde_json::to_vec(&claims).unwrap();
        if !json.len().is_multiple_of(3) {
            let payload = URL_SAFE.encode(&json);
            assert!(payload.ends_with('='));
            return sign_segments(&header, &payload, Algorithm::HS256, &hmac_key());
        }
        filler.push('a');
    }
}

/// A payload encoded with the standard alphabet, chosen so the encoding really contains `+` or `/`.
pub fn standard_alphabet_token() -> String {
    let header = b64_json(&json!({"alg": "HS256", "typ": "JWT"}));
    let mut claims = good_claims();
    for filler in ["?>?>", "~~~~", "\u{ff}\u{fe}", "???", ">>>"] {
        claims["x"] = json!(filler);
        let payload = STANDARD_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        if payload.contains(['+', '/']) {
            return sign_segments(&header, &payload, Algorithm::HS256, &hmac_key());
        }
    }
    panic!("no filler produced + or / in the standard alphabet");
}

pub fn oversized_token(bytes: usize) -> String {
    let claims = with(good_claims(), "x", json!("a".repeat(bytes)));
    let token = hs256(&claims);
    assert!(token.len() > 8192);
    token
}

pub fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

/// One attack: the `[auth]` table it is sent against, the `Authorization` value (`None`: no header at all) and the
/// reason it must be refused with.
pub struct Vector {
    pub name: &'static str,
    pub auth_table: String,
    pub authorization: Option<Vec<u8>>,
    pub reason: &'static str,
}

fn vector(
    name: &'static str,
    auth_table: String,
    authorization: Option<Vec<u8>>,
    reason: &'static str,
) -> Vector {
    Vector {
        name,
        auth_table,
        authorization,
        reason,
    }
}

pub fn vectors() -> Vec<Vector> {
    let hs = hs256_table;
    let hmac_sig = |message: &str| {
        jsonwebtoken::crypto::sign(message.as_bytes(), &hmac_key(), Algorithm::HS256).unwrap()
    };
    let none_message = |spelling: &str| unsigned(spelling, "").trim_end_matches('.').to_owned();
    let good = hs256(&good_claims());
    let (good_message, _) = good.rsplit_once('.').unwrap();
    let rs_public_pem = key_file("rs256-public.pem");
    let key_confusion = token(
        json!({"alg": "HS256", "typ": "JWT"}),
        &good_claims(),
        Algorithm::HS256,
        &EncodingKey::from_secret(&rs_public_pem),
    );
    let rs_good = token(
        json!({"alg": "RS256", "typ": "JWT"}),
        &good_claims(),
        Algorithm::RS256,
        &rsa_key(),
    );
    let rs_kid = |kid: &str| {
        token(
            json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
            &good_claims(),
            Algorithm::RS256,
            &rsa_key(),
        )
    };
    let hs_header = |header: Value| token(header, &good_claims(), Algorithm::HS256, &hmac_key());
    let x_public_jwk = json!({"kty": "oct", "k": b64(b"attacker-chosen-secret-0123456789abcdef")});

    vec![
        vector("missing header", hs(), None, "missing"),
        vector("empty header", hs(), Some(b"".to_vec()), "missing"),
        vector(
            "Basic scheme",
            hs(),
            Some(b"Basic dXNlcjpwYXNzd29yZA==".to_vec()),
            "bad_scheme",
        ),
        vector(
            "Basic scheme with a valid JWT",
            hs(),
            Some(format!("Basic {good}").into_bytes()),
            "bad_scheme",
        ),
        vector("empty bearer", hs(), Some(b"Bearer ".to_vec()), "malformed"),
        vector(
            "bearer without a token",
            hs(),
            Some(b"Bearer".to_vec()),
            "malformed",
        ),
        vector(
            "alg none, no signature",
            hs(),
            Some(bearer(&unsigned("none", ""))),
            "alg_not_allowed",
        ),
        vector(
            "alg None, no signature",
            hs(),
            Some(bearer(&unsigned("None", ""))),
            "alg_not_allowed",
        ),
        vector(
            "alg NONE, no signature",
            hs(),
            Some(bearer(&unsigned("NONE", ""))),
            "alg_not_allowed",
        ),
        vector(
            "alg none with an HMAC signature",
            hs(),
            Some(bearer(&format!(
                "{}.{}",
                none_message("none"),
                hmac_sig(&none_message("none"))
            ))),
            "alg_not_allowed",
        ),
        vector(
            "alg None with an HMAC signature",
            hs(),
            Some(bearer(&format!(
                "{}.{}",
                none_message("None"),
                hmac_sig(&none_message("None"))
            ))),
            "alg_not_allowed",
        ),
        vector(
            "alg NONE with an HMAC signature",
            hs(),
            Some(bearer(&format!(
                "{}.{}",
                none_message("NONE"),
                hmac_sig(&none_message("NONE"))
            ))),
            "alg_not_allowed",
        ),
        vector(
            "alg hs256 (wrong case)",
            hs(),
            Some(bearer(&hs_header(json!({"alg": "hs256"})))),
            "alg_not_allowed",
        ),
        vector(
            "HS256 signed with the RS256 public key PEM, RS256 config",
            rs256_table("rs256-public.pem"),
            Some(bearer(&key_confusion)),
            "alg_not_allowed",
        ),
        vector(
            "stripped signature",
            hs(),
            Some(bearer(&format!("{good_message}."))),
            "bad_signature",
        ),
        vector(
            "one flipped signature bit",
            hs(),
            Some(bearer(&flip_first_signature_bit(&good))),
            "bad_signature",
        ),
        vector(
            "one flipped RS256 signature bit",
            rs256_table("rs256-public.pem"),
            Some(bearer(&flip_first_signature_bit(&rs_good))),
            "bad_signature",
        ),
        vector(
            "RS256 signed by a key that is not configured",
            rs256_table("rs256-other-public.pem"),
            Some(bearer(&rs_good)),
            "bad_signature",
        ),
        vector(
            "expired beyond the 5 s leeway",
            hs(),
            Some(bearer(&hs256(&with(
                good_claims(),
                "exp",
                json!(now() - 10),
            )))),
            "expired",
        ),
        vector(
            "nbf an hour in the future",
            hs(),
            Some(bearer(&hs256(&with(
                good_claims(),
                "nbf",
                json!(now() + 3600),
            )))),
            "not_yet_valid",
        ),
        vector(
            "iat an hour in the future",
            hs(),
            Some(bearer(&hs256(&with(
                good_claims(),
                "iat",
                json!(now() + 3600),
            )))),
            "not_yet_valid",
        ),
        vector(
            "missing exp",
            hs(),
            Some(bearer(&hs256(&without(good_claims(), "exp")))),
            "missing_claim",
        ),
        vector(
            "exp as a string",
            hs(),
            Some(bearer(&hs256(&with(
                good_claims(),
                "exp",
                json!((now() + 300).to_string()),
            )))),
            "invalid_claims",
        ),
        vector(
            "nbf as a string",
            hs(),
            Some(bearer(&hs256(&with(
                good_claims(),
                "nbf",
                json!(now().to_string()),
            )))),
            "invalid_claims",
        ),
        vector(
            "iss as a number",
            hs(),
            Some(bearer(&hs256(&with(good_claims(), "iss", json!(1))))),
            "invalid_claims",
        ),
        vector(
            "aud as a number",
            hs(),
            Some(bearer(&hs256(&with(good_claims(), "aud", json!(1))))),
            "invalid_claims",
        ),
        vector(
            "missing iss",
            hs(),
            Some(bearer(&hs256(&without(good_claims(), "iss")))),
            "missing_claim",
        ),
        vector(
            "missing aud",
            hs(),
            Some(bearer(&hs256(&without(good_claims(), "aud")))),
            "missing_claim",
        ),
        vector(
            "wrong iss",
            hs(),
            Some(bearer(&hs256(&with(good_claims(), "iss", json!("evil"))))),
            "bad_issuer",
        ),
        vector(
            "wrong aud",
            hs(),
            Some(bearer(&hs256(&with(good_claims(), "aud", json!("other"))))),
            "bad_audience",
        ),
        vector(
            "aud array without ours",
            hs(),
            Some(bearer(&hs256(&with(
                good_claims(),
                "aud",
                json!(["other", "another"]),
            )))),
            "bad_audience",
        ),
        vector(
            "padded base64",
            hs(),
            Some(bearer(&padded_payload_token())),
            "malformed",
        ),
        vector(
            "standard-alphabet base64",
            hs(),
            Some(bearer(&standard_alphabet_token())),
            "malformed",
        ),
        vector(
            "whitespace inside a segment",
            hs(),
            Some(bearer(&good.replacen('.', ". ", 1))),
            "malformed",
        ),
        vector(
            "non-ASCII in a segment",
            hs(),
            Some(bearer(&format!("{good}\u{e9}"))),
            "malformed",
        ),
        vector(
            "two segments",
            hs(),
            Some(bearer(good_message)),
            "malformed",
        ),
        vector(
            "four segments",
            hs(),
            Some(bearer(&format!("{good}.{}", b64(b"extra")))),
            "malformed",
        ),
        vector(
            "duplicate alg in the header",
            hs(),
            Some(bearer(&sign_segments(
                &b64(br#"{"alg":"HS256","alg":"none"}"#),
                &b64_json(&good_claims()),
                Algorithm::HS256,
                &hmac_key(),
            ))),
            "malformed",
        ),
        vector(
            "payload not an object",
            hs(),
            Some(bearer(&sign_segments(
                &b64_json(&json!({"alg": "HS256"})),
                &b64(b"[1,2]"),
                Algorithm::HS256,
                &hmac_key(),
            ))),
            "malformed",
        ),
        vector(
            "unknown crit",
            hs(),
            Some(bearer(&hs_header(
                json!({"alg": "HS256", "crit": ["x-unknown"], "x-unknown": 1}),
            ))),
            "crit_unsupported",
        ),
        vector(
            "crit naming a registered parameter",
            hs(),
            Some(bearer(&hs_header(json!({"alg": "HS256", "crit": ["exp"]})))),
            "crit_unsupported",
        ),
        vector(
            "unknown kid (JWKS)",
            jwks_table(),
            Some(bearer(&rs_kid("nope"))),
            "unknown_kid",
        ),
        vector(
            "path-like kid (JWKS)",
            jwks_table(),
            Some(bearer(&rs_kid("../../dev/null"))),
            "unknown_kid",
        ),
        vector(
            "SQL-ish kid (JWKS)",
            jwks_table(),
            Some(bearer(&rs_kid("x' OR '1'='1"))),
            "unknown_kid",
        ),
        vector(
            "kid of the ES256 key on an RS256 token (key pinned to its alg)",
            jwks_table(),
            Some(bearer(&rs_kid("es-1"))),
            "alg_not_allowed",
        ),
        vector(
            "embedded jwk",
            hs(),
            Some(bearer(&token(
                json!({"alg": "HS256", "jwk": x_public_jwk}),
                &good_claims(),
                Algorithm::HS256,
                &EncodingKey::from_secret(b"attacker-chosen-secret-0123456789abcdef"),
            ))),
            "embedded_key",
        ),
        vector(
            "embedded x5c",
            hs(),
            Some(bearer(&hs_header(json!({"alg": "HS256", "x5c": ["MIIB"]})))),
            "embedded_key",
        ),
        vector(
            "jku pointing at an attacker's key set, signed by the attacker",
            rs256_table("rs256-other-public.pem"),
            Some(bearer(&token(
                json!({"alg": "RS256", "jku": "https://attacker.example/jwks.json", "kid": "a"}),
                &good_claims(),
                Algorithm::RS256,
                &rsa_key(),
            ))),
            "bad_signature",
        ),
        vector(
            "x5u pointing at an attacker's certificate, signed by the attacker",
            rs256_table("rs256-other-public.pem"),
            Some(bearer(&token(
                json!({"alg": "RS256", "x5u": "https://attacker.example/cert.pem"}),
                &good_claims(),
                Algorithm::RS256,
                &rsa_key(),
            ))),
            "bad_signature",
        ),
        vector(
            "9 KiB token",
            hs(),
            Some(bearer(&oversized_token(9 * 1024))),
            "too_large",
        ),
        vector(
            "1 MiB token",
            hs(),
            Some(bearer(&oversized_token(1024 * 1024))),
            "too_large",
        ),
        vector(
            "the seed's README token, bare",
            hs(),
            Some(SEED_README_TOKEN.as_bytes().to_vec()),
            "bad_signature",
        ),
        vector(
            "the seed's README token, Bearer",
            hs(),
            Some(bearer(SEED_README_TOKEN)),
            "bad_signature",
        ),
    ]
}

/// A token that must be accepted, with the `[auth]` table it is sent against; its `sub` is `user123`.
pub struct Control {
    pub name: &'static str,
    pub auth_table: String,
    pub token: String,
}

pub fn controls() -> Vec<Control> {
    let control = |name, auth_table, token| Control {
        name,
        auth_table,
        token,
    };
    vec![
        control(
            "RS256 against its public key",
            rs256_table("rs256-public.pem"),
            token(
                json!({"alg": "RS256", "typ": "JWT"}),
                &good_claims(),
                Algorithm::RS256,
                &rsa_key(),
            ),
        ),
        control(
            "ES256 against its public key",
            es256_table(),
            token(
                json!({"alg": "ES256", "typ": "JWT"}),
                &good_claims(),
                Algorithm::ES256,
                &ec_key(),
            ),
        ),
        control(
            "EdDSA against its public key",
            eddsa_table(),
            token(
                json!({"alg": "EdDSA", "typ": "JWT"}),
                &good_claims(),
                Algorithm::EdDSA,
                &ed_key(),
            ),
        ),
        control(
            "RS256 by kid from the JWKS",
            jwks_table(),
            token(
                json!({"alg": "RS256", "kid": "rs-1"}),
                &good_claims(),
                Algorithm::RS256,
                &rsa_key(),
            ),
        ),
        control(
            "ES256 by kid from the JWKS",
            jwks_table(),
            token(
                json!({"alg": "ES256", "kid": "es-1"}),
                &good_claims(),
                Algorithm::ES256,
                &ec_key(),
            ),
        ),
        control(
            "expired but within the leeway",
            hs256_table(),
            hs256(&with(good_claims(), "exp", json!(now() - 2))),
        ),
        control(
            "aud array containing ours",
            hs256_table(),
            hs256(&with(
                good_claims(),
                "aud",
                json!(["other", "scalelab-lab"]),
            )),
        ),
        control(
            "a path-like kid is ignored without a JWKS (it is never a file name)",
            hs256_table(),
            token(
                json!({"alg": "HS256", "kid": "../../dev/null"}),
                &good_claims(),
                Algorithm::HS256,
                &hmac_key(),
            ),
        ),
    ]
}

//! Table tests of token extraction and verification.

use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
use serde_json::json;

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn settings() -> JwtSettings {
    JwtSettings {
        secret: SECRET.to_vec(),
        issuer: Some("scalelab".to_owned()),
        audience: Some("lab".to_owned()),
        algorithms: vec![Algorithm::HS256],
        leeway_secs: 5,
    }
}

fn sign(header: Header, claims: &Value, secret: &[u8]) -> String {
    encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn good_claims() -> Value {
    json!({"sub": "alice", "iss": "scalelab", "aud": "lab", "exp": get_current_timestamp() + 600})
}

fn with(field: &str, value: Value) -> Value {
    let mut claims = good_claims();
    claims[field] = value;
    claims
}

fn without(field: &str) -> Value {
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove(field);
    claims
}

#[test]
fn extract_token_table() {
    let cases = [
        ("Bearer abc.def.ghi", Ok("abc.def.ghi")),
        ("bearer abc.def.ghi", Ok("abc.def.ghi")),
        ("BEARER   abc.def.ghi  ", Ok("abc.def.ghi")),
        ("abc.def.ghi", Ok("abc.def.ghi")),
        ("Basic dXNlcjpwYXNz", Err(Reason::UnsupportedScheme)),
        ("Bearer", Err(Reason::Malformed)),
        ("Bearer   ", Err(Reason::Malformed)),
        ("", Err(Reason::Malformed)),
    ];
    for (header, expected) in cases {
        assert_eq!(extract_token(header), expected, "{header:?}");
    }
    let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
    assert_eq!(extract_token(&huge), Err(Reason::Malformed));
}

#[test]
fn verify_table() {
    let verifier = Verifier::new(&settings()).unwrap();
    let now = get_current_timestamp();
    let hs256 = Header::new(Algorithm::HS256);
    let good = sign(hs256.clone(), &good_claims(), SECRET);
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let unsigned = format!("{}.", good.rsplit_once('.').unwrap().0);
    // alg "none" with an empty signature, hand-built since the library refuses to sign it.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTl9.";
    let cases: Vec<(&str, Option<String>, Result<(), Reason>)> = vec![
        ("valid bearer", Some(format!("Bearer {good}")), Ok(())),
        ("valid raw token (seed form)", Some(good.clone()), Ok(())),
        ("missing header", None, Err(Reason::Missing)),
        ("basic scheme", Some("Basic Zm9vOmJhcg==".to_owned()), Err(Reason::UnsupportedScheme)),
        ("wrong secret", Some(sign(hs256.clone(), &good_claims(), b"another-secret-another-secret-xx")), Err(Reason::BadSignature)),
        ("flipped signature", Some(flipped), Err(Reason::BadSignature)),
        ("signature removed", Some(unsigned), Err(Reason::BadSignature)),
        ("alg none", Some(none.to_owned()), Err(Reason::Invalid)),
        ("HS512 not allowed", Some(sign(Header::new(Algorithm::HS512), &good_claims(), SECRET)), Err(Reason::AlgorithmNotAllowed)),
        ("expired beyond leeway", Some(sign(hs256.clone(), &with("exp", json!(now - 10)), SECRET)), Err(Reason::Expired)),
        ("exp missing", Some(sign(hs256.clone(), &without("exp"), SECRET)), Err(Reason::MissingClaim)),
        ("exp as a string", Some(sign(hs256.clone(), &with("exp", json!("soon")), SECRET)), Err(Reason::Invalid)),
        ("nbf in the future", Some(sign(hs256.clone(), &with("nbf", json!(now + 3600)), SECRET)), Err(Reason::NotYetValid)),
        ("wrong issuer", Some(sign(hs256.clone(), &with("iss", json!("evil")), SECRET)), Err(Reason::WrongIssuer)),
        ("issuer missing", Some(sign(hs256.clone(), &without("iss"), SECRET)), Err(Reason::MissingClaim)),
        ("wrong audience", Some(sign(hs256.clone(), &with("aud", json!(["other"])), SECRET)), Err(Reason::WrongAudience)),
        ("audience array with ours", Some(sign(hs256.clone(), &with("aud", json!(["other", "lab"])), SECRET)), Ok(())),
        ("two segments", Some("abc.def".to_owned()), Err(Reason::Invalid)),
        ("garbage", Some("not-a-token".to_owned()), Err(Reason::Invalid)),
        // The seed README's token: a jwt.io placeholder signature that matches no key.
        ("seed README token", Some("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo".to_owned()), Err(Reason::BadSignature)),
    ];
    for (description, header, expected) in cases {
        let outcome = verifier.verify_header(header.as_deref()).map(|_| ());
        assert_eq!(outcome, expected, "{description}");
    }
}

#[test]
fn claims_are_returned() {
    let verifier = Verifier::new(&settings()).unwrap();
    let token = sign(Header::new(Algorithm::HS256), &good_claims(), SECRET);
    let claims = verifier.verify_token(&token).unwrap();
    assert_eq!(claims.sub.as_deref(), Some("alice"));
    assert_eq!(claims.other["iss"], "scalelab");
}

#[test]
fn without_issuer_and_audience_only_exp_is_required() {
    let verifier = Verifier::new(&JwtSettings {
        issuer: None,
        audience: None,
        ..settings()
    })
    .unwrap();
    let token = sign(
        Header::new(Algorithm::HS256),
        &json!({"exp": get_current_timestamp() + 60, "aud": "anything"}),
        SECRET,
    );
    assert!(verifier.verify_token(&token).is_ok());
}

#[test]
fn configuration_is_checked() {
    let short = JwtSettings {
        secret: b"secret".to_vec(),
        ..settings()
    };
    assert_eq!(
        Verifier::new(&short).err(),
        Some(JwtConfigError::SecretTooShort(6))
    );
    let rsa = JwtSettings {
        algorithms: vec![Algorithm::RS256],
        ..settings()
    };
    assert!(matches!(
        Verifier::new(&rsa),
        Err(JwtConfigError::Algorithms(_))
    ));
    assert_eq!(
        parse_algorithms("hs256, HS512"),
        Ok(vec![Algorithm::HS256, Algorithm::HS512])
    );
    assert!(parse_algorithms("RS256").is_err());
    assert!(parse_algorithms("").is_err());
}

#[test]
fn challenges_follow_rfc_6750() {
    assert_eq!(Reason::Missing.challenge(), r#"Bearer realm="scalelab""#);
    assert_eq!(
        Reason::Expired.challenge(),
        r#"Bearer realm="scalelab", error="invalid_token", error_description="expired""#
    );
}

//! The attack-vector table (`support/vectors.rs`, shared with the proxy's integration test): each vector's
//! `[auth]` table becomes a `Verifier`, and each vector must be refused with its exact reason; the controls prove
//! the table can't pass by refusing everything.
#![allow(clippy::unwrap_used)]

#[path = "support/vectors.rs"]
mod vectors;

use jsonwebtoken::{Algorithm, EncodingKey};
use scalelab_auth::{mint, outcome_label, Rejection, Verifier};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use vectors::*;

fn verifier(auth_table: &str) -> Verifier {
    Verifier::new(settings(auth_table))
}

#[test]
fn every_attack_vector_is_rejected_with_its_reason() {
    let mut failures = Vec::new();
    let vectors = vectors();
    let mut verifiers: HashMap<&str, Verifier> = HashMap::new();
    for vector in &vectors {
        let verifier = verifiers
            .entry(vector.auth_table.as_str())
            .or_insert_with(|| verifier(&vector.auth_table));
        let result = verifier.verify_header(vector.authorization.as_deref());
        let label = outcome_label(&result);
        if label != vector.reason {
            failures.push(format!(
                "{}: expected {}, got {label} ({result:?})",
                vector.name, vector.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn minted_hs256_token_passes_with_bearer_lowercase_bearer_and_bare() {
    let verifier = verifier(&hs256_table());
    let token = mint(verifier.settings(), "user123", Duration::from_secs(60)).unwrap();
    for authorization in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer   {token}  "),
        token.clone(),
    ] {
        let claims = verifier
            .verify_header(Some(authorization.as_bytes()))
            .unwrap_or_else(|rejection| panic!("{authorization:?} was rejected: {rejection:?}"));
        assert_eq!(claims.sub.as_deref(), Some("user123"));
        assert_eq!(claims.raw["iss"], "scalelab");
        assert_eq!(claims.raw["aud"], "scalelab-lab");
    }
    assert_eq!(
        verifier.verify_token(&token).map(|c| c.sub),
        Ok(Some("user123".to_owned()))
    );
}

#[test]
fn controls_pass() {
    for control in controls() {
        let result = verifier(&control.auth_table).verify_header(Some(&bearer(&control.token)));
        assert_eq!(
            outcome_label(&result),
            "accepted",
            "{}: {result:?}",
            control.name
        );
        assert_eq!(
            result.unwrap().sub.as_deref(),
            Some("user123"),
            "{}",
            control.name
        );
    }
}

/// With both families configured, an HS256 token keyed with the RSA public key PEM reaches signature checking,
/// where only the configured secret is tried for HMAC, so the confusion still fails.
#[test]
fn key_confusion_fails_even_when_hs256_is_also_configured() {
    let verifier = verifier(&format!(
        r#"algorithms = ["RS256", "HS256"]
secret = "{SECRET}"
public_keys = ["{{keys}}/rs256-public.pem"]
required_claims = []"#
    ));
    let claims = json!({"sub": "x"});
    let forged = token(
        json!({"alg": "HS256"}),
        &claims,
        Algorithm::HS256,
        &EncodingKey::from_secret(&key_file("rs256-public.pem")),
    );
    assert_eq!(verifier.verify_token(&forged), Err(Rejection::BadSignature));
    let genuine = token(
        json!({"alg": "HS256"}),
        &claims,
        Algorithm::HS256,
        &hmac_key(),
    );
    assert!(verifier.verify_token(&genuine).is_ok());
}

/// Pins what `jsonwebtoken` 11 itself does with a string `exp`, which is why the verifier checks claim types
/// on its own: the library calls it "missing" when `exp` is required, and an upgrade that changes this should be
/// noticed here.
#[test]
fn jsonwebtoken_reports_a_string_exp_as_missing() {
    let forged = hs256(&json!({"exp": (now() + 300).to_string()}));
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    let error = jsonwebtoken::decode::<Value>(
        &forged,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap_err();
    assert!(
        matches!(error.kind(), jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) if claim == "exp"),
        "{error:?}"
    );
    // Without `exp` required, it is reported as a format error instead.
    validation.required_spec_claims.clear();
    let error = jsonwebtoken::decode::<Value>(
        &forged,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap_err();
    assert!(
        matches!(error.kind(), jsonwebtoken::errors::ErrorKind::InvalidClaimFormat(claim) if claim == "exp"),
        "{error:?}"
    );
}

#[test]
fn missing_and_invalid_render_differently() {
    let verifier = verifier(&hs256_table());
    let missing = verifier.verify_header(None).unwrap_err();
    assert!(missing.is_missing());
    assert_eq!(missing.www_authenticate(), r#"Bearer realm="scalelab""#);
    assert_eq!(
        missing.json_body(),
        json!({"error": "missing token", "reason": "missing"})
    );

    let expired = verifier
        .verify_token(&hs256(&with(good_claims(), "exp", json!(now() - 60))))
        .unwrap_err();
    assert!(!expired.is_missing());
    assert_eq!(
        expired.www_authenticate(),
        r#"Bearer realm="scalelab", error="invalid_token", error_description="the token has expired""#
    );
    assert_eq!(
        expired.json_body(),
        json!({"error": "invalid token", "reason": "expired"})
    );
}

#[test]
fn every_reason_is_listed_once() {
    let vectors = vectors();
    for vector in &vectors {
        assert!(
            Rejection::ALL_REASONS.contains(&vector.reason),
            "{}",
            vector.reason
        );
    }
    let mut sorted = Rejection::ALL_REASONS.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), Rejection::ALL_REASONS.len());
}

#[test]
fn error_descriptions_stay_within_rfc6750_characters() {
    let rejection = Rejection::MissingClaim("a\"b\\c".to_owned());
    let header = rejection.www_authenticate();
    let description = header
        .split("error_description=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    assert!(!description.contains(['"', '\\']), "{header}");
}

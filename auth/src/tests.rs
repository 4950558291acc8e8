//! Unit tests for configuration parsing and validation; the attack-vector table lives in `tests/vectors.rs`.
#![allow(clippy::unwrap_used)]

use crate::{parse_config_toml, validate_with_env, AuthFileConfig, SecretSource};
use scalelab_common::problem::Problem;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn parse(auth_table: &str) -> AuthFileConfig {
    parse_config_toml(&format!("[auth]\n{auth_table}"))
        .unwrap()
        .unwrap()
}

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn issues(auth_table: &str) -> Vec<Problem> {
    validate_with_env(&parse(auth_table), &keys_dir(), &no_env).unwrap_err()
}

fn issue_paths(auth_table: &str) -> BTreeSet<String> {
    issues(auth_table)
        .into_iter()
        .map(|issue| issue.path)
        .collect()
}

#[test]
fn the_issue_example_parses_and_validates() {
    let config = parse(
        r#"
algorithms = ["HS256"]
secret = { env = "SCALELAB_JWT_SECRET" }
issuer = "scalelab"
audience = "scalelab-lab"
required_claims = ["exp"]
leeway = "5s"
"#,
    );
    assert_eq!(
        config.secret,
        Some(SecretSource::Env("SCALELAB_JWT_SECRET".to_owned()))
    );
    assert_eq!(config.max_token_bytes, 8192);
    let env = |name: &str| (name == "SCALELAB_JWT_SECRET").then(|| OsString::from(SECRET));
    let settings = validate_with_env(&config, Path::new("/nonexistent"), &env).unwrap();
    assert_eq!(settings.leeway(), Duration::from_secs(5));
    assert_eq!(settings.issuer(), Some("scalelab"));
    // A configured issuer and audience become required claims, or a token could skip them by omission.
    assert_eq!(settings.required_claims(), ["exp", "iss", "aud"]);
    assert!(settings.can_mint());
}

#[test]
fn other_tables_are_ignored_and_a_missing_auth_table_is_none() {
    let text = "[[routes]]\nname = \"data\"\npath = \"/data\"\n";
    assert_eq!(parse_config_toml(text).unwrap(), None);
}

#[test]
fn unknown_fields_are_refused() {
    let error = parse_config_toml("[auth]\nalgorithm = [\"HS256\"]\n").unwrap_err();
    assert!(error.message.contains("algorithm"), "{error}");
}

#[test]
fn secret_tables_must_name_exactly_one_known_source() {
    for table in [
        r#"secret = { env = "A", file = "b" }"#,
        r#"secret = { enc = "A" }"#,
        r#"secret = {}"#,
        r#"secret = 42"#,
    ] {
        let error = parse_config_toml(&format!("[auth]\n{table}\n"));
        assert!(error.is_err(), "{table} was accepted");
    }
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let paths = issue_paths(
        r#"
algorithms = ["HS256", "none", "rs256", "RS256"]
secret = "short"
public_keys = ["does-not-exist.pem", "es256-private.pem"]
issuer = ""
required_claims = ["exp", "bad claim"]
leeway = "5 parsecs"
max_token_bytes = 10
"#,
    );
    let expected: BTreeSet<String> = [
        "auth.algorithms[1]",
        "auth.algorithms[2]",
        "auth.secret",
        "auth.public_keys[0]",
        "auth.public_keys[1]",
        "auth.issuer",
        "auth.required_claims[1]",
        "auth.leeway",
        "auth.max_token_bytes",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(paths, expected);
}

#[test]
fn messages_explain_the_problem() {
    let found = issues(
        r#"
algorithms = ["None", "HS256"]
secret = "short"
"#,
    );
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("auth.algorithms[0]: unsigned tokens")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("at least 32 bytes")),
        "{text:?}"
    );
}

#[test]
fn hmac_needs_a_secret_and_asymmetric_algorithms_need_keys() {
    assert_eq!(
        issue_paths(r#"algorithms = ["HS256", "RS256", "ES256"]"#),
        ["auth.secret", "auth.algorithms[1]", "auth.algorithms[2]"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}

#[test]
fn a_key_must_fit_a_configured_algorithm() {
    // An EC key can't verify RS256, so RS256 has no key and the EC key has no algorithm.
    let found = issue_paths(
        r#"
algorithms = ["RS256"]
public_keys = ["es256-public.pem"]
"#,
    );
    assert!(found.contains("auth.public_keys[0]"), "{found:?}");
}

#[test]
fn secret_sources_are_checked() {
    assert_eq!(
        issue_paths(
            r#"
algorithms = ["HS256"]
secret = { env = "UNSET_VARIABLE" }
"#
        ),
        BTreeSet::from(["auth.secret.env".to_owned()])
    );
    assert_eq!(
        issue_paths(
            r#"
algorithms = ["HS256"]
secret = { file = "no-such-secret" }
"#
        ),
        BTreeSet::from(["auth.secret.file".to_owned()])
    );
    assert_eq!(
        issue_paths(&format!(
            r#"
algorithms = ["RS256"]
public_keys = ["rs256-public.pem"]
secret = "{SECRET}"
"#
        )),
        BTreeSet::from(["auth.secret".to_owned()])
    );
}

#[test]
fn secret_files_resolve_against_the_base_dir_and_lose_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
    let config = parse(
        r#"
algorithms = ["HS256"]
secret = { file = "secret" }
"#,
    );
    let settings = validate_with_env(&config, dir.path(), &no_env).unwrap();
    assert_eq!(settings.hmac_secret.as_deref(), Some(SECRET.as_bytes()));

    // Without the newline trim this 31-byte secret plus "\n" would pass the length check.
    std::fs::write(dir.path().join("secret"), format!("{}\n", &SECRET[1..])).unwrap();
    assert!(validate_with_env(&config, dir.path(), &no_env).is_err());
}

#[test]
fn pem_problems_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("garbage.pem"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("plain.txt"), "not a key").unwrap();
    std::fs::copy(
        keys_dir().join("rs256-private.pem"),
        dir.path().join("private.pem"),
    )
    .unwrap();
    let config = parse(
        r#"
algorithms = ["RS256"]
public_keys = ["garbage.pem", "plain.txt", "private.pem"]
"#,
    );
    let found = validate_with_env(&config, dir.path(), &no_env).unwrap_err();
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 3, "{text:?}");
    assert!(text[0].contains("cannot be parsed"), "{text:?}");
    assert!(text[1].contains("not a PEM file"), "{text:?}");
    assert!(text[2].contains("is a private key"), "{text:?}");
}

#[test]
fn jwks_keys_must_be_pinned_to_a_configured_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let real: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(keys_dir().join("jwks.json")).unwrap())
            .unwrap();
    let rsa = real["keys"][0].clone();
    let mut no_alg = rsa.clone();
    no_alg.as_object_mut().unwrap().remove("alg");
    no_alg["kid"] = "no-alg".into();
    let mut wrong_alg = rsa.clone();
    wrong_alg["alg"] = "RS512".into();
    wrong_alg["kid"] = "wrong-alg".into();
    let mut family_mismatch = real["keys"][1].clone();
    family_mismatch["alg"] = "RS256".into();
    family_mismatch["kid"] = "ec-as-rs".into();
    let oct = serde_json::json!({"kty": "oct", "kid": "h", "alg": "RS256", "k": "c2VjcmV0"});
    let duplicate = rsa.clone();
    let jwks =
        serde_json::json!({"keys": [rsa, no_alg, wrong_alg, family_mismatch, oct, duplicate]});
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    let config = parse(
        r#"
algorithms = ["RS256"]
jwks_file = "jwks.json"
"#,
    );
    let found = validate_with_env(&config, dir.path(), &no_env).unwrap_err();
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        found.iter().all(|issue| issue.path == "auth.jwks_file"),
        "{text:?}"
    );
    for needle in [
        "keys[1]: (kid \"no-alg\") has no \"alg\"",
        "keys[2]: (kid \"wrong-alg\") has alg RS512 which is not in auth.algorithms",
        "keys[3]: (kid \"ec-as-rs\") is an EC P-256 key (ES256) and cannot verify alg RS256",
        "keys[4]: (kid \"h\") is a symmetric key",
        "keys[5]: kid \"rs-1\" is used by an earlier key",
    ] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "missing {needle:?} in {text:?}"
        );
    }
    assert_eq!(found.len(), 5, "{text:?}");
}

#[test]
fn leeway_must_be_whole_seconds_and_small() {
    for (leeway, ok) in [
        ("0s", true),
        ("5s", true),
        ("5m", true),
        ("1500ms", false),
        ("1h", false),
        ("", false),
    ] {
        let result = validate_with_env(
            &parse(&format!(
                "algorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\nleeway = \"{leeway}\"\n"
            )),
            &keys_dir(),
            &no_env,
        );
        assert_eq!(result.is_ok(), ok, "leeway {leeway:?}: {result:?}");
    }
}

#[test]
fn debug_output_never_shows_the_secret() {
    let config = parse(&format!(
        "algorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\n"
    ));
    assert!(!format!("{config:?}").contains(SECRET));
    let settings = validate_with_env(&config, &keys_dir(), &no_env).unwrap();
    assert!(!format!("{settings:?}").contains(SECRET));
}

#[test]
fn load_from_config_file_resolves_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        keys_dir().join("rs256-public.pem"),
        dir.path().join("rs.pem"),
    )
    .unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[proxy]\nlisten = \"127.0.0.1:8080\"\n\n[auth]\nalgorithms = [\"RS256\"]\npublic_keys = [\"rs.pem\"]\n",
    )
    .unwrap();
    let settings = crate::load_from_config_file(&path).unwrap().unwrap();
    assert_eq!(settings.algorithms(), [crate::Algorithm::RS256]);
    assert!(!settings.can_mint());
}

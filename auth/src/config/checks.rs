//! The checks that need no files: the algorithm list, whether keys and algorithms fit each other, the required
//! claims, the issuer and audience, the leeway and the token size limit. Each records its problems and returns a
//! usable fallback, so one run reports every problem.

use super::file::AuthFileConfig;
use crate::keys::{self, KeyKind, VerifyKey, ALGORITHM_NAMES};
use jsonwebtoken::Algorithm;
use scalelab_common::problem::Problems;
use std::time::Duration;

/// A leeway beyond five minutes is almost certainly a unit mistake, and it would make `exp` meaningless.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
const MAX_TOKEN_BYTES_RANGE: (usize, usize) = (512, 65536);

/// The configured algorithms in order; `none`, unknown names and duplicates are problems.
pub(super) fn check_algorithms(config: &AuthFileConfig, problems: &mut Problems) -> Vec<Algorithm> {
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

/// Keys and algorithms must match both ways: keys are useless with only HMAC algorithms, and every public-key
/// algorithm needs a key that verifies it.
pub(super) fn check_keys_fit_algorithms(
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
pub(super) fn check_required_claims(
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

pub(super) fn check_max_token_bytes(max_token_bytes: usize, problems: &mut Problems) {
    let (low, high) = MAX_TOKEN_BYTES_RANGE;
    if !(low..=high).contains(&max_token_bytes) {
        problems.push(
            "auth.max_token_bytes",
            format!("{max_token_bytes} is out of range {low}..={high}"),
        );
    }
}

/// The leeway in whole seconds, at most `MAX_LEEWAY`; zero when unset or invalid.
pub(super) fn check_leeway(text: Option<&str>, problems: &mut Problems) -> Duration {
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

/// An empty issuer or audience is a problem rather than a silent "no check": leaving the key out is how a user
/// skips the check, so an empty string is most likely a mistake.
pub(super) fn non_empty(
    value: &Option<String>,
    path: &str,
    problems: &mut Problems,
) -> Option<String> {
    match value {
        Some(text) if text.is_empty() => {
            problems.push(path, "must not be empty; leave it out to skip the check");
            None
        }
        other => other.clone(),
    }
}

//! A group's `ewma_decay`, `hash` and `sticky` keys, and how they fit its strategy.

use super::check::Check;
use crate::balance::Strategy;
use crate::config::balancing::{
    is_cookie_name, Balancing, HashAlgorithm, HashKey, HashSettings, StickySettings,
    DEFAULT_EWMA_DECAY,
};
use crate::config::file::{FileHash, FileSticky, FileUpstream};
use crate::config::units::DurationKind;
use scalelab_common::problem::Problems;
use std::time::Duration;

pub(super) fn validate_balancing(
    base: &str,
    strategy: Strategy,
    upstream: &FileUpstream,
    problems: &mut Problems,
) -> Balancing {
    let hash = upstream
        .hash
        .as_ref()
        .and_then(|hash| validate_hash(&format!("{base}.hash"), hash, problems));
    if strategy == Strategy::Hash && upstream.hash.is_none() {
        problems.push(
            format!("{base}.hash"),
            "strategy = \"hash\" needs hash = { key = \"header.NAME\" | \"cookie.NAME\" | \
             \"query.NAME\" | \"client_ip\" | \"path\" }",
        );
    }
    Balancing {
        ewma_decay: problems.duration(
            &format!("{base}.ewma_decay"),
            upstream.ewma_decay.as_ref(),
            DurationKind::Timeout,
            DEFAULT_EWMA_DECAY,
        ),
        hash,
        sticky: upstream
            .sticky
            .as_ref()
            .map(|sticky| validate_sticky(&format!("{base}.sticky"), sticky, problems)),
    }
}

fn validate_hash(base: &str, hash: &FileHash, problems: &mut Problems) -> Option<HashSettings> {
    let algorithm = match hash.algorithm.as_deref() {
        None | Some("ring") => HashAlgorithm::Ring,
        Some("maglev") => HashAlgorithm::Maglev,
        Some(other) => {
            problems.push(
                format!("{base}.algorithm"),
                format!("unknown algorithm {other:?}; valid: ring, maglev"),
            );
            HashAlgorithm::Ring
        }
    };
    let Some(key) = HashKey::parse(&hash.key) else {
        problems.push(
            format!("{base}.key"),
            format!(
                "unknown hash key {:?}; valid: \"header.NAME\", \"cookie.NAME\", \
                 \"query.NAME\", \"client_ip\", \"path\" (NAME a valid header or cookie name)",
                hash.key
            ),
        );
        return None;
    };
    Some(HashSettings { key, algorithm })
}

fn validate_sticky(base: &str, sticky: &FileSticky, problems: &mut Problems) -> StickySettings {
    let cookie = sticky
        .cookie
        .clone()
        .unwrap_or_else(|| "scalelab_srv".to_string());
    if !is_cookie_name(&cookie) {
        problems.push(
            format!("{base}.cookie"),
            format!("{cookie:?} is not a valid cookie name (visible ASCII, no separators)"),
        );
    }
    StickySettings {
        cookie,
        ttl: problems.duration(
            &format!("{base}.ttl"),
            sticky.ttl.as_ref(),
            DurationKind::Ttl,
            Duration::from_secs(3600),
        ),
        secure: sticky.secure.unwrap_or(false),
        http_only: sticky.http_only.unwrap_or(true),
    }
}

#[cfg(test)]
mod tests;

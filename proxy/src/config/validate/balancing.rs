//! A group's `ewma_decay`, `hash`, `sticky`, `outlier` and `circuit` keys, and how they fit its strategy.

use super::check::Check;
use crate::balance::Strategy;
use crate::config::balancing::{
    is_cookie_name, Balancing, CircuitSettings, ErrorRate, HashAlgorithm, HashKey, HashSettings,
    OutlierSettings, StickySettings, DEFAULT_EWMA_DECAY,
};
use crate::config::file::{
    FileCircuit, FileErrorRate, FileHash, FileOutlier, FileSticky, FileUpstream,
};
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
        outlier: upstream
            .outlier
            .as_ref()
            .map(|outlier| validate_outlier(&format!("{base}.outlier"), outlier, problems)),
        circuit: upstream
            .circuit
            .as_ref()
            .map(|circuit| validate_circuit(&format!("{base}.circuit"), circuit, problems)),
    }
}

fn validate_circuit(base: &str, circuit: &FileCircuit, problems: &mut Problems) -> CircuitSettings {
    CircuitSettings {
        max_requests: problems.integer(
            &format!("{base}.max_requests"),
            Some(circuit.max_requests),
            (1, 1_000_000),
            1,
        ) as u32,
        max_pending: problems.integer(
            &format!("{base}.max_pending"),
            circuit.max_pending,
            (0, 1_000_000),
            0,
        ) as u32,
    }
}

fn validate_outlier(base: &str, outlier: &FileOutlier, problems: &mut Problems) -> OutlierSettings {
    let max_ejection_percent = percent(
        &format!("{base}.max_ejection"),
        outlier.max_ejection.as_deref(),
        problems,
    );
    OutlierSettings {
        consecutive_5xx: problems.integer(
            &format!("{base}.consecutive_5xx"),
            outlier.consecutive_5xx,
            (0, 1000),
            5,
        ) as u32,
        consecutive_gateway_errors: problems.integer(
            &format!("{base}.consecutive_gateway_errors"),
            outlier.consecutive_gateway_errors,
            (0, 1000),
            3,
        ) as u32,
        base_ejection: problems.duration(
            &format!("{base}.base_ejection"),
            outlier.base_ejection.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(30),
        ),
        max_ejection_percent,
        error_rate: outlier
            .error_rate
            .as_ref()
            .map(|rate| validate_error_rate(&format!("{base}.error_rate"), rate, problems)),
    }
}

fn validate_error_rate(base: &str, rate: &FileErrorRate, problems: &mut Problems) -> ErrorRate {
    ErrorRate {
        threshold_percent: percent(
            &format!("{base}.threshold"),
            rate.threshold.as_deref(),
            problems,
        ),
        min_requests: problems.integer(
            &format!("{base}.min_requests"),
            rate.min_requests,
            (1, 1_000_000),
            20,
        ) as u32,
        window: problems.duration(
            &format!("{base}.window"),
            rate.window.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(10),
        ),
    }
}

/// `"N%"` with N from 1 to 100; 50 when absent or wrong (the problem is recorded).
fn percent(path: &str, text: Option<&str>, problems: &mut Problems) -> u32 {
    let Some(text) = text else { return 50 };
    match text
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<u32>().ok())
    {
        Some(n) if (1..=100).contains(&n) => n,
        _ => {
            problems.push(
                path,
                format!("{text:?} must be a percentage from \"1%\" to \"100%\""),
            );
            50
        }
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

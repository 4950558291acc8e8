//! The `[cache]` table (tiers, object size limit, cacheable statuses, lock timeout, promotion) and
//! a route's `cache` table (key template, default TTL and stale windows).

use super::check::Check;
use crate::config::file::{FileCache, FileRouteCache};
use crate::config::key_template::KeyTemplate;
use crate::config::units::DurationKind;
use crate::config::{CacheSettings, RouteCache, TierKind, TierSettings};
use scalelab_common::problem::Problems;
use std::time::Duration;

pub(super) fn validate_cache(
    cache: &FileCache,
    has_redis: bool,
    problems: &mut Problems,
) -> CacheSettings {
    if cache.tiers.is_empty() {
        problems.push("cache.tiers", "needs at least one [[cache.tiers]] table");
    }
    let mut tiers: Vec<TierSettings> = Vec::new();
    for (i, tier) in cache.tiers.iter().enumerate() {
        let base = format!("cache.tiers[{i}]");
        if tier.name.is_empty() || tiers.iter().any(|t| t.name == tier.name) {
            problems.push(
                format!("{base}.name"),
                format!("tier name {:?} must be unique and non-empty", tier.name),
            );
        }
        let kind = match tier.kind.as_deref() {
            None | Some("memory") => TierKind::Memory,
            Some("redis") => {
                if i + 1 != cache.tiers.len() {
                    problems.push(
                        format!("{base}.kind"),
                        "only the last tier may be kind = \"redis\" (new objects enter it, hits move up into memory)",
                    );
                }
                if !has_redis {
                    problems.push(
                        format!("{base}.kind"),
                        "kind = \"redis\" needs a [redis] table with the server's url",
                    );
                }
                TierKind::Redis
            }
            Some(other) => {
                problems.push(
                    format!("{base}.kind"),
                    format!("unknown tier kind {other:?}: expected \"memory\" or \"redis\""),
                );
                TierKind::Memory
            }
        };
        tiers.push(TierSettings {
            name: tier.name.clone(),
            kind,
            max_entries: problems.integer(
                &format!("{base}.max_entries"),
                tier.max_entries,
                (1, 100_000_000),
                1000,
            ) as usize,
            max_bytes: problems.bytes(
                &format!("{base}.max_bytes"),
                tier.max_bytes.as_ref(),
                16 << 20,
            ),
            ttl: problems.duration(
                &format!("{base}.ttl"),
                tier.ttl.as_ref(),
                DurationKind::Ttl,
                Duration::from_secs(3600),
            ),
        });
    }
    let statuses = match &cache.cacheable_statuses {
        None => vec![200, 203, 301, 404],
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, &code)| {
                problems.integer(
                    &format!("cache.cacheable_statuses[{i}]"),
                    Some(code),
                    (100, 599),
                    200,
                ) as u16
            })
            .collect(),
    };
    CacheSettings {
        max_object_bytes: problems.bytes(
            "cache.max_object_bytes",
            cache.max_object_bytes.as_ref(),
            1 << 20,
        ),
        cacheable_statuses: statuses,
        lock_timeout: problems.duration(
            "cache.lock_timeout",
            cache.lock_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(5),
        ),
        tiers,
        promotion_hits: problems.integer(
            "cache.promotion.hits",
            cache.promotion.as_ref().and_then(|p| p.hits),
            (1, 1_000_000),
            2,
        ) as u32,
    }
}

pub(super) fn validate_route_cache(
    base: &str,
    cache: &FileRouteCache,
    has_tiers: bool,
    problems: &mut Problems,
) -> Option<RouteCache> {
    if cache.enabled == Some(false) {
        return None;
    }
    if !has_tiers {
        problems.push(
            format!("{base}.cache"),
            "caching needs a [cache] table with tiers",
        );
    }
    let key = match &cache.key {
        None => KeyTemplate::default(),
        Some(text) => KeyTemplate::parse(text).unwrap_or_else(|message| {
            problems.push(format!("{base}.cache.key"), message);
            KeyTemplate::default()
        }),
    };
    Some(RouteCache {
        key,
        default_ttl: problems.duration(
            &format!("{base}.cache.default_ttl"),
            cache.default_ttl.as_ref(),
            DurationKind::Ttl,
            Duration::from_secs(300),
        ),
        stale_while_revalidate: problems.duration(
            &format!("{base}.cache.stale_while_revalidate"),
            cache.stale_while_revalidate.as_ref(),
            DurationKind::Window,
            Duration::ZERO,
        ),
        stale_if_error: problems.duration(
            &format!("{base}.cache.stale_if_error"),
            cache.stale_if_error.as_ref(),
            DurationKind::Window,
            Duration::ZERO,
        ),
    })
}

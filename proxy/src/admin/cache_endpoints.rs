//! Cache inspection and invalidation on the admin listener: `GET /cache/stats` in the seed's
//! per-level shape plus ratios and moves, `GET /admin/cache?key=` for one object, and
//! `DELETE /admin/cache?key=|prefix=|tag=[&soft=true]`.

use crate::cache::{CacheStore, Invalidation};
use crate::error::Answer;
use crate::state::Shared;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/cache/stats", get(stats))
        .route("/admin/cache", get(inspect).delete(invalidate))
}

#[derive(Debug, Deserialize)]
struct Target {
    key: Option<String>,
    prefix: Option<String>,
    tag: Option<String>,
    soft: Option<bool>,
}

/// The answer when the running config has no `[cache]` table.
fn not_configured() -> Answer {
    Answer::error(404, "caching is not configured (no [cache] table)")
}

/// The store for the running config.
fn store(shared: &Shared) -> Option<Arc<CacheStore>> {
    shared.cache().for_config(&shared.snapshot().cache)
}

async fn stats(State(shared): State<Shared>) -> Answer {
    let Some(store) = store(&shared) else {
        return not_configured();
    };
    let tiers = store.stats();
    let hits: u64 = tiers.iter().map(|t| t.hits).sum();
    let misses = store.misses();
    let lookups = hits + misses;
    let mut levels = serde_json::Map::new();
    for tier in &tiers {
        let tier_lookups = tier.hits + tier.misses;
        levels.insert(
            tier.name.clone(),
            json!({
                "hits": tier.hits,
                "misses": tier.misses,
                "sets": tier.sets,
                "evictions": tier.evictions,
                "expirations": tier.expirations,
                "promotions": tier.promotions,
                "demotions": tier.demotions,
                "items": tier.items,
                "bytes": tier.bytes,
                "max_entries": tier.max_entries,
                "max_bytes": tier.max_bytes,
                "hit_ratio": ratio(tier.hits, tier_lookups),
            }),
        );
    }
    Answer::ok(json!({
        "levels": levels,
        "total_items": tiers.iter().map(|t| t.items).sum::<usize>(),
        "total_bytes": store.total_bytes(),
        "hits": hits,
        "misses": misses,
        "hit_ratio": ratio(hits, lookups),
        "promotions": tiers.iter().map(|t| t.promotions).sum::<u64>(),
        "demotions": tiers.iter().map(|t| t.demotions).sum::<u64>(),
    }))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

async fn inspect(State(shared): State<Shared>, Query(target): Query<Target>) -> Answer {
    let Some(store) = store(&shared) else {
        return not_configured();
    };
    let Some(key) = target.key else {
        return Answer::error(400, "missing ?key=");
    };
    match store.report(&key) {
        Some(report) => match serde_json::to_value(report) {
            Ok(body) => Answer::ok(body),
            Err(error) => Answer::error(500, format!("cannot render the entry: {error}")),
        },
        None => Answer::new(404, json!({"error": "not cached", "key": key})),
    }
}

async fn invalidate(State(shared): State<Shared>, Query(target): Query<Target>) -> Answer {
    let Some(store) = store(&shared) else {
        return not_configured();
    };
    let request = match Invalidation::from_fields(
        target.key,
        target.prefix,
        target.tag,
        target.soft.unwrap_or(false),
    ) {
        Ok(request) => request,
        Err(error) => return Answer::new(400, error.body()),
    };
    Answer::ok(store.invalidate_everywhere(&request).await)
}

/// Applies tier TTLs and expiry about once a second, so memory comes back even for objects
/// nobody asks for again.
pub async fn sweep(shared: Shared, mut shutdown: pingora::server::ShutdownWatch) {
    loop {
        if let Some(store) = shared.cache().for_config(&shared.snapshot().cache) {
            store.sweep();
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

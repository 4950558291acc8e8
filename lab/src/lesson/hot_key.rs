//! Cache lessons: `cache` (one URL, bypassed then cached) and `hot-key` (Zipf-distributed keys on
//! `/data/complex?id=`: cache off, cache on, and the tiers resized to the seed's small sizes), with the hits of
//! each tier, promotions and the load left for the origin.

use std::collections::BTreeMap;

use serde_json::Value;

use super::knobs::{array_at, table_at};
use super::verdict::{self, CacheRun};
use super::{Lab, LessonError, Restore, Section, Table};
use crate::bench::{build_url, Keys, RunReport};
use crate::plot::{grouped_bars, Bars};
use crate::scenario::Scenario;

/// Distinct keys of the hot-key workload, and the Zipf exponent: with 1.1 the hottest key gets about 13 % of the
/// requests and half the keys are asked for only once or never in a thousand requests.
const KEYS: u64 = 1000;
const EXPONENT: f64 = 1.1;

/// Small tiers (L1, L2, L3 entries): 60 objects in all, fewer than the keys a run asks for more than once, so
/// hot keys must push colder ones out. (The seed's 10/50/200 hold every key a short run touches.)
const SMALL_TIERS: [i64; 3] = [5, 15, 40];

/// The path of the hot-key workload.
const PATH: &str = "/data/complex";

/// The fixed start of the cache key of the route serving `path`, from `/admin/config` (`complex_data_` for the
/// shipped `complex_data_{query.id}`): the keys invalidated between runs so that each starts cold.
fn key_prefix(config: &Value, path: &str) -> Option<String> {
    let route = config["config"]["routes"]
        .as_array()?
        .iter()
        .find(|route| route["path"] == path)?;
    let key = route["cache"]["key"].as_str()?;
    let prefix = key.split('{').next().unwrap_or_default();
    (!prefix.is_empty()).then(|| prefix.to_owned())
}

fn cache_run(run: &RunReport) -> CacheRun {
    let report = &run.report;
    let served: u64 = ["HIT", "STALE"]
        .iter()
        .filter_map(|result| report.cache.get(*result))
        .sum();
    CacheRun {
        name: run.name.clone(),
        hit_ratio: report.cache_hit_ratio,
        origin: report.requests.saturating_sub(served),
        requests: report.requests,
        p50: report.latency_ms.p50,
    }
}

/// `cache`: the same load bypassing the cache, then using it.
pub async fn cache(lab: &Lab) -> Result<Section, LessonError> {
    let reports = lab.plain_runs(Scenario::Cache).await?;
    let cache_runs: Vec<CacheRun> = reports.iter().map(cache_run).collect();
    let condition = format!(
        "Nothing is changed: the same load on {} bypasses the cache, then uses it (the bypassed run fills it, so \
         the cached run shows the steady state).",
        crate::bench::path_of(&lab.url)
    );
    Section::new(
        Scenario::Cache,
        condition,
        reports,
        verdict::cache(&cache_runs),
    )
}

/// Per-tier hits and the store's promotions, evictions and misses from `/cache/stats`.
fn counters(stats: &Value) -> BTreeMap<String, u64> {
    let mut counters = BTreeMap::new();
    if let Some(levels) = stats["levels"].as_object() {
        for (tier, level) in levels {
            for field in ["hits", "promotions", "demotions", "evictions"] {
                let value = level[field].as_u64().unwrap_or(0);
                counters.insert(format!("{tier} {field}"), value);
            }
        }
    }
    counters.insert("misses".to_owned(), stats["misses"].as_u64().unwrap_or(0));
    counters
}

/// What changed between two `counters`.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(key, value)| {
            let old = before.get(key).copied().unwrap_or(0);
            (key.clone(), value.saturating_sub(old))
        })
        .collect()
}

/// The seed's small tier sizes, written into `[[cache.tiers]]` in order.
fn shrink_tiers(table: &mut toml::Table) -> Result<(), String> {
    let cache = table_at(table, "cache")?;
    let tiers = array_at(cache, "tiers")?;
    for (tier, entries) in tiers.iter_mut().zip(SMALL_TIERS) {
        let tier = tier.as_table_mut().ok_or("cache.tiers holds a non-table")?;
        tier.insert("max_entries".to_owned(), toml::Value::Integer(entries));
    }
    Ok(())
}

/// `hot-key`: Zipf keys with the cache off, on, and with small tiers.
pub async fn hot_key(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let base = lab.knobs.proxy(PATH);
    let prefix = key_prefix(&lab.knobs.admin("/admin/config").await?, PATH).ok_or_else(|| {
        LessonError::Knob(format!(
            "the route of {PATH} has no cache key with a fixed prefix to invalidate between runs"
        ))
    })?;
    let keys = Keys {
        param: "id".to_owned(),
        count: KEYS,
        exponent: EXPONENT,
    };
    let flush = format!("/admin/cache?prefix={prefix}");
    let mut runs = Vec::new();
    let mut tiers: Vec<(String, BTreeMap<String, u64>)> = Vec::new();
    for (name, bypass) in [
        ("cache off", true),
        ("cache on", false),
        ("small tiers", false),
    ] {
        if name == "small tiers" {
            lab.knobs.rewrite_config(restore, shrink_tiers).await?;
        }
        lab.knobs.admin_delete(&flush).await?;
        let before = counters(&lab.knobs.admin("/cache/stats").await?);
        let url = build_url(&base, None, bypass)?.to_string();
        let run = lab
            .load(name, &url, |plan| plan.keys = Some(keys.clone()))
            .await?;
        let after = counters(&lab.knobs.admin("/cache/stats").await?);
        tiers.push((name.to_owned(), delta(&before, &after)));
        runs.push(run);
    }
    // The flush leaves the keys of the last run behind otherwise; the config restore brings the tiers back.
    lab.knobs.admin_delete(&flush).await?;
    let cache_runs: Vec<CacheRun> = runs.iter().map(cache_run).collect();
    let verdict = verdict::cache(&cache_runs);
    let condition = format!(
        "{} requests per run on /data/complex?id=K with K drawn from a Zipf distribution (exponent {EXPONENT}) over \
         {KEYS} keys: a few keys are hot, most are cold. Runs: the cache bypassed, the cache on with the configured \
         tiers, and the tiers resized to {}/{}/{} entries (a config rewrite, restored afterwards). The \
         route's keys are invalidated before each run.",
        lab.requests, SMALL_TIERS[0], SMALL_TIERS[1], SMALL_TIERS[2]
    );
    let mut section = Section::new(Scenario::HotKey, condition, runs, verdict)?;
    let fields: Vec<String> = tiers
        .first()
        .map(|(_, counts)| counts.keys().cloned().collect())
        .unwrap_or_default();
    let mut header = vec!["run".to_owned()];
    header.extend(fields.iter().cloned());
    section.tables.push(Table {
        title: "Cache counters during each run (from the proxy's /cache/stats)".to_owned(),
        header,
        rows: tiers
            .iter()
            .map(|(name, counts)| {
                let mut row = vec![name.clone()];
                row.extend(fields.iter().map(|field| counts[field].to_string()));
                row
            })
            .collect(),
    });
    let served: Vec<(String, BTreeMap<String, u64>)> = tiers
        .iter()
        .zip(&cache_runs)
        .map(|((name, counts), run)| {
            let mut by_tier: BTreeMap<String, u64> = counts
                .iter()
                .filter_map(|(key, value)| {
                    key.strip_suffix(" hits")
                        .map(|tier| (tier.to_owned(), *value))
                })
                .collect();
            by_tier.insert("origin".to_owned(), run.origin);
            (name.clone(), by_tier)
        })
        .collect();
    let bars = Bars::from_counts(served.iter().map(|(name, counts)| (name.as_str(), counts)));
    let svg = grouped_bars(
        "hot-key: requests answered by each tier and by the origin",
        "cache tier",
        &bars,
    )?;
    section.figure(
        "tiers",
        "Hit ratio per tier: who answered each run's requests",
        svg,
    );
    Ok(section)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn counters_are_read_per_tier_and_subtracted() {
        let before = counters(&json!({
            "levels": {"L1": {"hits": 5, "promotions": 1, "demotions": 0, "evictions": 0}},
            "misses": 10
        }));
        let after = counters(&json!({
            "levels": {"L1": {"hits": 9, "promotions": 4, "demotions": 1, "evictions": 2}},
            "misses": 12
        }));
        let change = delta(&before, &after);
        assert_eq!(change["L1 hits"], 4);
        assert_eq!(change["L1 promotions"], 3);
        assert_eq!(change["L1 evictions"], 2);
        assert_eq!(change["misses"], 2);
    }

    #[test]
    fn the_key_prefix_comes_from_the_route() {
        let config = json!({"config": {"routes": [
            {"path": "/data", "cache": {"key": "my_data"}},
            {"path": "/data/complex", "cache": {"key": "complex_data_{query.id}"}},
            {"path": "/other", "cache": {"key": "{query.id}"}}
        ]}});
        assert_eq!(
            key_prefix(&config, "/data/complex").as_deref(),
            Some("complex_data_")
        );
        assert_eq!(key_prefix(&config, "/data").as_deref(), Some("my_data"));
        assert_eq!(key_prefix(&config, "/other"), None);
        assert_eq!(key_prefix(&config, "/missing"), None);
    }

    #[test]
    fn tiers_shrink_in_order() {
        let mut table: toml::Table =
            "[cache]\n[[cache.tiers]]\nname = \"L1\"\nmax_entries = 1000\n\
                                      [[cache.tiers]]\nname = \"L2\"\nmax_entries = 5000"
                .parse()
                .unwrap();
        shrink_tiers(&mut table).unwrap();
        let tiers = table["cache"]["tiers"].as_array().unwrap();
        assert_eq!(tiers[0]["max_entries"].as_integer(), Some(5));
        assert_eq!(tiers[1]["max_entries"].as_integer(), Some(15));
    }
}

//! `hash-locality` (issue 28): every gateway keeps a small local item cache (the backends' `/admin/local-cache`
//! knob), and the load asks for a uniform set of item ids larger than one gateway's cache but smaller than all of
//! them together. Round robin, then a hash on the item id, each set by a live reload of the gateways' group; the
//! hit ratio comes from the answers' `X-Local-Cache`, and the proxy's own cache is bypassed so that every request
//! reaches a gateway.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::balance::set_weights;
use super::knobs::table_at;
use super::verdict::locality::{self, LocalityRun, Sizes};
use super::{Lab, LessonError, Restore, Section, Table};
use crate::bench::{build_url, Keys, RunReport};
use crate::plot::{grouped_bars, Bars};
use crate::scenario::Scenario;

/// Entries of each gateway's local cache during the lesson.
pub const ENTRIES: u64 = 100;

/// The path whose fan-out the local cache saves, and its item id parameter (the hash key).
const PATH: &str = "/data/complex";
const PARAM: &str = "id";

/// The phases: a name for the report, and the group's strategy.
const PHASES: [(&str, &str); 2] = [
    ("round robin", "round_robin"),
    ("hash on the item id", "hash"),
];

/// The distinct ids of the load: two thirds of the fleet's entries, so the set exceeds one gateway's cache (with
/// two gateways or more) and still fits all of them with room for an uneven split of the hash ring. The database
/// is seeded with ids 1 to 1000, so every id exists.
pub fn key_count(gateways: u64) -> u64 {
    (ENTRIES * gateways * 2 / 3).min(1000)
}

/// Sets the gateways' group to `strategy` with equal weights (round robin and the hash then differ only in where
/// an id goes); `hash` hashes `query.id`, any other strategy drops a `hash` table.
fn set_strategy(table: &mut toml::Table, strategy: &str, gateways: usize) -> Result<(), String> {
    set_weights(table, &vec![1; gateways])?;
    let group = table_at(table, "upstreams.gateways")?;
    group.insert(
        "strategy".to_owned(),
        toml::Value::String(strategy.to_owned()),
    );
    if strategy == "hash" {
        let mut hash = toml::Table::new();
        hash.insert(
            "key".to_owned(),
            toml::Value::String(format!("query.{PARAM}")),
        );
        group.insert("hash".to_owned(), toml::Value::Table(hash));
    } else {
        group.remove("hash");
    }
    Ok(())
}

/// The local cache's status on each gateway (`GET /admin/local-cache`), in `[lab]` order.
async fn statuses(lab: &Lab) -> Result<Vec<Value>, LessonError> {
    let mut all = Vec::new();
    for port in &lab.knobs.file.lab.gateways {
        let url = format!("{}/admin/local-cache", lab.knobs.file.backend_url(*port));
        all.push(lab.knobs.get(&url).await.map_err(|error| {
            LessonError::Knob(format!(
                "{error}; a gateway without /admin/local-cache predates the local cache knob, restart the lab"
            ))
        })?);
    }
    Ok(all)
}

fn locality_run(run: &RunReport) -> LocalityRun {
    let count = |result: &str| run.report.local_cache.get(result).copied().unwrap_or(0);
    LocalityRun {
        name: run.name.clone(),
        hits: count("hit"),
        misses: count("miss"),
        p50: run.report.latency_ms.p50,
        p99: run.report.latency_ms.p99,
    }
}

/// `hash-locality`.
pub async fn hash_locality(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let ports = lab.knobs.file.lab.gateways.clone();
    if ports.len() < 2 {
        return Err(LessonError::Knob(
            "hash-locality needs at least two gateways in [lab] gateways: with one, every id goes to it either way"
                .to_owned(),
        ));
    }
    let sizes = Sizes {
        keys: key_count(ports.len() as u64),
        entries: ENTRIES,
        gateways: ports.len() as u64,
    };
    statuses(lab).await?;
    let keys = Keys {
        param: PARAM.to_owned(),
        count: sizes.keys,
        // Zipf with exponent 0 is uniform: every id as likely, so the working set is exactly `keys` ids.
        exponent: 0.0,
    };
    let url = build_url(&lab.knobs.proxy(PATH), None, true)?.to_string();
    let (mut runs, mut rows) = (Vec::new(), Vec::new());
    for (name, strategy) in PHASES {
        lab.knobs
            .rewrite_config(restore, |table| set_strategy(table, strategy, ports.len()))
            .await?;
        // Resizing empties each cache, so every phase starts cold.
        for port in &ports {
            lab.knobs
                .backend_knob(
                    restore,
                    *port,
                    "/admin/local-cache",
                    |before| json!({"entries": before["entries"]}),
                    json!({"entries": ENTRIES}),
                )
                .await?;
        }
        let before = statuses(lab).await?;
        let run = lab
            .load(name, &url, |plan| plan.keys = Some(keys.clone()))
            .await?;
        let after = statuses(lab).await?;
        for ((port, before), after) in ports.iter().zip(&before).zip(&after) {
            let delta = |field: &str| {
                after[field]
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_sub(before[field].as_u64().unwrap_or(0))
            };
            let (hits, misses) = (delta("hits"), delta("misses"));
            rows.push(vec![
                name.to_owned(),
                lab.knobs.gateway_addr(*port),
                hits.to_string(),
                misses.to_string(),
                after["stored"].as_u64().unwrap_or(0).to_string(),
                super::verdict::pct(locality::hit_ratio(hits, misses)),
            ]);
        }
        runs.push(run);
    }
    let phases: Vec<LocalityRun> = runs.iter().map(locality_run).collect();
    let verdict = match &phases[..] {
        [spread, hashed] => locality::hash_locality(sizes, spread, hashed),
        _ => String::new(),
    };
    let condition = format!(
        "Every gateway keeps a local cache of {ENTRIES} items (POST /admin/local-cache, emptied before each run \
         and restored afterwards) in front of {PATH}'s database and microservice calls. Each request asks for \
         {PATH}?{PARAM}=K with K uniform over {} ids: more than one gateway's {ENTRIES} entries, fewer than the \
         fleet's {}. The proxy's cache is bypassed; the gateways' group gets equal weights and round robin, then \
         strategy = \"hash\" with hash = {{ key = \"query.{PARAM}\" }} (config rewrites applied by live reloads, \
         restored afterwards).",
        sizes.keys,
        ENTRIES * sizes.gateways
    );
    let mut section = Section::new(Scenario::HashLocality, condition, runs, verdict)?;
    section.tables.push(Table {
        title: "Hit ratio and latency per phase (from X-Local-Cache)".to_owned(),
        header: [
            "run",
            "requests",
            "local hits",
            "misses",
            "hit ratio",
            "p50",
            "p99",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: phases
            .iter()
            .zip(&section.report.runs)
            .map(|(phase, run)| {
                vec![
                    phase.name.clone(),
                    run.report.requests.to_string(),
                    phase.hits.to_string(),
                    phase.misses.to_string(),
                    super::verdict::pct(phase.hit_ratio()),
                    super::verdict::ms(phase.p50),
                    super::verdict::ms(phase.p99),
                ]
            })
            .collect(),
    });
    section.tables.push(Table {
        title: "Each gateway's local cache during each run (from its /admin/local-cache)"
            .to_owned(),
        header: [
            "run",
            "gateway",
            "hits",
            "misses",
            "ids held at the end",
            "hit ratio",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
    });
    let counts: Vec<(String, BTreeMap<String, u64>)> = phases
        .iter()
        .map(|phase| {
            (
                phase.name.clone(),
                BTreeMap::from([
                    ("hit".to_owned(), phase.hits),
                    ("miss".to_owned(), phase.misses),
                ]),
            )
        })
        .collect();
    let bars = Bars::from_counts(counts.iter().map(|(name, counts)| (name.as_str(), counts)));
    let svg = grouped_bars(
        "hash-locality: the gateways' local cache lookups per run",
        "X-Local-Cache",
        &bars,
    )?;
    section.figure(
        "local-cache",
        "Local cache hits and misses: round robin against a hash on the item id",
        svg,
    );
    Ok(section)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_key_set_exceeds_one_cache_and_fits_the_fleet() {
        for gateways in 2..=6 {
            let keys = key_count(gateways);
            assert!(keys > ENTRIES, "{gateways}: {keys}");
            assert!(keys <= ENTRIES * gateways, "{gateways}: {keys}");
        }
        assert_eq!(key_count(3), 200);
    }

    #[test]
    fn the_strategy_is_written_and_the_hash_removed_again() {
        let mut table: toml::Table = "[upstreams.gateways]\nstrategy = \"weighted\"\n\
             servers = [{addr = \"a\", weight = 3}, {addr = \"b\", weight = 1}]"
            .parse()
            .unwrap();
        set_strategy(&mut table, "hash", 2).unwrap();
        let group = &table["upstreams"]["gateways"];
        assert_eq!(group["strategy"].as_str(), Some("hash"));
        assert_eq!(group["hash"]["key"].as_str(), Some("query.id"));
        assert_eq!(group["servers"][0]["weight"].as_integer(), Some(1));
        set_strategy(&mut table, "round_robin", 2).unwrap();
        let group = &table["upstreams"]["gateways"];
        assert_eq!(group["strategy"].as_str(), Some("round_robin"));
        assert!(group.get("hash").is_none());
    }
}

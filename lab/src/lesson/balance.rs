//! Balancing lessons: `strategies` (and `single`) on identical gateways, `slow-server` (one gateway answers late:
//! least connections moves load away, round robin does not) and `uneven-capacity` (gateways of different speed:
//! weights matching capacity against equal weights).

use serde_json::json;

use super::knobs::{array_at, table_at};
use super::verdict::{self, Balance};
use super::{Lab, LessonError, Restore, Section};
use crate::bench::{build_url, RunReport};
use crate::scenario::{Scenario, STRATEGIES};

/// `single` and `strategies`: the runs `scenario::expand` gives, with no condition set.
pub async fn plain(scenario: Scenario, lab: &Lab) -> Result<Section, LessonError> {
    let reports = lab.plain_runs(scenario).await?;
    let servers = servers(lab);
    let (condition, verdict) = if scenario == Scenario::Strategies {
        let runs: Vec<(String, Vec<f64>, f64)> = reports
            .iter()
            .map(|run| {
                let shares = servers
                    .iter()
                    .map(|server| run.report.share(server))
                    .collect();
                (run.name.clone(), shares, run.report.latency_ms.p50)
            })
            .collect();
        (
            "Nothing is changed: the gateways are identical, and every request bypasses the cache so that it \
             reaches one."
                .to_owned(),
            verdict::strategies(&runs),
        )
    } else {
        let report = reports.first().map(|run| &run.report);
        let verdict = report.map_or_else(String::new, |report| {
            verdict::single(
                report.requests,
                report.failed(),
                report.latency_ms.p50,
                report.latency_ms.p99,
                report.requests_per_s,
            )
        });
        (
            format!(
                "One run against {} as asked.",
                crate::bench::path_of(&lab.url)
            ),
            verdict,
        )
    };
    let mut section = Section::new(scenario, condition, reports, verdict)?;
    section.share_figures()?;
    Ok(section)
}

/// The gateways' addresses as `X-Upstream-Server` names them, in `[lab]` order.
fn servers(lab: &Lab) -> Vec<String> {
    lab.knobs
        .file
        .lab
        .gateways
        .iter()
        .map(|port| lab.knobs.gateway_addr(*port))
        .collect()
}

/// The last gateway of `[lab]`: the one the lessons slow down or break (in the shipped config it has the lowest
/// weight, so least connections' tie-break does not favour it either).
pub(super) fn watched(lab: &Lab) -> Result<u16, LessonError> {
    lab.knobs
        .file
        .lab
        .gateways
        .last()
        .copied()
        .ok_or_else(|| LessonError::Knob("[lab] lists no gateway".to_owned()))
}

/// A bypassing `/data` URL with `strategy`.
fn data_url(lab: &Lab, strategy: &str) -> Result<String, LessonError> {
    Ok(build_url(&lab.knobs.proxy("/data"), Some(strategy), true)?.to_string())
}

fn balance(run: &RunReport, server: &str) -> Balance {
    Balance {
        name: run.name.clone(),
        share: run.report.share(server),
        p50: run.report.latency_ms.p50,
        p99: run.report.latency_ms.p99,
        mean: run.report.latency_ms.mean,
    }
}

/// `slow-server`: one gateway answers `slow_ms` to twice that late (200 to 400 ms unless asked otherwise), every
/// gateway with the same weight; the same load once per strategy. The spread is what a struggling server looks like, and it makes the tail honest:
/// with a fixed delay the p99 of any run that sends the slow gateway over 1 % of its requests is that delay, so
/// least connections' tail could only tie with round robin's, never show how much rarer the slow answers are.
pub async fn slow_server(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let port = watched(lab)?;
    let slow = lab.knobs.gateway_addr(port);
    // Equal weights, so that what each strategy sends the slow gateway shows what it reacts to: with the shipped
    // 3/2/1 the slowed gateway has the smallest weight, and weighted sent it less than round robin for that
    // reason alone, which read as a reaction to its latency.
    let equal = vec![1; lab.knobs.file.lab.gateways.len()];
    lab.knobs
        .rewrite_config(restore, |table| set_weights(table, &equal))
        .await?;
    lab.knobs
        .chaos(
            restore,
            port,
            json!({"latency_ms": lab.slow_ms, "latency_jitter_ms": lab.slow_ms}),
        )
        .await?;
    let mut runs = Vec::new();
    for strategy in STRATEGIES {
        runs.push(
            lab.load(strategy, &data_url(lab, strategy)?, |_| {})
                .await?,
        );
    }
    let balances: Vec<Balance> = runs.iter().map(|run| balance(run, &slow)).collect();
    let verdict = verdict::slow_server(&slow, &balances);
    let condition = format!(
        "Gateway {slow} answers {} to {} ms late (its chaos latency_ms and latency_jitter_ms); the others are \
         unchanged. Every gateway gets the same weight for this lesson (a config rewrite, restored afterwards), so \
         no strategy favours or avoids the slow one by configuration. Every request bypasses the cache so that it \
         reaches a gateway; the same load runs once per strategy.",
        lab.slow_ms,
        lab.slow_ms * 2
    );
    let mut section = Section::new(Scenario::SlowServer, condition, runs, verdict)?;
    if let Some(tail) = verdict::slow_server_tail(&balances) {
        section.notes.insert(0, tail);
    }
    section.share_figures()?;
    Ok(section)
}

/// How long each request holds one of a gateway's slots in `uneven-capacity`, on top of its own work.
const SLOT_MS: u64 = 50;

/// Each gateway's capacity in `uneven-capacity`: requests it serves at once (chaos `max_concurrency`), 3:2:1 like
/// the shipped weights. A request beyond them waits for a slot, so a gateway given more than its share slows down
/// with load, as a smaller server does.
fn capacities(gateways: usize) -> Vec<u64> {
    [6, 4, 2].into_iter().cycle().take(gateways).collect()
}

/// Sets the weights of the gateways group to `weights` (in `[lab]` order).
fn set_weights(table: &mut toml::Table, weights: &[i64]) -> Result<(), String> {
    let gateways = table_at(table, "upstreams.gateways")?;
    let servers = array_at(gateways, "servers")?;
    for (server, weight) in servers.iter_mut().zip(weights) {
        let server = server
            .as_table_mut()
            .ok_or("upstreams.gateways.servers holds a non-table")?;
        server.insert("weight".to_owned(), toml::Value::Integer(*weight));
    }
    Ok(())
}

/// `uneven-capacity`: gateways of speeds about 3:2:1; weighted balancing with equal weights, then 3/2/1.
pub async fn uneven_capacity(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let file = &lab.knobs.file;
    let gateways = &file.lab.gateways;
    let slots = capacities(gateways.len());
    for (port, slots) in gateways.iter().zip(&slots) {
        lab.knobs
            .chaos(
                restore,
                *port,
                json!({"max_concurrency": slots, "latency_ms": SLOT_MS}),
            )
            .await?;
    }
    let weakest = lab.knobs.gateway_addr(watched(lab)?);
    let capacity: Vec<i64> = [3, 2, 1].into_iter().cycle().take(gateways.len()).collect();
    let mut runs = Vec::new();
    for (name, weights) in [
        ("equal weights", vec![1; gateways.len()]),
        ("weights 3/2/1", capacity),
    ] {
        lab.knobs
            .rewrite_config(restore, |table| set_weights(table, &weights))
            .await?;
        runs.push(lab.load(name, &data_url(lab, "weighted")?, |_| {}).await?);
    }
    let verdict = match &runs[..] {
        [equal, weighted] => verdict::uneven_capacity(
            &weakest,
            &balance(equal, &weakest),
            &balance(weighted, &weakest),
        ),
        _ => String::new(),
    };
    let limits: Vec<String> = gateways
        .iter()
        .zip(&slots)
        .map(|(port, slots)| format!("{} {slots} at once", lab.knobs.gateway_addr(*port)))
        .collect();
    let condition = format!(
        "The gateways get capacities 3:2:1 ({}): chaos max_concurrency, each request holding a slot for {SLOT_MS} ms \
         on top of its work, so a gateway sent more than it can serve queues. The weighted strategy runs with equal \
         weights, then with weights 3/2/1 (a config rewrite, restored afterwards); every request bypasses the cache.",
        limits.join(", ")
    );
    let mut section = Section::new(Scenario::UnevenCapacity, condition, runs, verdict)?;
    section.share_figures()?;
    Ok(section)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn capacities_are_three_two_one() {
        assert_eq!(capacities(3), [6, 4, 2]);
        assert_eq!(capacities(4), [6, 4, 2, 6]);
    }

    #[test]
    fn weights_are_written_in_lab_order() {
        let mut table: toml::Table =
            "[upstreams.gateways]\nservers = [{addr = \"a\", weight = 1}, {addr = \"b\"}]"
                .parse()
                .unwrap();
        set_weights(&mut table, &[3, 2]).unwrap();
        let servers = table["upstreams"]["gateways"]["servers"]
            .as_array()
            .unwrap();
        assert_eq!(servers[0]["weight"].as_integer(), Some(3));
        assert_eq!(servers[1]["weight"].as_integer(), Some(2));
        assert!(set_weights(&mut toml::Table::new(), &[1]).is_err());
    }
}

//! `reload-under-load`: the proxy's config is rewritten (and reloaded) every second while a load runs; no request
//! may fail, and the generation climbs once per rewrite.

use std::time::Duration;

use tokio::time::Instant;

use super::knobs::{array_at, group_of, table_at};
use super::{verdict, Lab, LessonError, Restore, Section, Table};
use crate::bench::build_url;
use crate::plot::{lines::line_chart, Line};
use crate::scenario::Scenario;

/// How long the load runs, and how often the config is rewritten during it.
const RUN: Duration = Duration::from_secs(8);
const EVERY: Duration = Duration::from_secs(1);
/// How often the generation is read.
const POLL: Duration = Duration::from_millis(100);

/// The weight written on rewrite `n`: two values that alternate, so every rewrite is a real change, and that round
/// robin (the load's strategy) ignores, so the load itself does not change.
fn weight(n: u64) -> i64 {
    if n.is_multiple_of(2) {
        7
    } else {
        8
    }
}

/// Sets the weight of `server` in the group `group`.
fn set_weight(
    table: &mut toml::Table,
    group: &str,
    server: &str,
    weight: i64,
) -> Result<(), String> {
    let upstream = table_at(table, &format!("upstreams.{group}"))?;
    let servers = array_at(upstream, "servers")?;
    let entry = servers
        .iter_mut()
        .filter_map(toml::Value::as_table_mut)
        .find(|entry| entry.get("addr").and_then(toml::Value::as_str) == Some(server))
        .ok_or_else(|| format!("upstreams.{group} has no server {server}"))?;
    entry.insert("weight".to_owned(), toml::Value::Integer(weight));
    Ok(())
}

/// Rewrites the config every second and samples the generation until the run ends; returns the rewrites made and
/// the (seconds, generation) samples.
async fn rewrite_every_second(
    lab: &Lab,
    restore: &mut Restore,
    group: &str,
    server: &str,
) -> Result<(u64, Vec<(f64, f64)>), LessonError> {
    let start = Instant::now();
    let mut rewrites = 0;
    let mut samples = Vec::new();
    let mut next = EVERY;
    while start.elapsed() < RUN {
        if start.elapsed() >= next && start.elapsed() + EVERY / 2 < RUN {
            lab.knobs
                .rewrite_config(restore, |table| {
                    set_weight(table, group, server, weight(rewrites))
                })
                .await?;
            rewrites += 1;
            next += EVERY;
        }
        if let Some(generation) = lab.knobs.admin("/stats").await?["generation"].as_f64() {
            samples.push((start.elapsed().as_secs_f64(), generation));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok((rewrites, samples))
}

/// `reload-under-load`.
pub async fn reload_under_load(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let server = lab.knobs.gateway_addr(super::balance::watched(lab)?);
    let upstreams = lab.knobs.admin("/admin/upstreams").await?;
    let group = group_of(&upstreams, &server)
        .and_then(|group| group["name"].as_str())
        .ok_or_else(|| LessonError::Knob(format!("no upstream group holds {server}")))?
        .to_owned();
    let url = build_url(&lab.knobs.proxy("/data"), Some("round_robin"), true)?.to_string();
    let name = "round_robin under reloads";
    let (run, rewrites) = tokio::join!(
        lab.load(name, &url, |plan| {
            plan.requests = u64::MAX;
            plan.duration = Some(RUN);
        }),
        rewrite_every_second(lab, restore, &group, &server)
    );
    let (run, (rewrites, generations)) = (run?, rewrites?);
    let first = generations.first().map_or(0.0, |&(_, g)| g) as u64;
    let last = generations.last().map_or(0.0, |&(_, g)| g) as u64;
    let failed = run.report.failed();
    let verdict = verdict::reload(rewrites, (first, last), run.report.requests, failed);
    let condition = format!(
        "While round robin loads /data (cache bypassed) for {} s, the config file is rewritten every {} s (the weight \
         of {server} in [upstreams.{group}] alternates, which round robin ignores) and reloaded through \
         POST /admin/reload; the original file is put back afterwards.",
        RUN.as_secs(),
        EVERY.as_secs()
    );
    let statuses: Vec<String> = run
        .report
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}={count}"))
        .collect();
    let requests = run.report.requests;
    let mut section = Section::new(Scenario::ReloadUnderLoad, condition, vec![run], verdict)?;
    section.tables.push(Table {
        title: "Reloads during the run".to_owned(),
        header: [
            "rewrites",
            "generation before",
            "generation after",
            "requests",
            "failed",
            "statuses",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: vec![vec![
            rewrites.to_string(),
            first.to_string(),
            last.to_string(),
            requests.to_string(),
            failed.to_string(),
            statuses.join(" "),
        ]],
    });
    let svg = line_chart(
        "reload-under-load: config generation over time",
        "seconds into the run",
        "generation",
        &[Line {
            name: "generation".to_owned(),
            points: generations,
        }],
    )?;
    section.figure("generations", "Config generation over time", svg);
    Ok(section)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_rewrite_changes_the_weight_of_the_server() {
        let mut table: toml::Table =
            "[upstreams.gateways]\nservers = [{addr = \"a:1\"}, {addr = \"a:2\", weight = 1}]"
                .parse()
                .unwrap();
        for n in 0..3 {
            set_weight(&mut table, "gateways", "a:2", weight(n)).unwrap();
            let servers = table["upstreams"]["gateways"]["servers"]
                .as_array()
                .unwrap();
            assert_eq!(servers[1]["weight"].as_integer(), Some(weight(n)));
            assert!(servers[0].get("weight").is_none());
        }
        assert_ne!(weight(0), weight(1));
        assert!(set_weight(&mut table, "gateways", "a:9", 1).is_err());
    }
}

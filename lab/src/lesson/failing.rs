//! `failing-server`: one gateway fails half its requests, then dies (hangs, and its `/health` fails), then comes
//! back, all during one run; the run is repeated without retries. Shows what clients saw in each phase, and how
//! long the health checks took to eject the gateway and to take it back.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::knobs::{group_of, table_at};
use super::verdict::{self, FailingRun};
use super::{Lab, LessonError, Restore, Section, Table};
use crate::bench::{build_url, RunReport};
use crate::scenario::Scenario;

/// The proxy's read timeout during the lesson: short, so a request to the hung gateway fails (or is retried)
/// within a second, long enough for any healthy answer.
const READ_TIMEOUT: &str = "1s";

/// How often the proxy's view of the failing gateway is polled.
const POLL: Duration = Duration::from_millis(100);

/// The health check of the gateways' group, from `/admin/upstreams`.
#[derive(Debug, Clone, PartialEq)]
struct Health {
    group: String,
    interval: Duration,
    healthy_threshold: u64,
    unhealthy_threshold: u64,
    retries: u64,
}

/// Reads the health check and retries of the group that holds `server`.
fn health(upstreams: &Value, server: &str) -> Result<Health, String> {
    let group =
        group_of(upstreams, server).ok_or_else(|| format!("no upstream group holds {server}"))?;
    let check = &group["health_check"];
    let interval = check["interval"]
        .as_str()
        .ok_or_else(|| format!("the group of {server} has no active health check"))?;
    Ok(Health {
        group: group["name"].as_str().unwrap_or_default().to_owned(),
        interval: humantime::parse_duration(interval).map_err(|error| error.to_string())?,
        healthy_threshold: check["healthy_threshold"].as_u64().unwrap_or(1),
        unhealthy_threshold: check["unhealthy_threshold"].as_u64().unwrap_or(1),
        retries: group["retries"].as_u64().unwrap_or(0),
    })
}

/// When each phase starts, from the start of the run, and when the run ends: two intervals of normal traffic,
/// three of half failures, long enough dead for the unhealthy threshold to be reached, and long enough back for
/// the healthy one.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Phases {
    half: Duration,
    dead: Duration,
    back: Duration,
    end: Duration,
}

impl Phases {
    fn of(health: &Health) -> Phases {
        let interval = health.interval;
        let times = |n: u64| interval * u32::try_from(n).unwrap_or(u32::MAX);
        let half = times(2);
        let dead = half + times(3);
        let back = dead + times(health.unhealthy_threshold + 2);
        Phases {
            half,
            dead,
            back,
            end: back + times(health.healthy_threshold + 3),
        }
    }
}

/// The proxy's retries of `group` so far, `(recovered, exhausted)`, from its Prometheus exposition.
fn retries_so_far(metrics: &str, group: &str) -> (u64, u64) {
    let upstream = format!("upstream=\"{group}\"");
    let mut counts = (0, 0);
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("scalelab_upstream_retries_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        if !labels.split(',').any(|label| label == upstream) {
            continue;
        }
        let value = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        if labels.contains("outcome=\"recovered\"") {
            counts.0 += value;
        } else {
            counts.1 += value;
        }
    }
    counts
}

/// Failed requests of `run` in the buckets that start within `from..to`.
fn failed_between(run: &RunReport, from: Duration, to: Duration) -> u64 {
    run.report
        .timeline
        .buckets
        .iter()
        .filter(|bucket| (from.as_secs_f64()..to.as_secs_f64()).contains(&bucket.t_s))
        .map(|bucket| bucket.failed())
        .sum()
}

/// Whether the proxy currently routes to `server`.
async fn available(lab: &Lab, server: &str) -> Option<bool> {
    let upstreams = lab.knobs.admin("/admin/upstreams").await.ok()?;
    upstreams["upstreams"]
        .as_array()?
        .iter()
        .flat_map(|group| group["servers"].as_array().into_iter().flatten())
        .find(|s| s["addr"] == server)
        .and_then(|s| s["available"].as_bool())
}

/// Turns the gateway's chaos knobs on schedule and watches the proxy's view of it; returns the seconds from its
/// death to its ejection and from its recovery to its return.
async fn script(
    lab: &Lab,
    restore: &mut Restore,
    port: u16,
    phases: Phases,
) -> Result<(Option<f64>, Option<f64>), LessonError> {
    let server = lab.knobs.gateway_addr(port);
    let start = Instant::now();
    let steps = [
        (phases.half, json!({"error_rate": 0.5})),
        (
            phases.dead,
            json!({"error_rate": 0.0, "latency_ms": 30_000, "fail_health": true}),
        ),
        (
            phases.back,
            json!({"error_rate": 0.0, "latency_ms": 0, "fail_health": false}),
        ),
    ];
    let (mut ejected, mut back) = (None, None);
    let mut next = 0;
    while start.elapsed() < phases.end {
        if let Some((at, patch)) = steps.get(next) {
            if start.elapsed() >= *at {
                lab.knobs.chaos(restore, port, patch.clone()).await?;
                next += 1;
            }
        }
        let now = start.elapsed();
        let up = available(lab, &server).await;
        if now >= phases.dead && now < phases.back && ejected.is_none() && up == Some(false) {
            ejected = Some((now - phases.dead).as_secs_f64());
        }
        if now >= phases.back && back.is_none() && up == Some(true) {
            back = Some((now - phases.back).as_secs_f64());
        }
        tokio::time::sleep(POLL).await;
    }
    Ok((ejected, back))
}

/// Sets the group's read timeout and retries.
fn set_retries(table: &mut toml::Table, group: &str, retries: u64) -> Result<(), String> {
    let upstream = table_at(table, &format!("upstreams.{group}"))?;
    upstream.insert(
        "read_timeout".to_owned(),
        toml::Value::String(READ_TIMEOUT.to_owned()),
    );
    upstream.insert(
        "retries".to_owned(),
        toml::Value::Integer(i64::try_from(retries).unwrap_or(i64::MAX)),
    );
    Ok(())
}

/// `failing-server`.
pub async fn failing_server(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let port = super::balance::watched(lab)?;
    let server = lab.knobs.gateway_addr(port);
    let health =
        health(&lab.knobs.admin("/admin/upstreams").await?, &server).map_err(LessonError::Knob)?;
    let phases = Phases::of(&health);
    let retries = health.retries.max(2);
    let url = build_url(&lab.knobs.proxy("/data"), Some("round_robin"), true)?.to_string();
    let mut runs = Vec::new();
    let mut results = Vec::new();
    let mut retried = Vec::new();
    for (name, retries) in [
        (format!("retries={retries}"), retries),
        ("no retries".to_owned(), 0),
    ] {
        lab.knobs
            .rewrite_config(restore, |table| set_retries(table, &health.group, retries))
            .await?;
        let before = retries_so_far(&lab.knobs.admin_text("/metrics").await?, &health.group);
        let (run, watched) = tokio::join!(
            lab.load(&name, &url, |plan| {
                plan.requests = u64::MAX;
                plan.duration = Some(phases.end);
            }),
            script(lab, restore, port, phases)
        );
        let (run, (ejected_after, back_after)) = (run?, watched?);
        let after = retries_so_far(&lab.knobs.admin_text("/metrics").await?, &health.group);
        retried.push((
            after.0.saturating_sub(before.0),
            after.1.saturating_sub(before.1),
        ));
        results.push(FailingRun {
            name: name.clone(),
            failed_half: failed_between(&run, phases.half, phases.dead),
            failed_dead: failed_between(&run, phases.dead, phases.back),
            failed: run.report.failed(),
            requests: run.report.requests,
            ejected_after,
            back_after,
        });
        runs.push(run);
    }
    let verdict = verdict::failing_server(&results);
    let s = |duration: Duration| format!("{:.0} s", duration.as_secs_f64());
    let condition = format!(
        "Round robin over the gateways, cache bypassed, read timeout {READ_TIMEOUT} (a config rewrite, restored \
         afterwards). Gateway {server} works for {}, fails half its requests with 500 until {}, then hangs with its \
         /health failing until {}, then works again until {}. Health checks every {} (unhealthy after {} failures, \
         healthy after {} successes). The run is repeated with retries off.",
        s(phases.half),
        s(phases.dead),
        s(phases.back),
        s(phases.end),
        humantime::format_duration(health.interval),
        health.unhealthy_threshold,
        health.healthy_threshold
    );
    let mut section = Section::new(Scenario::FailingServer, condition, runs, verdict)?;
    let seconds = |value: Option<f64>| value.map_or("never".to_owned(), |s| format!("{s:.1} s"));
    section.tables.push(Table {
        title: "Failures by phase and the health checks' timing".to_owned(),
        header: [
            "run",
            "failed (half failing)",
            "failed (dead)",
            "failed (all)",
            "requests",
            "ejected after",
            "back after",
            "retries recovered",
            "retries exhausted",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: results
            .iter()
            .zip(&retried)
            .map(|(run, (recovered, exhausted))| {
                vec![
                    run.name.clone(),
                    run.failed_half.to_string(),
                    run.failed_dead.to_string(),
                    run.failed.to_string(),
                    run.requests.to_string(),
                    seconds(run.ejected_after),
                    seconds(run.back_after),
                    recovered.to_string(),
                    exhausted.to_string(),
                ]
            })
            .collect(),
    });
    section.share_figures()?;
    Ok(section)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn health_and_phases_come_from_the_group_of_the_server() {
        let upstreams = json!({"upstreams": [
            {"name": "worker", "servers": [{"addr": "w:1"}], "health_check": {"interval": "9s"}},
            {"name": "gateways", "retries": 2, "servers": [{"addr": "g:1"}, {"addr": "g:2"}],
             "health_check": {"interval": "2s", "healthy_threshold": 2, "unhealthy_threshold": 3}}
        ]});
        let found = health(&upstreams, "g:2").unwrap();
        assert_eq!(found.group, "gateways");
        assert_eq!(
            (
                found.healthy_threshold,
                found.unhealthy_threshold,
                found.retries
            ),
            (2, 3, 2)
        );
        let phases = Phases::of(&found);
        let s = Duration::from_secs;
        assert_eq!(
            (phases.half, phases.dead, phases.back, phases.end),
            (s(4), s(10), s(20), s(30))
        );
        assert!(health(&upstreams, "g:9").is_err());
        let unchecked = json!({"upstreams": [{"name": "x", "servers": [{"addr": "g:1"}], "health_check": null}]});
        assert!(health(&unchecked, "g:1")
            .unwrap_err()
            .contains("no active health check"));
    }

    #[test]
    fn retries_are_read_from_the_exposition() {
        let metrics = "# HELP scalelab_upstream_retries_total Retries.\n\
            scalelab_upstream_retries_total{outcome=\"recovered\",upstream=\"gateways\"} 50\n\
            scalelab_upstream_retries_total{outcome=\"exhausted\",upstream=\"gateways\"} 3\n\
            scalelab_upstream_retries_total{outcome=\"recovered\",upstream=\"worker\"} 7\n\
            scalelab_upstream_retries_total_other{upstream=\"gateways\"} 9\n";
        assert_eq!(retries_so_far(metrics, "gateways"), (50, 3));
        assert_eq!(retries_so_far(metrics, "worker"), (7, 0));
        assert_eq!(retries_so_far(metrics, "none"), (0, 0));
    }

    #[test]
    fn retries_and_read_timeout_are_written_to_the_group() {
        let mut table: toml::Table = "[upstreams.gateways]\nretries = 2".parse().unwrap();
        set_retries(&mut table, "gateways", 0).unwrap();
        let group = &table["upstreams"]["gateways"];
        assert_eq!(group["retries"].as_integer(), Some(0));
        assert_eq!(group["read_timeout"].as_str(), Some("1s"));
    }
}

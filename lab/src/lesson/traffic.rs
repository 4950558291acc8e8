//! The traffic-management lessons of issue 28: `latency-aware` (one gateway slowed with jitter; round robin,
//! least connections, p2c and peak EWMA compared) and `bad-server` (one gateway answers 500 to 30% of its
//! requests while its `/health` passes; without and with outlier detection).

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::balance::{balance, data_url, set_weights, watched};
use super::knobs::table_at;
use super::verdict::traffic::{self, BadServerRun};
use super::verdict::Balance;
use super::{Lab, LessonError, Restore, Section, Table};
use crate::scenario::Scenario;

/// The strategies `latency-aware` compares, round robin first (the baseline).
pub const LATENCY_STRATEGIES: [&str; 4] = ["round_robin", "least_connections", "p2c", "ewma"];

/// The bad gateway's share of 500 answers in `bad-server`.
const BAD_ERROR_RATE: f64 = 0.3;

/// How often the proxy's view of the bad gateway is polled.
const POLL: Duration = Duration::from_millis(100);

/// `latency-aware`: as `slow-server`, with the latency-aware strategies.
pub async fn latency_aware(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let port = watched(lab)?;
    let slow = lab.knobs.gateway_addr(port);
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
    for strategy in LATENCY_STRATEGIES {
        runs.push(
            lab.load(strategy, &data_url(lab, strategy)?, |_| {})
                .await?,
        );
    }
    let balances: Vec<Balance> = runs.iter().map(|run| balance(run, &slow)).collect();
    let verdict = traffic::latency_aware(&slow, &balances);
    let condition = format!(
        "Gateway {slow} answers {} to {} ms late (chaos latency_ms and latency_jitter_ms); the others are \
         unchanged, every gateway has the same weight (a config rewrite, restored afterwards), and every request \
         bypasses the cache. The same load runs once per strategy ({}), chosen per request with ?strategy=.",
        lab.slow_ms,
        lab.slow_ms * 2,
        LATENCY_STRATEGIES.join(", ")
    );
    let mut section = Section::new(Scenario::LatencyAware, condition, runs, verdict)?;
    section.share_figures()?;
    Ok(section)
}

/// Whether the proxy holds `server` out by a passive ejection now.
async fn ejected(lab: &Lab, server: &str) -> Option<bool> {
    let upstreams = lab.knobs.admin("/admin/upstreams").await.ok()?;
    upstreams["upstreams"]
        .as_array()?
        .iter()
        .flat_map(|group| group["servers"].as_array().into_iter().flatten())
        .find(|s| s["addr"] == server)
        .and_then(|s| s["ejected"].as_bool())
}

/// Turns outlier detection on the gateways' group on (short ejections, so the lab is whole again soon after
/// the lesson) or off.
fn set_outlier(table: &mut toml::Table, on: bool) -> Result<(), String> {
    let group = table_at(table, "upstreams.gateways")?;
    if on {
        let outlier: toml::Table =
            "consecutive_5xx = 3\nbase_ejection = \"2s\"\nmax_ejection = \"50%\"\n\
             error_rate = { threshold = \"20%\", min_requests = 10, window = \"10s\" }"
                .parse()
                .map_err(|error| format!("{error}"))?;
        group.insert("outlier".to_owned(), toml::Value::Table(outlier));
    } else {
        group.remove("outlier");
    }
    Ok(())
}

/// `bad-server`.
pub async fn bad_server(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let port = watched(lab)?;
    let bad = lab.knobs.gateway_addr(port);
    lab.knobs
        .chaos(restore, port, json!({"error_rate": BAD_ERROR_RATE}))
        .await?;
    let url = data_url(lab, "round_robin")?;
    let (mut runs, mut results) = (Vec::new(), Vec::new());
    for (name, on) in [("no outlier detection", false), ("outlier detection", true)] {
        lab.knobs
            .rewrite_config(restore, |table| set_outlier(table, on))
            .await?;
        let started = Instant::now();
        let watch = async {
            loop {
                if ejected(lab, &bad).await == Some(true) {
                    return started.elapsed().as_secs_f64();
                }
                tokio::time::sleep(POLL).await;
            }
        };
        let load = lab.load(name, &url, |_| {});
        tokio::pin!(load);
        let (run, ejected_after) = tokio::select! {
            run = &mut load => (run?, None),
            after = watch => ((&mut load).await?, Some(after)),
        };
        results.push(BadServerRun {
            name: name.to_owned(),
            requests: run.report.requests,
            failed: run.report.failed(),
            ejected_after,
        });
        runs.push(run);
    }
    // The next scenario starts from a whole lab: the gateway's last ejection ends within seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ejected(lab, &bad).await == Some(true) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let verdict = traffic::bad_server(&bad, &results);
    let condition = format!(
        "Gateway {bad} answers 500 to {} of its requests (chaos error_rate) while its /health keeps answering \
         200. Round robin, cache bypassed; the same load without outlier detection, then with `outlier = \
         {{ consecutive_5xx = 3, error_rate = {{ threshold = \"20%\", min_requests = 10, window = \"10s\" }}, \
         base_ejection = \"2s\" }}` on the gateways' group (config rewrites, restored afterwards).",
        super::verdict::pct(BAD_ERROR_RATE)
    );
    let mut section = Section::new(Scenario::BadServer, condition, runs, verdict)?;
    section.tables.push(Table {
        title: "Client errors and the ejection".to_owned(),
        header: ["run", "requests", "failed", "ejected after"]
            .map(str::to_owned)
            .to_vec(),
        rows: results
            .iter()
            .map(|run| {
                vec![
                    run.name.clone(),
                    run.requests.to_string(),
                    run.failed.to_string(),
                    run.ejected_after
                        .map_or("never".to_owned(), |s| format!("{s:.1} s")),
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
    fn outlier_detection_is_written_and_removed() {
        let mut table: toml::Table = "[upstreams.gateways]\nservers = []".parse().unwrap();
        set_outlier(&mut table, true).unwrap();
        let outlier = &table["upstreams"]["gateways"]["outlier"];
        assert_eq!(outlier["consecutive_5xx"].as_integer(), Some(3));
        assert_eq!(outlier["error_rate"]["threshold"].as_str(), Some("20%"));
        set_outlier(&mut table, false).unwrap();
        assert!(table["upstreams"]["gateways"].get("outlier").is_none());
    }
}

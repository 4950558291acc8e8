//! A real Prometheus (Debian's package; `scripts/install-deps.sh` installs it) on a free port,
//! scraping the given targets every second, with its data in a temporary directory: for tests
//! that must show what a dashboard really reads (`rate()`, `increase()`), not what an
//! exposition says.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::patience::patient;
use crate::poll::eventually;
use crate::ports::free_port;
use crate::process::ChildGuard;

/// How often the test Prometheus scrapes its targets.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// A running Prometheus, killed on drop.
pub struct Prometheus {
    _process: ChildGuard,
    base: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping `metrics_path` on each `host:port` of `targets`
    /// under the job `job`, and waits until its HTTP API answers.
    ///
    /// # Panics
    /// Prometheus is not installed or does not answer in time.
    pub async fn start(
        dir: &Path,
        job: &str,
        targets: &[String],
        metrics_path: &str,
    ) -> Prometheus {
        Prometheus::start_with_features(dir, job, targets, metrics_path, &[]).await
    }

    /// As `start`, with Prometheus' `--enable-feature` flags (such as `exemplar-storage`).
    ///
    /// # Panics
    /// Prometheus is not installed or does not answer in time.
    pub async fn start_with_features(
        dir: &Path,
        job: &str,
        targets: &[String],
        metrics_path: &str,
        features: &[&str],
    ) -> Prometheus {
        let port = free_port();
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: {interval}s\n  evaluation_interval: {interval}s\n\
             scrape_configs:\n  - job_name: '{job}'\n    metrics_path: '{metrics_path}'\n    \
             static_configs:\n      - targets: [{targets}]\n",
            interval = SCRAPE_INTERVAL.as_secs(),
            targets = quoted.join(", "),
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        if !features.is_empty() {
            command.arg(format!("--enable-feature={}", features.join(",")));
        }
        let process =
            ChildGuard::spawn_logged(&mut command, &dir.join("prometheus.log"), "prometheus");
        let prometheus = Prometheus {
            _process: process,
            base: format!("http://127.0.0.1:{port}"),
            http: crate::http::client(Duration::from_secs(5)),
        };
        let ready = format!("{}/-/ready", prometheus.base);
        let http = prometheus.http.clone();
        eventually(
            patient(Duration::from_secs(20)),
            "Prometheus to be ready",
            || {
                let http = http.clone();
                let ready = ready.clone();
                async move {
                    let response = http.get(&ready).send().await.ok()?;
                    response.status().is_success().then_some(())
                }
            },
        )
        .await;
        prometheus
    }

    /// The raw samples (Unix seconds, value) of the first series `selector` matches over the
    /// last `window` (a PromQL duration such as `1m`), oldest first.
    pub async fn samples(&self, selector: &str, window: &str) -> Vec<(f64, f64)> {
        let body = self.api(&format!("{selector}[{window}]"), None).await;
        body["data"]["result"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pair| Some((pair[0].as_f64()?, pair[1].as_str()?.parse().ok()?)))
            .collect()
    }

    async fn api(&self, query: &str, time: Option<f64>) -> serde_json::Value {
        let mut params = vec![("query", query.to_string())];
        if let Some(time) = time {
            params.push(("time", format!("{time:.3}")));
        }
        let body: serde_json::Value = self
            .http
            .get(format!("{}/api/v1/query", self.base))
            .query(&params)
            .send()
            .await
            .expect("query Prometheus")
            .json()
            .await
            .expect("Prometheus answers JSON");
        assert_eq!(body["status"], "success", "{query}: {body}");
        body
    }

    /// The exemplars of the series `query` selects over the last `window_seconds`
    /// (`/api/v1/query_exemplars`): each series' labels and its exemplars' labels, values and
    /// timestamps, as Prometheus answers them.
    pub async fn exemplars(&self, query: &str, window_seconds: f64) -> Vec<serde_json::Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs_f64();
        let body: serde_json::Value = self
            .http
            .get(format!("{}/api/v1/query_exemplars", self.base))
            .query(&[
                ("query", query.to_string()),
                ("start", format!("{:.3}", now - window_seconds)),
                ("end", format!("{:.3}", now + 1.0)),
            ])
            .send()
            .await
            .expect("query Prometheus' exemplars")
            .json()
            .await
            .expect("Prometheus answers JSON");
        assert_eq!(body["status"], "success", "{query}: {body}");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The scrape targets' state (`/api/v1/targets`' active targets: health, last error).
    pub async fn targets(&self) -> Vec<serde_json::Value> {
        let body: serde_json::Value = self
            .http
            .get(format!("{}/api/v1/targets", self.base))
            .send()
            .await
            .expect("ask Prometheus for its targets")
            .json()
            .await
            .expect("Prometheus answers JSON");
        body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The samples of an instant query evaluated at `time` (Unix seconds, or now): each
    /// series' labels and value.
    pub async fn query(&self, query: &str, time: Option<f64>) -> Vec<(serde_json::Value, f64)> {
        self.api(query, time).await["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|sample| {
                let value = sample["value"][1].as_str()?.parse().ok()?;
                Some((sample["metric"].clone(), value))
            })
            .collect()
    }
}

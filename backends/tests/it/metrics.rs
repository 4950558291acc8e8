//! Every backend binary's `/metrics` after some traffic: `promtool check metrics` finds nothing to complain about,
//! each backend exports exactly the metric families the Grafana dashboard is written against, and the traffic shows
//! up in the series it should.

use std::collections::BTreeSet;
use std::path::Path;

use std::time::Duration;

use serde_json::json;

use crate::harness::{client, eventually, get_json, Backend};

pub const DATABASE: &str = env!("CARGO_BIN_EXE_scalelab-database");
pub const GATEWAY: &str = env!("CARGO_BIN_EXE_scalelab-gateway");
pub const MICROSERVICE: &str = env!("CARGO_BIN_EXE_scalelab-microservice");
const WORKER: &str = env!("CARGO_BIN_EXE_scalelab-worker");

/// The `[auth]` table the gateway reads from its config file, as the lab's config has one.
pub const AUTH_TABLE: &str = r#"
[auth]
algorithms = ["HS256"]
secret = "metrics-test-secret-metrics-test-secret"
issuer = "scalelab"
audience = "scalelab-lab"
leeway = "5s"
"#;

/// The families every backend exports through `Instance`: its HTTP metrics and the process collector's.
const COMMON: &[&str] = &[
    "scalelab_backend_http_requests_total",
    "scalelab_backend_http_request_duration_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
    // The process collector's other standard series come along with it.
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_threads",
];

/// The families only one kind of backend exports.
const GATEWAY_ONLY: &[&str] = &[
    "scalelab_gateway_dependency_requests_total",
    "scalelab_gateway_dependency_duration_seconds",
    "scalelab_gateway_local_cache_requests_total",
];
const DATABASE_ONLY: &[&str] = &["scalelab_database_query_duration_seconds"];
const WORKER_ONLY: &[&str] = &[
    "scalelab_worker_queue_depth",
    "scalelab_worker_tasks_total",
    "scalelab_worker_task_wait_seconds",
    "scalelab_worker_task_run_seconds",
    "scalelab_worker_pool_size",
];

const PRIORITIES: [&str; 3] = ["high", "normal", "low"];

/// One scrape of a backend's `/metrics`.
struct Scrape {
    backend: &'static str,
    text: String,
}

impl Scrape {
    async fn of(client: &reqwest::Client, backend: &'static str, url: &str) -> Self {
        let response = client.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{backend} /metrics");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{backend}: {content_type}"
        );
        Self {
            backend,
            text: response.text().await.unwrap(),
        }
    }

    /// The metric families declared by `# TYPE` lines.
    fn families(&self) -> BTreeSet<&str> {
        self.text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect()
    }

    /// The value of one series, written as in the exposition (labels sorted by name).
    fn value(&self, series: &str) -> f64 {
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{}: no {series} in\n{}", self.backend, self.text))
            .parse()
            .unwrap()
    }

    fn assert_value(&self, series: &str, expected: f64) {
        assert_eq!(self.value(series), expected, "{}: {series}", self.backend);
    }

    fn assert_families(&self, only: &[&str]) {
        let expected: BTreeSet<&str> = COMMON.iter().chain(only).copied().collect();
        assert_eq!(self.families(), expected, "{}", self.backend);
    }

    /// The process series hold plausible values, so the collector really read `/proc`.
    fn assert_process_series(&self) {
        assert!(self.value("process_cpu_seconds_total") >= 0.0);
        assert!(self.value("process_resident_memory_bytes") > 0.0);
        assert!(self.value("process_open_fds") > 0.0);
        // After 2001-09-09 and not in the future: a unix time in seconds, not ticks or milliseconds.
        let started = self.value("process_start_time_seconds");
        let now = scalelab_common::clock::unix_secs_f64();
        assert!(
            (1e9..=now + 1.0).contains(&started),
            "{}: {started}",
            self.backend
        );
    }

    /// Runs `promtool check metrics` on the scrape; it must exit 0 and print nothing.
    fn assert_promtool_clean(&self) {
        scalelab_test_support::assert_promtool_clean(self.backend, &self.text);
    }
}

fn http_requests(route: &str, method: &str, code: u16) -> String {
    format!(
        r#"scalelab_backend_http_requests_total{{code="{code}",method="{method}",route="{route}"}}"#
    )
}

/// A token for the gateway, minted from the same `[auth]` table its config file holds.
pub fn token(config_dir: &Path) -> String {
    let table = scalelab_auth::parse_config_toml(AUTH_TABLE)
        .unwrap()
        .unwrap();
    let settings = scalelab_auth::validate(&table, config_dir).unwrap();
    scalelab_auth::mint(&settings, "metrics-test", Duration::from_secs(600)).unwrap()
}

#[tokio::test]
async fn every_backend_exports_a_clean_exposition_with_the_dashboard_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let database = Backend::start(
        DATABASE,
        &[
            "--data-dir",
            data,
            "--latency-min-ms",
            "0",
            "--latency-max-ms",
            "0",
        ],
        dir.path(),
    )
    .await;
    let microservice = Backend::start(MICROSERVICE, &[], dir.path()).await;
    let worker = Backend::start(WORKER, &["--data-dir", data, "--workers", "3"], dir.path()).await;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, AUTH_TABLE).unwrap();
    let gateway = Backend::start(
        GATEWAY,
        &[
            "--database",
            &database.url,
            "--microservice",
            &microservice.url,
            "--worker",
            &worker.url,
            "--config",
            config.to_str().unwrap(),
        ],
        dir.path(),
    )
    .await;
    let client = client();
    let bearer = format!("Bearer {}", token(dir.path()));

    // Through the gateway: /data counts the items, /data/complex reads one item and calls the microservice, and
    // one /longtask per priority reaches the worker.
    for path in ["/data", "/data/complex?id=1"] {
        let response = client
            .get(format!("{}{path}", gateway.url))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    for priority in PRIORITIES {
        let response = client
            .post(format!("{}/longtask?priority={priority}", gateway.url))
            .header("authorization", &bearer)
            .json(&json!({ "task_type": "quick", "duration": 0.01 }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{priority}");
    }
    // Directly: one write, the database's third kind of query.
    let response = client
        .put(format!("{}/items/7", database.url))
        .json(&json!({ "name": "written" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually("the three tasks to complete", || async {
        let (_, stats) = get_json(&client, &format!("{}/stats", worker.url)).await;
        (stats["completed_tasks"] == 3).then_some(())
    })
    .await;

    let gateway = Scrape::of(&client, "gateway", &gateway.url).await;
    let database = Scrape::of(&client, "database", &database.url).await;
    let microservice = Scrape::of(&client, "microservice", &microservice.url).await;
    let worker = Scrape::of(&client, "worker", &worker.url).await;

    for scrape in [&gateway, &database, &microservice, &worker] {
        scrape.assert_promtool_clean();
        scrape.assert_process_series();
    }
    gateway.assert_families(GATEWAY_ONLY);
    database.assert_families(DATABASE_ONLY);
    microservice.assert_families(&[]);
    worker.assert_families(WORKER_ONLY);

    gateway.assert_value(&http_requests("/data", "GET", 200), 1.0);
    gateway.assert_value(&http_requests("/longtask", "POST", 202), 3.0);
    gateway.assert_value(
        r#"scalelab_backend_http_request_duration_seconds_count{route="/data/complex"}"#,
        1.0,
    );
    for (dependency, calls) in [("database", 2.0), ("microservice", 1.0), ("worker", 3.0)] {
        gateway.assert_value(
            &format!(
                r#"scalelab_gateway_dependency_requests_total{{dependency="{dependency}",outcome="ok"}}"#
            ),
            calls,
        );
        for outcome in ["error", "timeout"] {
            gateway.assert_value(
                &format!(
                    r#"scalelab_gateway_dependency_requests_total{{dependency="{dependency}",outcome="{outcome}"}}"#
                ),
                0.0,
            );
        }
        gateway.assert_value(
            &format!(
                r#"scalelab_gateway_dependency_duration_seconds_count{{dependency="{dependency}"}}"#
            ),
            calls,
        );
    }

    // The local cache is off by default: it counts nothing, and both series exist.
    for result in ["hit", "miss"] {
        gateway.assert_value(
            &format!(r#"scalelab_gateway_local_cache_requests_total{{result="{result}"}}"#),
            0.0,
        );
    }

    database.assert_value(&http_requests("/items/{id}", "PUT", 200), 1.0);
    for query in ["count_items", "get_item", "upsert_item"] {
        database.assert_value(
            &format!(r#"scalelab_database_query_duration_seconds_count{{query="{query}"}}"#),
            1.0,
        );
    }

    microservice.assert_value(&http_requests("/process", "GET", 200), 1.0);

    worker.assert_value(&http_requests("/tasks", "POST", 202), 3.0);
    worker.assert_value("scalelab_worker_pool_size", 3.0);
    for priority in PRIORITIES {
        let label = format!(r#"priority="{priority}""#);
        worker.assert_value(&format!("scalelab_worker_queue_depth{{{label}}}"), 0.0);
        worker.assert_value(
            &format!(r#"scalelab_worker_tasks_total{{outcome="completed",{label}}}"#),
            1.0,
        );
        worker.assert_value(
            &format!(r#"scalelab_worker_tasks_total{{outcome="failed",{label}}}"#),
            0.0,
        );
        worker.assert_value(
            &format!("scalelab_worker_task_wait_seconds_count{{{label}}}"),
            1.0,
        );
        worker.assert_value(
            &format!("scalelab_worker_task_run_seconds_count{{{label}}}"),
            1.0,
        );
    }
    worker.assert_value(
        r#"scalelab_worker_tasks_total{outcome="rejected",priority="none"}"#,
        0.0,
    );
}

/// Before any task, every priority already has its queue depth at zero, so dashboard queries return data at once.
#[tokio::test]
async fn a_fresh_worker_exports_every_priority_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let worker = Backend::start(WORKER, &["--data-dir", data, "--workers", "2"], dir.path()).await;
    let scrape = Scrape::of(&client(), "worker", &worker.url).await;
    scrape.assert_promtool_clean();
    scrape.assert_families(WORKER_ONLY);
    for priority in PRIORITIES {
        scrape.assert_value(
            &format!(r#"scalelab_worker_queue_depth{{priority="{priority}"}}"#),
            0.0,
        );
    }
    scrape.assert_value("scalelab_worker_pool_size", 2.0);
}

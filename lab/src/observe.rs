//! `scalelab up --observe`: a real Prometheus as one more supervised child, scraping the lab where it actually
//! listens, and the links that open the first questions worth asking of it.
//!
//! The scrape config is generated from the `[lab]` table and `[proxy] admin_listen` rather than copied from
//! `grafana/prometheus.yml`: that file's targets match only the default ports, and a user who moves a gateway
//! would otherwise watch a dead target. The job names are the file's, so the shipped dashboard works with both.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::labfile::LabFile;
use crate::plan::{ChildSpec, Stage};

/// The job that scrapes the proxy's admin listener.
pub const PROXY_JOB: &str = "scalelab-proxy";
/// The job that scrapes the gateways, the microservice and the database.
pub const BACKENDS_JOB: &str = "scalelab-backends";
/// The job that scrapes the priority worker.
pub const WORKER_JOB: &str = "scalelab-worker";

/// How often the generated config scrapes. A lab on one machine can afford it, and a second keeps a fresh
/// request visible in a `rate(...[1m])` almost at once instead of after the 5 s of the static file.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// Prometheus's usual port, taken when it is free so that Grafana's shipped datasource finds this Prometheus.
pub const PREFERRED_PORT: u16 = 9090;

/// The name of the child in logs and reports.
pub const CHILD_NAME: &str = "prometheus";

/// The queries `up --observe` prints as ready-made links: a title and the PromQL.
pub const QUERIES: [(&str, &str); 3] = [
    (
        "requests/s by route",
        "sum by (route) (rate(scalelab_http_requests_total[1m]))",
    ),
    (
        "p95 latency by route",
        "histogram_quantile(0.95, sum by (route, le) (rate(scalelab_http_request_duration_seconds_bucket[1m])))",
    ),
    (
        "selections/s per server",
        "sum by (server) (rate(scalelab_upstream_selections_total[1m]))",
    ),
];

/// Why `--observe` cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(
        "`prometheus` was not found in PATH, and `up --observe` runs it; install it with `make deps` \
         (or `bash scripts/install-deps.sh --observe`) or `apt-get install prometheus`"
    )]
    Missing,
    #[error("cannot find a free port for Prometheus: {0}")]
    Port(std::io::Error),
    #[error("cannot write Prometheus's config {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One scrape job: its name and its `host:port` targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub name: &'static str,
    pub targets: Vec<String>,
}

/// The jobs of `grafana/prometheus.yml`, with the targets where the lab described by `file` listens.
pub fn jobs(file: &LabFile) -> Vec<Job> {
    let lab = &file.lab;
    let backends = lab
        .gateways
        .iter()
        .chain([&lab.microservice, &lab.database])
        .map(|&port| target(&file.backend_url(port)))
        .collect();
    vec![
        Job {
            name: PROXY_JOB,
            // Every proxy of a fleet (`fleet`), each its own `instance` on the dashboard.
            targets: crate::fleet::proxies(file)
                .iter()
                .map(|proxy| target(&proxy.admin_url))
                .collect(),
        },
        Job {
            name: BACKENDS_JOB,
            targets: backends,
        },
        Job {
            name: WORKER_JOB,
            targets: crate::fleet::worker_urls(file)
                .iter()
                .map(|url| target(url))
                .collect(),
        },
    ]
}

/// `127.0.0.1:5000` from `http://127.0.0.1:5000`: Prometheus wants targets without a scheme.
fn target(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// The scrape config for `jobs`, as YAML.
pub fn scrape_config(jobs: &[Job]) -> String {
    let interval = SCRAPE_INTERVAL.as_secs();
    let mut text = format!(
        "# Written by `scalelab up --observe` from the lab's config file at every start; edits are lost.\n\
         # grafana/prometheus.yml is the file to run Prometheus by hand.\n\
         global:\n  scrape_interval: {interval}s\n  evaluation_interval: {interval}s\nscrape_configs:\n"
    );
    for job in jobs {
        let targets: Vec<String> = job.targets.iter().map(|t| format!("\"{t}\"")).collect();
        text.push_str(&format!(
            "  - job_name: {}\n    static_configs:\n      - targets: [{}]\n",
            job.name,
            targets.join(", ")
        ));
    }
    text
}

/// The `prometheus` executable: the first in `path` (the value of `PATH`), resolved to the file itself so that
/// the pid file's leftover check, which compares `/proc/<pid>/exe`, recognises it.
pub fn find_binary(path: Option<&OsStr>) -> Result<PathBuf, ObserveError> {
    crate::plan::find_in_path(path, "prometheus")
        .map(|found| std::fs::canonicalize(&found).unwrap_or(found))
        .ok_or(ObserveError::Missing)
}

/// The port Prometheus listens on: `requested`, else 9090 when nothing listens there, else any free port.
///
/// The port is free when picked, not reserved; a process that takes it in the next instant makes Prometheus exit
/// before it is ready, which `up` reports like any child that dies on start.
pub fn pick_port(requested: Option<u16>) -> Result<u16, ObserveError> {
    if let Some(port) = requested {
        return Ok(port);
    }
    if TcpListener::bind((Ipv4Addr::LOCALHOST, PREFERRED_PORT)).is_ok() {
        return Ok(PREFERRED_PORT);
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(ObserveError::Port)
}

/// Where Prometheus keeps its config and its data: `<data_dir>/prometheus`, so a restarted `up` keeps the history.
pub fn home(file: &LabFile) -> PathBuf {
    file.data_dir.join("prometheus")
}

/// Writes the scrape config for the lab of `file` into `home` and returns its path.
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write_config(file: &LabFile, home: &Path) -> Result<PathBuf, ObserveError> {
    write_jobs(&jobs(file), home)
}

/// Writes the scrape config for `jobs` into `home` and returns its path (`up --dns` moves the
/// gateways' targets first).
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write_jobs(jobs: &[Job], home: &Path) -> Result<PathBuf, ObserveError> {
    let path = home.join("prometheus.yml");
    std::fs::create_dir_all(home)
        .and_then(|()| std::fs::write(&path, scrape_config(jobs)))
        .map_err(|source| ObserveError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// The base URL of a Prometheus on `port`. It listens on loopback only: the lab is a local tool, and its UI
/// and API should not be open to the network.
pub fn base_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The Prometheus child: `config` to scrape, its data in `home/data`, listening on `port`.
pub fn child(binary: &Path, config: &Path, home: &Path, port: u16) -> ChildSpec {
    let arg = |name: &str, value: &OsStr| {
        let mut arg = std::ffi::OsString::from(name);
        arg.push(value);
        arg
    };
    ChildSpec {
        name: CHILD_NAME.to_owned(),
        binary: binary.to_owned(),
        args: vec![
            arg("--config.file=", config.as_os_str()),
            arg("--storage.tsdb.path=", home.join("data").as_os_str()),
            format!("--web.listen-address=127.0.0.1:{port}").into(),
            // A bound on the disk a long-running lab uses; the history within it survives restarts of `up`.
            "--storage.tsdb.retention.size=1GB".into(),
            // The proxy's latency histogram carries exemplars (issue 29); Prometheus 2 keeps them only with this.
            "--enable-feature=exemplar-storage".into(),
            // Its start-up lines would bury the lab's own; warnings and errors still show.
            "--log.level=warn".into(),
        ],
        health_url: format!("{}/-/ready", base_url(port)),
        more_ports: Vec::new(),
        stage: Stage::Observe,
        env: Vec::new(),
    }
}

/// Checks an answer of `/api/v1/targets` against `jobs`: `Ok` when every target of every job is scraped and up,
/// otherwise the targets that are not, each with its state and last scrape error.
pub fn targets_pending(answer: &Value, jobs: &[Job]) -> Result<(), String> {
    let active = answer["data"]["activeTargets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut pending = Vec::new();
    for job in jobs {
        for instance in &job.targets {
            let found = active.iter().find(|t| {
                t["labels"]["job"] == job.name && t["labels"]["instance"] == instance.as_str()
            });
            match found {
                Some(t) if t["health"] == "up" => {}
                Some(t) => {
                    let health = t["health"].as_str().unwrap_or("unknown");
                    let error = t["lastError"].as_str().unwrap_or_default();
                    if error.is_empty() {
                        pending.push(format!("{} {instance} ({health})", job.name));
                    } else {
                        pending.push(format!("{} {instance} ({health}: {error})", job.name));
                    }
                }
                None => pending.push(format!("{} {instance} (not scraped yet)", job.name)),
            }
        }
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Prometheus does not see every target up: {}",
            pending.join(", ")
        ))
    }
}

/// A link that opens `expr` in the graph tab of the Prometheus UI at `base`, over the last 15 minutes.
pub fn graph_link(base: &str, expr: &str) -> String {
    format!(
        "{base}/graph?g0.expr={}&g0.tab=0&g0.range_input=15m",
        percent_encode(expr)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a query survives any terminal or browser.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The lines `up --observe` adds to its banner once Prometheus sees every target.
pub fn banner(base: &str) -> Vec<String> {
    let mut lines = vec![
        String::new(),
        format!(
            "watch it (Prometheus scrapes every target every {}s):",
            SCRAPE_INTERVAL.as_secs()
        ),
        format!("  prometheus   {base}"),
    ];
    for (title, expr) in QUERIES {
        lines.push(format!("  {title}:"));
        lines.push(format!("    {}", graph_link(base, expr)));
    }
    lines.push(
        "  dashboard: grafana/dashboards/scalelab.json (README, \"Watch it\": Grafana with docker compose)"
            .to_owned(),
    );
    lines
}

#[cfg(test)]
mod tests;

//! `scalelab up --observe` end to end: the whole lab and a real Prometheus on free ports with a temporary data dir.
//! Once `up` reports every target up, traffic produces every kind of event a dashboard panel shows (cache hits and
//! misses, refused tokens, a route miss, forward auth and an IP refusal, 5xx, tasks of each priority, a failed and
//! a rejected task, a health flip, a reload, a gateway killed so that connects are refused and retried, a canary
//! split, an outlier ejected from the canary group, mirrored copies), and then every query of
//! `grafana/dashboards/scalelab.json` (panels and annotations, Grafana's variables filled in) must return data,
//! and the URL and the links `up` printed must work.
#![allow(clippy::unwrap_used)]

mod support;
#[path = "observe/traffic.rs"]
mod traffic;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use scalelab_test_support::{blocking_client, free_ports, patient, percent_decode, Signal};
use serde_json::Value;
use support::{
    alive, assert_proxy_accepts_auth, build_siblings, cached_data_routes, children_of, lab_tail, Up,
};

/// The lab's ports, by role.
pub struct Ports {
    pub gateways: [u16; 3],
    pub microservice: u16,
    pub database: u16,
    pub worker: u16,
    pub proxy: u16,
    pub admin: u16,
    pub prometheus: u16,
    /// A UDP port no name server answers on, for the DNS row's series.
    pub dns: u16,
}

impl Ports {
    fn free() -> Ports {
        let p = free_ports(10);
        Ports {
            gateways: [p[0], p[1], p[2]],
            microservice: p[3],
            database: p[4],
            worker: p[5],
            proxy: p[6],
            admin: p[7],
            prometheus: p[8],
            dns: p[9],
        }
    }

    /// Every `host:port` Prometheus scrapes.
    fn targets(&self) -> Vec<u16> {
        let mut all = self.gateways.to_vec();
        all.extend([self.microservice, self.database, self.worker, self.admin]);
        all
    }
}

/// The lab's config: three gateways behind the proxy with fast health checks and retries, a small two-tier cache
/// (so objects move between tiers and fall out), and `shutdown_timeout` set to `shutdown` (a reload changes it).
pub fn config_text(ports: &Ports, shutdown: &str) -> String {
    let [g1, g2, g3] = ports.gateways;
    let dns = ports.dns;
    let (ms, db, worker, proxy, admin) = (
        ports.microservice,
        ports.database,
        ports.worker,
        ports.proxy,
        ports.admin,
    );
    format!(
        r#"
[proxy]
listen = ["127.0.0.1:{proxy}"]
admin_listen = "127.0.0.1:{admin}"
threads = 1
debug_headers = "on"
shutdown_timeout = "{shutdown}"

[admin]
token = {{ env = "SCALELAB_ADMIN_TOKEN", optional = true }}

[upstreams.gateways]
strategy = "round_robin"
servers = [ {{ addr = "127.0.0.1:{g1}" }}, {{ addr = "127.0.0.1:{g2}" }}, {{ addr = "127.0.0.1:{g3}" }} ]
connect_timeout = "1s"
read_timeout = "10s"
retries = 2

[upstreams.gateways.health_check]
path = "/health"
interval = "1s"
timeout = "1s"
healthy_threshold = 1
unhealthy_threshold = 2

[cache]
[[cache.tiers]]
name = "L1"
max_entries = 2
ttl = "60s"

[[cache.tiers]]
name = "L2"
max_entries = 3
ttl = "300s"

{routes}
[[routes]]
name = "longtask"
auth = "jwt"
path = "/longtask"
upstream = "gateways"

[[routes]]
name = "ws"
path = "/ws"
upstream = "gateways"

# Compressed for the compression row: a gateway's /health, gzip whatever its size.
[[routes]]
name = "compressed"
path = "/compressed"
strip_prefix = true
upstream = "gateways"
compress = {{ encodings = ["gzip"], min_bytes = 0 }}

# A canary split (pinned by X-Canary) whose group ejects an outlier, and a route mirrored to a
# shadow group, for the dashboard's balancer, canary and mirror panels.
[upstreams.canary]
servers = [ {{ addr = "127.0.0.1:{g1}" }}, {{ addr = "127.0.0.1:{g2}" }} ]
retries = 0
outlier = {{ consecutive_5xx = 1, base_ejection = "60s" }}
circuit = {{ max_requests = 64, max_pending = 16 }}

[upstreams.shadow]
servers = [ {{ addr = "127.0.0.1:{g1}" }} ]

# A group whose server is a name the (absent) name server never answers: the DNS row's series
# (resolutions by result, servers per group) are exported from the first resolution.
[dns]
resolvers = ["127.0.0.1:{dns}"]
timeout = "200ms"

[upstreams.named]
servers = [ {{ name = "nowhere.test", port = 1 }} ]

[[routes]]
name = "canary"
path = "/canary"
strip_prefix = true
upstream = [ {{ group = "gateways", weight = 50 }}, {{ group = "canary", weight = 50, match = {{ header."X-Canary" = "1" }} }} ]

[[routes]]
name = "mirrored"
path = "/mirrored"
strip_prefix = true
upstream = "gateways"
mirror = {{ group = "shadow", percent = 100 }}
[[routes]]
name = "whoami"
path = "/whoami"
upstream = "gateways"
auth = "forward"
forward = {{ upstream = "gateways", path = "/auth/verify", copy_request_headers = ["Authorization"], copy_response_headers = ["X-User"] }}
rewrite = {{ path_regex = "^/whoami$", to = "/health" }}

[[routes]]
name = "office"
path = "/office"
upstream = "gateways"
allow = ["10.0.0.0/8"]
"#,
        routes = cached_data_routes("complex_")
    ) + &lab_tail([g1, g2, g3], ms, db, worker)
}

/// The result of an instant query, or why there is none.
pub fn query(http: &Client, prometheus: &str, expr: &str) -> Result<Vec<Value>, String> {
    let answer: Value = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .and_then(reqwest::blocking::Response::json)
        .map_err(|error| error.to_string())?;
    if answer["status"] != "success" {
        return Err(answer.to_string());
    }
    answer["data"]["result"]
        .as_array()
        .cloned()
        .ok_or_else(|| answer.to_string())
}

/// Every query of the dashboard, panels first, then annotations, as written (with Grafana's variables).
fn dashboard_queries() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grafana/dashboards/scalelab.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    exprs.extend(
        dashboard["annotations"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["expr"].as_str().map(str::to_owned)),
    );
    exprs
}

/// `expr` with Grafana's variables as the dashboard's defaults ("All") and macros as Grafana would fill them in.
fn fill(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        // Annotations look back over the whole test, not the last minute only.
        .replace("[1m]) > 0", "[5m]) > 0")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("$upstream", ".*")
}

/// The metric names `expr` uses: ours and the standard process ones.
fn metric_names(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("scalelab_") || word.starts_with("process_"))
}

/// Every metric name in the expositions of `ports` on loopback (a target that does not answer adds none).
fn exported_names(http: &Client, ports: &[u16]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for port in ports {
        let Ok(text) = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .and_then(reqwest::blocking::Response::text)
        else {
            continue;
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some(name) = line.split(['{', ' ']).next() {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Polls every query until each returns data; past the deadline, fails naming every query still empty.
fn assert_every_query_has_data(http: &Client, prometheus: &str, exprs: &[String]) {
    let deadline = Instant::now() + patient(Duration::from_secs(30));
    loop {
        let failures: Vec<String> = exprs
            .iter()
            .map(|expr| fill(expr))
            .filter_map(|filled| match query(http, prometheus, &filled) {
                Ok(result) if !result.is_empty() => None,
                Ok(_) => Some(format!("{filled}\n  -> no data")),
                Err(error) => Some(format!("{filled}\n  -> {error}")),
            })
            .collect();
        if failures.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} dashboard queries return no data:\n{}",
            failures.len(),
            exprs.len(),
            failures.join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn up_observe_scrapes_the_lab_and_every_dashboard_query_has_data() {
    let bin_dir = build_siblings();
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&ports, "2s")).unwrap();
    assert_proxy_accepts_auth(&bin_dir, &config);

    let started = Instant::now();
    let prometheus_port = ports.prometheus.to_string();
    let mut up = Up::start(
        &config,
        &bin_dir,
        &["--observe", "--prometheus-port", &prometheus_port],
    );
    up.wait_for("Prometheus sees every target up", Duration::from_secs(120));
    up.wait_for("Ctrl-C stops everything", Duration::from_secs(10));
    let up_took = started.elapsed();

    // The banner: the Prometheus URL, the three links, and the pids (the test kills a gateway by its pid).
    let prometheus = format!("http://127.0.0.1:{}", ports.prometheus);
    assert!(
        up.log
            .iter()
            .any(|l| l.trim() == format!("prometheus   {prometheus}")),
        "{}",
        up.log.join("\n")
    );
    let links: Vec<String> = up
        .log
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with(&format!("{prometheus}/graph?g0.expr=")))
        .map(str::to_owned)
        .collect();
    assert_eq!(links.len(), 3, "{}", up.log.join("\n"));
    let pids = up
        .log
        .iter()
        .find_map(|l| l.trim().strip_prefix("pids"))
        .unwrap()
        .to_owned();
    let pid_of = |name: &str| -> u32 {
        pids.split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in pids {pids}"))
            .parse()
            .unwrap()
    };
    let children = children_of(up.child.id());
    assert_eq!(
        children.len(),
        8,
        "7 lab children and Prometheus: {children:?}"
    );
    assert!(children.contains(&pid_of("prometheus")));

    // `up` said every target is up; Prometheus agrees, with the generated config's jobs.
    let http = blocking_client(Duration::from_secs(10));
    let targets: Value = http
        .get(format!("{prometheus}/api/v1/targets?state=active"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), ports.targets().len(), "{targets}");
    assert!(active.iter().all(|t| t["health"] == "up"), "{targets}");
    let jobs: BTreeSet<&str> = active
        .iter()
        .map(|t| t["labels"]["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs,
        BTreeSet::from(["scalelab-backends", "scalelab-proxy", "scalelab-worker"])
    );
    assert!(dir.path().join("data/prometheus/prometheus.yml").is_file());

    let traffic_started = Instant::now();
    let token = support::mint_token(&config);
    let lab = traffic::Lab {
        http: &http,
        ports: &ports,
        config: &config,
        token: &token,
        prometheus: &prometheus,
    };
    lab.run(pid_of(&format!("gateway-{}", ports.gateways[2])));
    let traffic_took = traffic_started.elapsed();

    // Every metric the dashboard uses is exported by some process of the lab (a typo would leave a panel empty).
    let exprs = dashboard_queries();
    let exported = exported_names(&http, &ports.targets());
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                exported.contains(name),
                "the dashboard uses {name}, which no process of the lab exports"
            );
        }
    }
    let data_started = Instant::now();
    assert_every_query_has_data(&http, &prometheus, &exprs);
    let data_took = data_started.elapsed();

    // The printed links open Prometheus's UI on their query, and each query has data after the traffic.
    for link in &links {
        let page = http.get(link).send().unwrap();
        assert_eq!(page.status(), 200, "{link}");
        let encoded = link
            .split_once("g0.expr=")
            .and_then(|(_, rest)| rest.split('&').next())
            .unwrap();
        let expr = percent_decode(encoded);
        let result = query(&http, &prometheus, &expr).unwrap();
        assert!(!result.is_empty(), "{expr} from {link} has no data");
    }
    assert_eq!(
        http.get(format!("{prometheus}/-/ready"))
            .send()
            .unwrap()
            .status(),
        200
    );

    // Ctrl-C stops Prometheus with the rest, first.
    let stop_started = Instant::now();
    up.child.signal(Signal::SIGINT);
    let status = up.child.wait_exit_blocking(Duration::from_secs(30));
    up.drain();
    assert!(status.success(), "{status}:\n{}", up.log.join("\n"));
    let left: Vec<u32> = children.iter().copied().filter(|&pid| alive(pid)).collect();
    assert!(left.is_empty(), "children still running: {left:?}");
    let stopped: Vec<&String> = up
        .log
        .iter()
        .filter(|l| l.starts_with("[scalelab]") && l.contains(" stopped ("))
        .collect();
    assert!(
        stopped
            .first()
            .is_some_and(|l| l.contains("prometheus stopped")),
        "Prometheus should stop first: {stopped:?}"
    );
    eprintln!(
        "durations: up --observe ready {up_took:?}, traffic {traffic_took:?}, every query with data {data_took:?}, \
         stop {:?}",
        stop_started.elapsed()
    );
}

/// Rewrites the lab's config with another `shutdown_timeout`, so that a reload has something to apply.
pub fn rewrite_config(config: &Path, ports: &Ports, shutdown: &str) {
    std::fs::write(config, config_text(ports, shutdown)).unwrap();
}

//! `scalelab up --fleet --observe` end to end: a real redis-server started by `up` under the temporary data dir,
//! two real proxies sharing the cache tier in it, two real workers sharing its task queue, and a real Prometheus
//! scraping each proxy and worker as its own instance.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::time::Duration;

use scalelab_test_support::{blocking_client, eventually_blocking, free_port, patient, Signal};
use serde_json::{json, Value};
use support::{alive, build_siblings, children_of, lab_tail, proxy_head, Up};

/// A port `p` such that `p + offset` is free for every offset: a fleet takes the ports after the configured ones.
fn free_run(offsets: &[u16]) -> u16 {
    loop {
        let base = free_port();
        let free = offsets.iter().all(|&offset| {
            base.checked_add(offset)
                .is_some_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        });
        if free {
            return base;
        }
    }
}

struct Ports {
    gateways: [u16; 3],
    microservice: u16,
    database: u16,
    worker: u16,
    proxy: u16,
    admin: u16,
}

fn config_text(ports: &Ports) -> String {
    let (proxy, admin) = (ports.proxy, ports.admin);
    let head = proxy_head(proxy, admin, ports.gateways);
    let text = format!(
        r#"{head}
[[routes]]
name = "shared"
path = "/shared"
upstream = "gateways"
strip_prefix = true
cache = {{ key = "{{path}}", default_ttl = "600s" }}

[cache]
[[cache.tiers]]
name = "L1"
max_entries = 100
[[cache.tiers]]
name = "L2"
max_entries = 100
"#
    );
    let tail = lab_tail(
        ports.gateways,
        ports.microservice,
        ports.database,
        ports.worker,
    );
    format!("{text}{tail}")
}

/// The port of the `redis://127.0.0.1:PORT/0` URL in the banner's fleet line.
fn redis_port_in(line: &str) -> u16 {
    let rest = line
        .split("redis://127.0.0.1:")
        .nth(1)
        .unwrap_or_else(|| panic!("no redis URL in {line:?}"));
    rest.split('/').next().unwrap().parse().unwrap()
}

/// Redis's answer to an inline PING on `port`.
fn ping(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut answer = [0; 7];
    stream.read_exact(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn header(response: &reqwest::blocking::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

#[test]
fn up_fleet_shares_the_cache_tier_and_the_task_queue() {
    let bin_dir = build_siblings();
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports {
        gateways: [free_port(), free_port(), free_port()],
        microservice: free_port(),
        database: free_port(),
        worker: free_run(&[0, 10]),
        proxy: free_run(&[0, 1]),
        admin: free_run(&[0, 1]),
    };
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&ports)).unwrap();

    let prometheus_port = free_port();
    let mut up = Up::start(
        &config,
        &bin_dir,
        &[
            "--fleet",
            "--observe",
            "--prometheus-port",
            &prometheus_port.to_string(),
        ],
    );
    up.wait_for("Prometheus sees every target up", Duration::from_secs(120));
    up.wait_for("scalelab is up", Duration::from_secs(10));
    // No [lab] redis_port: up picked a free port for redis-server and says which.
    let shared = up.wait_for("fleet: shared cache tier", Duration::from_secs(5));
    let redis_port = redis_port_in(&shared);
    assert_ne!(redis_port, 6390, "{shared}");
    assert_eq!(ping(redis_port), "+PONG\r\n", "{shared}");
    let (first, second) = (
        format!("http://127.0.0.1:{}", ports.proxy),
        format!("http://127.0.0.1:{}", ports.proxy + 1),
    );
    let hits_second = up.wait_for(&format!("{second} hits proxy 2"), Duration::from_secs(5));
    assert!(
        hits_second.contains(&format!("admin http://127.0.0.1:{}", ports.admin + 1)),
        "{hits_second}"
    );
    let ups_pid = up.child.id();
    let children = children_of(ups_pid);
    // redis, database, microservice, 2 workers, 3 gateways, 2 proxies, prometheus.
    assert_eq!(children.len(), 11, "/proc shows {children:?}");
    assert!(
        dir.path().join("data/redis/appendonlydir").is_dir(),
        "redis keeps its append-only file under the lab's data dir"
    );

    let http = blocking_client(Duration::from_secs(10));
    // Prometheus scrapes each proxy and each worker as its own instance.
    for (job, want) in [
        ("scalelab-proxy", [ports.admin, ports.admin + 1]),
        ("scalelab-worker", [ports.worker, ports.worker + 10]),
    ] {
        let answer: Value = http
            .get(format!("http://127.0.0.1:{prometheus_port}/api/v1/query"))
            .query(&[("query", format!("up{{job=\"{job}\"}} == 1"))])
            .send()
            .unwrap()
            .json()
            .unwrap();
        let mut instances: Vec<String> = answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| series["metric"]["instance"].as_str().unwrap().to_owned())
            .collect();
        instances.sort();
        let mut want: Vec<String> = want
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        want.sort();
        assert_eq!(instances, want, "{job}: {answer}");
    }
    for proxy in [&first, &second] {
        let health = http.get(format!("{proxy}/health")).send().unwrap();
        assert_eq!(health.status(), 200, "{proxy}");
    }

    // Fetched through proxy 1, stored in the shared tier (L2, made kind = "redis" by --shared-cache-url) ...
    let fetched = http.get(format!("{first}/shared/health")).send().unwrap();
    assert_eq!(header(&fetched, "x-cache").as_deref(), Some("MISS"));
    let body: Value = fetched.json().unwrap();
    // `up` gave the proxies an admin token and keeps it in the data dir (`data_dir = "data"`).
    let admin_token = scalelab_lab::admin_token::load(&dir.path().join("data")).unwrap();
    let stored = |admin: u16| -> Value {
        http.get(format!("http://127.0.0.1:{admin}/cache/stats"))
            .bearer_auth(&admin_token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    eventually_blocking(
        patient(Duration::from_secs(10)),
        "proxy 1 to store the object in redis",
        || (stored(ports.admin)["levels"]["L2"]["sets"] == 1).then_some(()),
    );
    // ... and a hit from that tier through proxy 2, with the same body, and no second fetch.
    let hit = http.get(format!("{second}/shared/health")).send().unwrap();
    assert_eq!(
        (header(&hit, "x-cache"), header(&hit, "x-cache-tier")),
        (Some("HIT".to_owned()), Some("L2".to_owned()))
    );
    assert_eq!(hit.json::<Value>().unwrap(), body);

    // A task posted to worker 1 is known to worker 2, and finishes on one of them.
    let worker = |i: u16| format!("http://127.0.0.1:{}", ports.worker + 10 * i);
    let queued = http
        .post(format!("{}/tasks?priority=high", worker(0)))
        .json(&json!({"task_type": "io_intensive", "duration": 0.1}))
        .send()
        .unwrap();
    assert_eq!(queued.status(), 202);
    let task_id = queued.json::<Value>().unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = eventually_blocking(
        patient(Duration::from_secs(20)),
        "worker 2 to report the task completed",
        || {
            let task: Value = http
                .get(format!("{}/tasks/{task_id}", worker(1)))
                .send()
                .ok()?
                .json()
                .ok()?;
            (task["status"] == "completed").then_some(task)
        },
    );
    assert_eq!(seen["priority"], "high", "{seen}");

    up.child.signal(Signal::SIGTERM);
    let status = up.child.wait_exit_blocking(Duration::from_secs(40));
    up.drain();
    assert!(
        status.success(),
        "up exited with {status}:\n{}",
        up.log.join("\n")
    );
    let left: Vec<u32> = children.iter().copied().filter(|&pid| alive(pid)).collect();
    assert!(left.is_empty(), "children still running: {left:?}");
    // Redis goes last: the proxies and workers use it until they stop.
    let stopped = |name: &str| {
        up.log.iter().rposition(|line| {
            line.starts_with(&format!("[scalelab] {name}")) && line.contains(" stopped (")
        })
    };
    let redis = stopped("redis").expect("redis stopped");
    for other in ["prometheus", "proxy", "worker-", "gateway-"] {
        let at =
            stopped(other).unwrap_or_else(|| panic!("{other} stopped:\n{}", up.log.join("\n")));
        assert!(
            at < redis,
            "{other} stopped after redis:\n{}",
            up.log.join("\n")
        );
    }
}

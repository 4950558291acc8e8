//! `scalelab up` end to end: the real binaries on free ports with a temporary data dir, a request through the proxy
//! to a gateway, the seed's flow with a token, then SIGTERM and a check that no child is left.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use scalelab_test_support::{blocking_client, free_ports, patient, ChildGuard, Signal};
use serde_json::{json, Value};
use support::{
    alive, assert_proxy_accepts_auth, build_siblings, children_of, lab_tail, mint_token,
    proxy_head, scalelab, tls_port, Up,
};

fn config_text(ports: &[u16]) -> String {
    let [g1, g2, g3, ms, db, worker, proxy, admin] = ports else {
        panic!("need 8 ports");
    };
    let mut text = proxy_head(*proxy, *admin, [*g1, *g2, *g3]);
    text.push_str(
        r#"
[[routes]]
name = "data"
path = "/data"
upstream = "gateways"

[[routes]]
name = "longtask"
path = "/longtask"
upstream = "gateways"
"#,
    );
    text.push_str(&lab_tail([*g1, *g2, *g3], *ms, *db, *worker));
    text
}

#[test]
fn up_runs_the_lab_behind_the_proxy_and_stops_every_child() {
    let bin_dir = build_siblings();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let config = dir.path().join("config.toml");
    let text = config_text(&ports);
    std::fs::write(&config, &text).unwrap();
    assert_proxy_accepts_auth(&bin_dir, &config);
    let proxy = format!("http://127.0.0.1:{}", ports[6]);

    let mut up = Up::start(&config, &bin_dir, &[]);
    up.wait_for("scalelab is up", Duration::from_secs(120));
    let ups_pid = up.child.id();
    let children = children_of(ups_pid);
    assert_eq!(
        children.len(),
        7,
        "expected 7 children, /proc shows {children:?}"
    );
    let pid_file = std::fs::read_to_string(dir.path().join("data/scalelab-up.pids")).unwrap();
    for pid in &children {
        assert!(
            pid_file.contains(&format!("{pid} ")),
            "{pid} missing from the pid file:\n{pid_file}"
        );
    }

    let http = blocking_client(Duration::from_secs(10));
    let health = http.get(format!("{proxy}/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-upstream-server"));
    https_answers_with_the_development_ca(&mut up, dir.path(), tls_port(&text));

    seed_flow(&http, &proxy, &config, ports[5]);
    bench_strategies(&config, &proxy, &dir.path().join("bench-out"));

    up.child.signal(Signal::SIGTERM);
    let status = up.child.wait_exit_blocking(Duration::from_secs(30));
    up.drain();
    assert!(
        status.success(),
        "scalelab up exited with {status}:\n{}",
        up.log.join("\n")
    );
    let left: Vec<u32> = children.iter().copied().filter(|&pid| alive(pid)).collect();
    assert!(left.is_empty(), "children still running: {left:?}");
    assert!(
        up.log
            .iter()
            .any(|line| line.contains("all children stopped")),
        "{}",
        up.log.join("\n")
    );
    assert!(!dir.path().join("data/scalelab-up.pids").exists());
    // Every child's output reached ours, under its own prefix.
    for name in [
        "[proxy]",
        "[database-",
        "[worker-",
        "[microservice-",
        "[gateway-",
    ] {
        assert!(
            up.log.iter().any(|line| line.starts_with(name)),
            "no {name} lines"
        );
    }
}

/// `up` made a development CA under the data directory on its first start, printed the curl
/// line, and the proxy's HTTPS listener answers with a certificate that CA signed.
fn https_answers_with_the_development_ca(up: &mut Up, dir: &Path, port: u16) {
    let ca = dir.join("data/tls/ca.pem");
    assert!(ca.is_file(), "no development CA at {}", ca.display());
    let printed = format!(
        "curl --cacert {} https://localhost:{port}/health",
        ca.display()
    );
    up.wait_for(&printed, Duration::from_secs(10));
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(["--write-out", "\n%{http_code}"])
        .arg("--cacert")
        .arg(&ca)
        .arg(format!("https://localhost:{port}/health"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.ends_with("\n200"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `scalelab bench --scenario strategies` against the running lab: a short run per strategy, then the JSON with
/// every run and the three charts.
fn bench_strategies(config: &Path, proxy: &str, out: &Path) {
    const PER_RUN: u64 = 100;
    let mut command = Command::new(scalelab());
    command
        .args([
            "bench",
            "--scenario",
            "strategies",
            "-n",
            "100",
            "-j",
            "4",
            "--quiet",
        ])
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(["--url", &format!("{proxy}/data")]);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("strategies.json")).unwrap())
            .unwrap();
    assert_eq!(report["scenario"], "strategies");
    let runs = report["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|run| run["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["round_robin", "weighted", "least_connections"]);
    for run in runs {
        assert_eq!(run["statuses"]["200"], PER_RUN, "{run}");
        let upstreams = run["upstreams"].as_object().unwrap();
        let served: u64 = upstreams
            .values()
            .map(|count| count.as_u64().unwrap())
            .sum();
        assert_eq!(served, PER_RUN, "{run}");
        assert!(!upstreams.contains_key("none"), "{run}");
    }
    // Round robin over three healthy gateways reaches each of them.
    assert_eq!(
        runs[0]["upstreams"].as_object().unwrap().len(),
        3,
        "{}",
        runs[0]
    );
    for chart in ["latency", "upstreams"] {
        let svg = std::fs::read_to_string(out.join(format!("strategies-{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{chart}");
        for name in names.iter() {
            assert!(svg.contains(name), "{chart}: no {name}");
        }
    }
    // This config's /data route does not cache: the cache chart would be one full bar per run, so the report
    // says so instead of drawing it.
    assert!(!out.join("strategies-cache.svg").exists());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains(
            "No chart of requests per cache result: no response of any run carried X-Cache"
        ),
        "{html}"
    );
}

/// The seed's README flow through the proxy, with a token from `scalelab token`.
fn seed_flow(http: &reqwest::blocking::Client, proxy: &str, config: &Path, worker_port: u16) {
    let token = mint_token(config);
    let bearer = format!("Bearer {token}");

    let refused = http.get(format!("{proxy}/data")).send().unwrap();
    assert_eq!(refused.status(), 401);
    let seed_token =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo";
    let refused = http
        .get(format!("{proxy}/data"))
        .header("authorization", seed_token)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);

    let mut upstreams = std::collections::BTreeSet::new();
    for strategy in ["round_robin", "weighted", "least_connections"] {
        let response = http
            .get(format!(
                "{proxy}/data?strategy={strategy}&bypass_cache=true"
            ))
            .header("authorization", &bearer)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{strategy}");
        upstreams.insert(
            response.headers()["x-upstream-server"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let body: Value = response.json().unwrap();
        assert_eq!(body["data"], "Fetched fresh data from DB");
    }
    // The bare token, the seed's form, works too.
    let complex = http
        .get(format!("{proxy}/data/complex?id=1"))
        .header("authorization", &token)
        .send()
        .unwrap();
    assert_eq!(complex.status(), 200);
    let body: Value = complex.json().unwrap();
    assert_eq!(body["db_data"]["id"], 1);
    assert_eq!(body["service_data"]["message"], "Business logic executed");

    let queued = http
        .post(format!("{proxy}/longtask?priority=high"))
        .header("authorization", &bearer)
        .json(&json!({"task_type": "io_intensive", "duration": 0.1}))
        .send()
        .unwrap();
    assert_eq!(queued.status(), 202);
    let body: Value = queued.json().unwrap();
    assert_eq!(
        (body["status"].as_str(), body["priority"].as_str()),
        (Some("Task queued"), Some("high"))
    );
    let task_id = body["task_id"].as_str().unwrap().to_owned();

    let worker = format!("http://127.0.0.1:{worker_port}");
    // A loop of its own rather than `eventually_blocking`, so that a failure shows the task's last state.
    let deadline = Instant::now() + patient(Duration::from_secs(20));
    loop {
        let task: Value = http
            .get(format!("{worker}/tasks/{task_id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if task["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "task never completed: {task}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats: Value = http
        .get(format!("{worker}/stats"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(stats["completed_tasks"].as_u64().unwrap() >= 1, "{stats}");
}

/// Runs `scalelab up` on `config` until it exits by itself (stopped with SIGTERM if the test fails first), and
/// returns its exit status, stdout and stderr.
fn up_until_exit(
    config: &Path,
    bin_dir: &Path,
    extra: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let dir = config.parent().unwrap();
    let stdout_path = dir.join("second-up.stdout");
    let stderr_path = dir.join("second-up.stderr");
    let child = Command::new(scalelab())
        .args(["up", "--no-color", "--config"])
        .arg(config)
        .arg("--bin-dir")
        .arg(bin_dir)
        .args(extra)
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard::new(child, "the second scalelab up").stop_with(Signal::SIGTERM);
    let status = guard.wait_exit_blocking(patient(Duration::from_secs(120)));
    (
        status,
        std::fs::read_to_string(&stdout_path).unwrap(),
        std::fs::read_to_string(&stderr_path).unwrap(),
    )
}

#[test]
fn a_second_up_on_a_running_lab_is_refused_and_kills_nothing() {
    let bin_dir = build_siblings();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&ports)).unwrap();
    let mut first = Up::start(&config, &bin_dir, &[]);
    first.wait_for("scalelab is up", Duration::from_secs(120));
    let first_pid = first.child.id();
    let children = children_of(first_pid);
    assert_eq!(children.len(), 7, "/proc shows {children:?}");

    let (status, stdout, stderr) = up_until_exit(&config, &bin_dir, &[]);
    assert!(!status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("another `scalelab up` (pid {first_pid}: "))
            && stderr.contains(&format!("`kill {first_pid}`")),
        "{stderr}"
    );
    assert!(!stdout.contains("left over"), "{stdout}");
    let left: Vec<u32> = children.iter().copied().filter(|&pid| alive(pid)).collect();
    assert_eq!(left, children, "the first lab lost children");
    let http = blocking_client(Duration::from_secs(10));
    let health = http
        .get(format!("http://127.0.0.1:{}/health", ports[6]))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    first.drain();
    assert!(
        !first
            .log
            .iter()
            .any(|line| line.contains("exited") || line.contains("stopping")),
        "{}",
        first.log.join("\n")
    );

    // The first `up` still owns its lab: it stops every child and exits cleanly.
    first.child.signal(Signal::SIGTERM);
    let status = first.child.wait_exit_blocking(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let left: Vec<u32> = children.iter().copied().filter(|&pid| alive(pid)).collect();
    assert!(left.is_empty(), "children still running: {left:?}");
}

/// Processes whose command line mentions one of `needles`.
fn processes_mentioning(needles: &[String]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                let line = String::from_utf8_lossy(&raw);
                needles.iter().any(|needle| line.contains(needle.as_str()))
            })
        })
        .filter(|&pid| alive(pid))
        .collect()
}

#[test]
fn a_proxy_port_held_by_another_program_fails_up_with_the_proxy_log() {
    let bin_dir = build_siblings();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&ports)).unwrap();
    // Another program on the proxy's port: it accepts connections, so only who holds the socket tells them apart.
    let _holder = std::net::TcpListener::bind(("127.0.0.1", ports[6])).unwrap();

    let timeout = format!("{}ms", patient(Duration::from_secs(20)).as_millis());
    let (status, stdout, stderr) = up_until_exit(&config, &bin_dir, &["--ready-timeout", &timeout]);
    assert!(!status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(!stdout.contains("scalelab is up"), "{stdout}");
    assert!(stdout.contains("all children stopped"), "{stdout}");
    // The error names the proxy and repeats its last log lines, which name the address it could not take.
    let (_, report) = stderr
        .split_once("scalelab: ")
        .unwrap_or_else(|| panic!("no error:\n{stderr}"));
    assert!(report.contains("proxy"), "{stderr}");
    assert!(
        report
            .lines()
            .any(|line| line.starts_with("  [proxy] ") && line.contains(&ports[6].to_string())),
        "{stderr}"
    );
    // Every child but the microservice names the temporary directory; the microservice names its port.
    let needles = [
        dir.path().to_string_lossy().into_owned(),
        format!("--port\0{}\0", ports[3]),
    ];
    let left = processes_mentioning(&needles);
    assert!(left.is_empty(), "still running: {left:?}");
}

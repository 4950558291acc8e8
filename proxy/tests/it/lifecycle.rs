//! The binary as a process: `--check`, `--version`, SIGTERM draining.

use crate::harness::*;
use std::time::{Duration, Instant};

#[test]
fn check_reports_every_problem_with_paths_and_lines() {
    let (code, text) = check_text(
        "[proxy]\nthreads = 0\n\n[upstreams.a]\nstrategy = \"fastest\"\nservers = [{ addr = \"127.0.0.1:1\" }]\nread_timeout = \"soon\"\n\n[[routes]]\npath = \"/\"\nupstream = \"b\"\n",
    );
    assert_eq!(code, Some(1));
    for expected in [
        "line 2: proxy.threads",
        "line 5: upstreams.a.strategy",
        "line 7: upstreams.a.read_timeout",
        "line 11: routes[0].upstream",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    let output = std::process::Command::new(binary())
        .arg("--check")
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("upstream gateways: round_robin"));

    let output = std::process::Command::new(binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("scalelab-proxy "));
}

#[test]
fn version_names_the_commit_the_binary_was_built_from() {
    let output = std::process::Command::new(binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    // Cargo rebuilds the binary when HEAD moves (build.rs), so the checkout's HEAD is the
    // commit it was built from; outside a git checkout it is "unknown".
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or("unknown".to_string(), |output| {
            String::from_utf8(output.stdout).unwrap().trim().to_string()
        });
    let head = std::env::var("SCALELAB_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .unwrap_or(head);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!(
            "scalelab-proxy {} (commit {head})\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_two_second_request_finish_then_exits_zero() {
    // The shutdown bound (10 s by default) is scaled with the exit bound below, so that the
    // exit bound stays under it and still shows the proxy exited once drained.
    let shutdown_timeout = patient(Duration::from_secs(10));
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting(&format!(
            "shutdown_timeout = \"{}ms\"",
            shutdown_timeout.as_millis()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("all", "/", "g");
    let mut proxy = TestProxy::start(&config).await;
    let url = proxy.url("/slow?sleep_ms=2000");
    let request = tokio::spawn(async move { client().get(url).send().await.unwrap() });
    proxy.wait_in_flight(1, Duration::from_secs(3)).await;
    let signalled = Instant::now();
    proxy.signal(Signal::SIGTERM);
    let response = request.await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["path"], "/slow");
    let status = proxy.wait_exit(Duration::from_secs(8)).await;
    assert_eq!(status.code(), Some(0));
    // It exits once drained, well before the shutdown bound.
    let exit_bound = patient(Duration::from_secs(5));
    assert!(exit_bound < shutdown_timeout);
    assert!(
        signalled.elapsed() < exit_bound,
        "took {:?}",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_admin_reload_apply_valid_files_and_keep_the_old_one_on_errors() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let first = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&a], &[1]))
        .route("all", "/", "g");
    let proxy = TestProxy::start(&first).await;
    let http = client();
    let response = http.get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(response.headers()["x-config-generation"], "1");
    assert_eq!(
        response.headers()["x-upstream-server"],
        a.addr.to_string().as_str()
    );

    let second = TestConfig::same_ports(&first)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&b], &[1]))
        .route("all", "/", "g");
    proxy.write_config(&second.render());
    proxy.signal(Signal::SIGHUP);
    let b_addr = b.addr.to_string();
    eventually(
        Duration::from_secs(5),
        "the reloaded config to serve",
        || {
            let (http, url, b_addr) = (http.clone(), proxy.url("/x"), b_addr.clone());
            async move {
                let response = http.get(url).send().await.ok()?;
                // The new server takes traffic only after its first passing check.
                (response.headers().get("x-upstream-server")? == b_addr.as_str()
                    && response.headers()["x-config-generation"] == "2")
                    .then_some(())
            }
        },
    )
    .await;

    proxy.write_config(
        &second
            .render()
            .replace("strategy = \"round_robin\"", "strategy = \"fastest\""),
    );
    let response = http
        .post(format!("{}/admin/reload", proxy.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("upstreams.g.strategy"),
        "{body}"
    );
    let response = http.get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(response.headers()["x-config-generation"], "2");
    assert_eq!(response.headers()["x-upstream-server"], b_addr.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_at_once_without_waiting_for_requests() {
    let (_backends, mut proxy) = backends_behind_proxy(["a"], "round_robin", &[1]).await;
    // The request would take 20 s; exiting well before that shows SIGINT does not wait for it.
    // The generous bound keeps a loaded CI machine from turning slowness into a failure, and
    // the request is scaled with it so that the bound stays at half the request.
    let request_time = patient(Duration::from_secs(20));
    let exit_bound = patient(Duration::from_secs(10));
    let url = proxy.url(&format!("/slow?sleep_ms={}", request_time.as_millis()));
    let request = tokio::spawn(async move { client().get(url).send().await });
    proxy.wait_in_flight(1, Duration::from_secs(5)).await;
    let signalled = Instant::now();
    proxy.signal(Signal::SIGINT);
    proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(
        signalled.elapsed() < exit_bound,
        "took {:?}",
        signalled.elapsed()
    );
    assert!(
        request.await.unwrap().is_err(),
        "the in-flight request is cut off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_access_line_per_request() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "weighted", &[&backend], &[1]))
        .route("api", "/api", "g")
        .proxy_setting("access_log = { format = \"json\" }");
    let proxy = TestProxy::start_with_args(&config, &["--log-format".into(), "json".into()]).await;
    let response = client()
        .get(proxy.url("/api/x?strategy=least_connections"))
        .header("X-Request-Id", "log-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let line = eventually(Duration::from_secs(3), "the access-log line", || {
        let log = proxy.log();
        async move {
            log.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["request_id"] == "log-me-1")
        }
    })
    .await;
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/x");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "api");
    assert_eq!(line["upstream"], "g");
    assert_eq!(line["server"], backend.addr.to_string());
    assert_eq!(line["strategy"], "least_connections");
    assert!(line["duration_ms"].as_f64().is_some());
}

/// Issue 31: a listen port held by another program gave a false start, about 30 s of "is in
/// use, will try again", then a panic with a backtrace in a process that stayed alive without
/// its listener. Now: one clear line and a non-zero exit at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_address_in_use_is_one_clear_error_and_a_failed_exit() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let holder = std::net::TcpListener::bind(("127.0.0.1", config.proxy_port)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config.render()).unwrap();
    let mut child = std::process::Command::new(binary())
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().expect("piped stderr");
    let mut child = scalelab_test_support::ChildGuard::new(child, "proxy");
    // Read only once it exited: before the fix it stayed alive, and the read would block.
    let status = child.wait_exit(patient(Duration::from_secs(5))).await;
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        format!(
            "scalelab-proxy: cannot listen on 127.0.0.1:{}: address in use (another program listens there)",
            config.proxy_port
        ),
        "the whole standard error"
    );
    drop(holder);
}

/// Issue 31: every start logged an ERROR (the process collector registered twice), and the
/// log written to a file carried terminal colour codes. A clean start, a request and a
/// shutdown log neither an ERROR nor a WARN, and no escape code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_start_logs_no_error_no_warning_and_no_colour() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let proxy = TestProxy::start(&config).await;
    let response = client().get(proxy.url("/api/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // The process series still come from the default registry's own collector.
    assert!(scrape(&proxy)
        .await
        .contains("process_resident_memory_bytes "));
    let log = eventually(Duration::from_secs(3), "the access-log line", || {
        let log = proxy.log();
        async move { log.contains("GET /api/x").then_some(log) }
    })
    .await;
    assert!(
        log.contains(" INFO "),
        "the log has its start lines:\n{log}"
    );
    for bad in [" ERROR ", " WARN ", "\u{1b}["] {
        assert!(!log.contains(bad), "{bad:?} in a clean start's log:\n{log}");
    }
}

/// The process's thread count, once it holds still (two reads 200 ms apart agree), so threads
/// a start-up task spawns late are counted the same way in every run.
async fn settled_threads(pid: u32) -> usize {
    let read = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("Threads:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
            })
    };
    let mut last = read();
    eventually(
        Duration::from_secs(10),
        "the thread count to settle",
        || {
            let before = last;
            let now = read();
            last = now;
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                (now.is_some() && now == before).then_some(now.unwrap_or(0))
            }
        },
    )
    .await
}

/// Issue 27 section 3: every listener is served by one Pingora service, so `[proxy] threads`
/// is the number of request threads whatever the number of listeners (with a service per
/// listen address, three addresses at `threads = 2` ran six request threads). Each listener
/// still answers, and still keeps its own `max_connections` count (`slow_clients`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_means_request_threads_whatever_the_number_of_listeners() {
    let a = TestBackend::start("a");
    let count = |threads: u32, listeners: usize| {
        let config = TestConfig::new()
            .threads(threads)
            .upstream(UpstreamSpec::new("g", "round_robin", &[&a], &[1]))
            .route("all", "/", "g");
        async move {
            let ports = scalelab_test_support::free_ports(listeners);
            let args: Vec<std::ffi::OsString> = ports
                .iter()
                .flat_map(|port| ["--listen".into(), format!("127.0.0.1:{port}").into()])
                .collect();
            let proxy = TestProxy::start_on(&config, (ports[0], config.admin_port), &args).await;
            for port in &ports {
                let response = client()
                    .get(format!("http://127.0.0.1:{port}/x"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "listener {port} answers");
            }
            settled_threads(proxy.child.id()).await
        }
    };
    let one = count(2, 1).await;
    let three = count(2, 3).await;
    let four_threads = count(4, 1).await;
    assert_eq!(three, one, "two more listeners add no thread");
    assert_eq!(four_threads, one + 2, "two more `threads` add two threads");
}

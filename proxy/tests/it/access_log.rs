//! The access log's writer: no line lost on SIGTERM, SIGUSR1 reopens the file after a
//! rotation, and a log that cannot be written never fails a request (lines are dropped and
//! counted instead).

use crate::harness::*;
use std::path::Path;
use std::time::Duration;

/// A proxy in front of one backend, logging to `path`.
async fn logging_proxy(path: &Path) -> (TestBackend, TestProxy) {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting(&format!(
            "access_log = {{ path = {:?} }}",
            path.display().to_string()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let proxy = TestProxy::start(&config).await;
    (backend, proxy)
}

/// Sends `count` requests, each with the request id `{prefix}-{i}`, eight at a time.
async fn send(proxy: &TestProxy, prefix: &str, count: usize) {
    let http = client();
    for chunk in (0..count).collect::<Vec<_>>().chunks(8) {
        let requests = chunk.iter().map(|i| {
            http.get(proxy.url(&format!("/api/{i}")))
                .header("X-Request-Id", format!("{prefix}-{i}"))
                .send()
        });
        for response in futures::future::join_all(requests).await {
            assert_eq!(response.unwrap().status(), 200);
        }
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// How many lines of `path` carry a request id starting with `prefix`.
fn count(path: &Path, prefix: &str) -> usize {
    let needle = format!("request_id=\"{prefix}-");
    lines(path).iter().filter(|l| l.contains(&needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_survives_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (_backend, mut proxy) = logging_proxy(&path).await;
    send(&proxy, "term", 300).await;
    // The last of those answers can reach the client before the proxy's logging phase counts
    // its request out; wait until none is in flight, so the count of one below is the slow
    // request's and SIGTERM never races its arrival.
    proxy.wait_in_flight(0, Duration::from_secs(5)).await;
    // A request still running when SIGTERM arrives: the drain exits within about 20 ms of its
    // end, sooner than the writer's 100 ms sweep, so its line is there only because the exit
    // flushes the log.
    let url = proxy.url("/api/slow?sleep_ms=500");
    let slow = tokio::spawn(async move {
        client()
            .get(url)
            .header("X-Request-Id", "term-slow")
            .send()
            .await
            .unwrap()
    });
    proxy.wait_in_flight(1, Duration::from_secs(5)).await;
    proxy.signal(Signal::SIGTERM);
    assert_eq!(slow.await.unwrap().status(), 200);
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    let written = lines(&path);
    assert_eq!(written.len(), 301, "{written:#?}");
    for i in (0..300).map(|i| i.to_string()).chain(["slow".to_string()]) {
        let id = format!("request_id=\"term-{i}\"");
        assert_eq!(
            written.iter().filter(|l| l.contains(&id)).count(),
            1,
            "{id}"
        );
    }
    assert!(written[0].contains("\"GET /api/"), "{}", written[0]);
    assert!(written[0].contains("\" 200 "), "{}", written[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_file_after_a_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let (_backend, proxy) = logging_proxy(&path).await;
    send(&proxy, "before", 20).await;
    eventually(Duration::from_secs(5), "the first lines written", || {
        let done = count(&path, "before") == 20;
        async move { done.then_some(()) }
    })
    .await;
    std::fs::rename(&path, &rotated).unwrap();
    proxy.signal(Signal::SIGUSR1);
    eventually(
        Duration::from_secs(5),
        "the log reopened at its path",
        || {
            let exists = path.exists();
            async move { exists.then_some(()) }
        },
    )
    .await;
    send(&proxy, "after", 30).await;
    eventually(
        Duration::from_secs(5),
        "the new lines in the new file",
        || {
            let done = count(&path, "after") == 30;
            async move { done.then_some(()) }
        },
    )
    .await;
    assert_eq!(lines(&path).len(), 30);
    assert_eq!(lines(&rotated).len(), 20);
    assert_eq!(count(&rotated, "before"), 20);
    // The process still runs (SIGUSR1's default action would have ended it).
    send(&proxy, "alive", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_drops_and_counts_lines_but_never_fails_a_request() {
    let (_backend, proxy) = logging_proxy(Path::new("/dev/full")).await;
    send(&proxy, "full", 50).await;
    let dropped = eventually(Duration::from_secs(5), "50 dropped lines", || {
        let proxy = &proxy;
        async move {
            let text = scrape(proxy).await;
            let dropped = sample(&text, "scalelab_access_log_dropped_lines_total")?;
            (dropped >= 50.0).then_some(text)
        }
    })
    .await;
    assert_eq!(
        sample(&dropped, "scalelab_access_log_dropped_lines_total"),
        Some(50.0)
    );
    assert_eq!(
        sample(&dropped, "scalelab_access_log_lines_total"),
        Some(0.0)
    );
    // The warning goes through the log's own writer thread, so it may land a moment later.
    eventually(Duration::from_secs(5), "the warning logged", || {
        let logged = proxy.log().contains("cannot write the access log");
        async move { logged.then_some(()) }
    })
    .await;
}

/// A proxy in front of one backend, logging to its standard error (the default), which is a
/// pipe: the returned read end is the test's to drop or to leave unread.
async fn stderr_logging_proxy() -> (TestBackend, TestProxy, std::process::ChildStderr) {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let (proxy, stderr) = TestProxy::start_piped(&config).await;
    (backend, proxy, stderr)
}

/// The access-log counters once `lines` lines are accounted for (written or dropped).
async fn counted(proxy: &TestProxy, lines: f64) -> (f64, f64) {
    eventually(
        Duration::from_secs(5),
        "every line written or dropped",
        || async move {
            let text = scrape(proxy).await;
            let written = sample(&text, "scalelab_access_log_lines_total")?;
            let dropped = sample(&text, "scalelab_access_log_dropped_lines_total")?;
            (written + dropped >= lines).then_some((written, dropped))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_error_whose_reader_is_gone_drops_and_counts_lines() {
    let (_backend, proxy, stderr) = stderr_logging_proxy().await;
    // The read end closes: every write to the proxy's standard error now fails with EPIPE.
    drop(stderr);
    send(&proxy, "gone", 50).await;
    assert_eq!(counted(&proxy, 50.0).await, (0.0, 50.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_error_nobody_reads_never_blocks_a_request() {
    let (_backend, proxy, _unread) = stderr_logging_proxy().await;
    // Lines of about 3 KB (the user agent is logged): 1,000 of them are 3 MB, more than the
    // pipe (64 KiB), the batch the writer is stuck writing, its queue (16 batches of 64 KiB)
    // and the threads' buffers hold together (about 1.4 MB, some 450 lines). The writer
    // blocks in `write` for good once the pipe is full; requests must not notice.
    let agent = "a".repeat(3000);
    let http = client();
    for chunk in (0..1000).collect::<Vec<_>>().chunks(8) {
        let requests = chunk.iter().map(|i| {
            http.get(proxy.url(&format!("/api/{i}")))
                .header("User-Agent", &agent)
                .send()
        });
        for response in futures::future::join_all(requests).await {
            assert_eq!(response.unwrap().status(), 200);
        }
    }
    let dropped = eventually(Duration::from_secs(5), "lines dropped", || {
        let proxy = &proxy;
        async move {
            let text = scrape(proxy).await;
            let dropped = sample(&text, "scalelab_access_log_dropped_lines_total")?;
            (dropped >= 500.0).then_some(dropped)
        }
    })
    .await;
    assert!(dropped <= 1000.0, "{dropped}");
}

/// Sends `head` on a connection of its own and returns the proxy's answer as text.
async fn raw_exchange(proxy: &TestProxy, head: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = proxy.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    // The proxy may stop reading an oversized head before all of it is written.
    let _ = stream.write_all(head).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        scalelab_test_support::patient(Duration::from_secs(5)),
        stream.read_to_end(&mut response),
    )
    .await;
    String::from_utf8_lossy(&response).into_owned()
}

/// Issue 23: a head Pingora's parser refused was logged through `tracing` on standard error,
/// so the access log, the one place every answered request appears, missed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_oversized_head_gets_its_access_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (backend, proxy) = logging_proxy(&path).await;
    let huge = format!(
        "GET /api HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1100 * 1024)
    );
    for (head, status, reason) in [
        (
            b"GET /api HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
            400,
            "malformed_head",
        ),
        (huge.into_bytes(), 431, "head_too_large"),
    ] {
        let text = raw_exchange(&proxy, &head).await;
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        let request_id = text
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("x-request-id")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no request id in {text}"));
        let needle = format!("request_id=\"{request_id}\"");
        let line = eventually(Duration::from_secs(5), "the head's access-log line", || {
            let found = lines(&path).into_iter().find(|l| l.contains(&needle));
            async move { found }
        })
        .await;
        assert!(line.contains(&format!("\"- - -\" {status} ")), "{line}");
        assert!(line.contains("route=\"unmatched\""), "{line}");
        assert!(line.ends_with(&format!("error={reason}")), "{line}");
    }
    assert_eq!(backend.hits(), 0);
}

/// Issue 23: `access_log` was read once at start, so a reload that changed it was journaled
/// `applied` and had no effect. It is live now: the next line lands in the new file, in the
/// new format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_the_access_log_to_its_new_path_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let first_path = dir.path().join("first.log");
    let second_path = dir.path().join("second.log");
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting(&format!(
            "access_log = {{ path = {:?} }}",
            first_path.display().to_string()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let proxy = TestProxy::start(&config).await;
    send(&proxy, "before", 1).await;
    eventually(Duration::from_secs(5), "the first line", || {
        let n = count(&first_path, "before");
        async move { (n == 1).then_some(()) }
    })
    .await;

    let text = config.render().replace(
        &format!(
            "access_log = {{ path = {:?} }}",
            first_path.display().to_string()
        ),
        &format!(
            "access_log = {{ path = {:?}, format = \"json\" }}",
            second_path.display().to_string()
        ),
    );
    proxy.write_config(&text);
    let (status, body) = proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["restart_required"], serde_json::json!([]), "{body}");
    let effects: Vec<(String, String)> = body["reload"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["effect"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        effects.contains(&("proxy.access_log.path".to_string(), "applied".to_string())),
        "{effects:?}"
    );

    send(&proxy, "after", 1).await;
    let line = eventually(Duration::from_secs(5), "the line in the new file", || {
        let found = lines(&second_path)
            .into_iter()
            .find(|l| l.contains("\"request_id\":\"after-0\""));
        async move { found }
    })
    .await;
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["status"], 200);
    assert_eq!(parsed["path"], "/api/0");
    let first = lines(&first_path);
    assert_eq!(first.len(), 1, "{first:#?}");
    assert!(first[0].contains("request_id=\"before-0\""), "{first:#?}");
}

/// A reload naming a log file that cannot be opened is rejected whole, like a start with it
/// would fail, and the running log keeps its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_an_unopenable_access_log_is_rejected_and_the_old_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let backend = TestBackend::start("a");
    let setting = format!("access_log = {{ path = {:?} }}", path.display().to_string());
    let config = TestConfig::new()
        .proxy_setting(&setting)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let proxy = TestProxy::start(&config).await;
    let missing = dir.path().join("no-such-directory").join("access.log");
    proxy.write_config(&config.render().replace(
        &setting,
        &format!(
            "access_log = {{ path = {:?} }}\nmax_header_bytes = 4096",
            missing.display().to_string()
        ),
    ));
    let (status, body) = proxy.admin_post("/admin/reload").await;
    assert_eq!(body["result"], "rejected", "{status} {body}");
    let errors = body["errors"].to_string();
    assert!(
        errors.contains("proxy.access_log") && errors.contains("no-such-directory"),
        "{body}"
    );
    let running = proxy.admin_get("/admin/config").await;
    assert_eq!(
        running["config"]["proxy"]["max_header_bytes"], 65536,
        "nothing applied"
    );
    send(&proxy, "kept", 1).await;
    eventually(Duration::from_secs(5), "the line in the old file", || {
        let n = count(&path, "kept");
        async move { (n == 1).then_some(()) }
    })
    .await;
}

/// Issue 31: the access log wrote `cache=MISS` where the response said `X-Cache: BYPASS`. The
/// log's `cache=` is now the header's word, for a miss, a hit and a bypass alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_cache_word_is_the_x_cache_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting(&format!(
            "access_log = {{ path = {:?} }}",
            path.display().to_string()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .cache(&[("l1", 1 << 20)], 2)
        .cached_route("data", "/data", "g", "default_ttl = \"60s\"");
    let proxy = TestProxy::start(&config).await;
    let http = client();
    for (id, target) in [
        ("word-miss", "/data/a"),
        ("word-hit", "/data/a"),
        ("word-bypass", "/data/a?bypass_cache=1"),
    ] {
        let response = http
            .get(proxy.url(target))
            .header("X-Request-Id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let word = response.headers()["x-cache"].to_str().unwrap().to_string();
        let needle = format!("request_id=\"{id}\"");
        let line = eventually(Duration::from_secs(3), "the access-log line", || {
            let found = lines(&path).into_iter().find(|l| l.contains(&needle));
            async move { found }
        })
        .await;
        assert!(
            line.contains(&format!(" cache={word} ")),
            "{id}: X-Cache {word}, log line {line}"
        );
    }
}

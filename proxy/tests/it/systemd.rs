//! The proxy under a service manager: this test plays systemd's side of sd_notify(3) (a unix
//! datagram socket named by `NOTIFY_SOCKET`, a watchdog interval in `WATCHDOG_USEC`) and
//! checks the exact sequence of notifications the real binary sends.

use crate::harness::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixDatagram;

/// The watchdog interval the test asks for; the proxy pings at half of it.
const WATCHDOG: Duration = Duration::from_millis(400);

/// One notification datagram, as its `KEY=value` lines.
#[derive(Debug, Clone)]
struct Notice(Vec<String>);

impl Notice {
    fn has(&self, line: &str) -> bool {
        self.0.iter().any(|l| l == line)
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }

    fn is_watchdog(&self) -> bool {
        self.0 == ["WATCHDOG=1"]
    }
}

/// The systemd side: the socket, and the watchdog pings seen so far (kept apart, because they
/// interleave with everything else).
struct Manager {
    socket: UnixDatagram,
    pings: usize,
}

impl Manager {
    /// The next notification that is not a watchdog ping, within a deadline.
    async fn next(&mut self, what: &str) -> Notice {
        let deadline = patient(Duration::from_secs(15));
        let found = tokio::time::timeout(deadline, async {
            let mut buffer = vec![0u8; 4096];
            loop {
                let n = self.socket.recv(&mut buffer).await.expect("recv");
                let text = String::from_utf8(buffer[..n].to_vec()).expect("UTF-8 notice");
                let notice = Notice(text.lines().map(str::to_string).collect());
                if notice.is_watchdog() {
                    self.pings += 1;
                } else {
                    return notice;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no notification ({what}) within {deadline:?}"))
    }

    /// Waits until `count` more watchdog pings arrived; any other notification is a failure.
    async fn pings(&mut self, count: usize) {
        let target = self.pings + count;
        let deadline = patient(Duration::from_secs(10));
        let mut buffer = vec![0u8; 4096];
        tokio::time::timeout(deadline, async {
            while self.pings < target {
                let n = self.socket.recv(&mut buffer).await.expect("recv");
                let text = String::from_utf8_lossy(&buffer[..n]).to_string();
                assert_eq!(text, "WATCHDOG=1\n", "only watchdog pings expected now");
                self.pings += 1;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("fewer than {count} watchdog pings within {deadline:?}"));
    }

    /// A reload's two notifications: `RELOADING=1` with a timestamp, then `READY=1` with the
    /// status. Returns the status and the timestamp.
    async fn reload(&mut self, what: &str) -> (String, u64) {
        let reloading = self.next(what).await;
        assert!(reloading.has("RELOADING=1"), "{what}: {reloading:?}");
        let usec: u64 = reloading
            .value("MONOTONIC_USEC")
            .unwrap_or_else(|| panic!("{what}: no MONOTONIC_USEC in {reloading:?}"))
            .parse()
            .expect("MONOTONIC_USEC is a number");
        let ready = self.next(what).await;
        assert!(ready.has("READY=1"), "{what}: {ready:?}");
        (ready.value("STATUS").expect("STATUS").to_string(), usec)
    }
}

/// Starts the proxy in `dir` with `NOTIFY_SOCKET` and `WATCHDOG_USEC`, without waiting.
fn start_notifying(config: &TestConfig, dir: tempfile::TempDir, socket: &Path) -> TestProxy {
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config.render()).unwrap();
    let mut command = Command::new(binary());
    command
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string());
    let child = ChildGuard::spawn_logged(&mut command, &dir.path().join("proxy.log"), "proxy");
    TestProxy {
        child,
        base: format!("http://127.0.0.1:{}", config.proxy_port),
        admin: format!("http://127.0.0.1:{}", config.admin_port),
        config_path,
        client: Client::Http1,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_full_at_max_connections_still_pings_the_watchdog() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting("max_connections = 1")
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("all", "/", "g");
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let mut manager = Manager {
        socket: UnixDatagram::bind(&socket_path).unwrap(),
        pings: 0,
    };
    let proxy = start_notifying(&config, dir, &socket_path);
    assert!(manager.next("start-up").await.has("READY=1"));
    // One kept-alive connection holds the only slot: the watchdog's probe connection is
    // closed unanswered, which shows a live request thread, not a hung one.
    let mut held = tokio::net::TcpStream::connect(("127.0.0.1", config.proxy_port))
        .await
        .unwrap();
    held.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    held.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let refused = client().get(proxy.url("/x")).send().await;
    assert!(refused.is_err(), "the slot is held: {refused:?}");
    manager.pings(3).await;
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_ready_reloading_stopping_and_pings_the_watchdog_after_real_requests() {
    let backend = TestBackend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let access_log = dir.path().join("access.log");
    let config = TestConfig::new()
        .proxy_setting(&format!(
            "access_log = {{ path = \"{}\" }}",
            access_log.display()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("all", "/", "g");
    let socket_path = dir.path().join("notify.sock");
    let mut manager = Manager {
        socket: UnixDatagram::bind(&socket_path).unwrap(),
        pings: 0,
    };
    let mut proxy = start_notifying(&config, dir, &socket_path);

    // READY comes first, and only once the listener answers: a request sent the moment it
    // arrives, with no retry, is served.
    let ready = manager.next("start-up").await;
    assert!(ready.has("READY=1"), "{ready:?}");
    assert_eq!(
        ready.value("STATUS"),
        Some("serving generation 1; no reload yet")
    );
    let response = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // The watchdog is pinged at half the interval, each ping after a real request through the
    // listener (`OPTIONS *`): the access log shows them, and nobody else sends any.
    manager.pings(3).await;
    let probes = std::fs::read_to_string(&access_log)
        .unwrap()
        .lines()
        .filter(|line| line.contains("OPTIONS"))
        .count();
    assert!(probes >= 3, "{probes} OPTIONS requests for 3 pings");

    // SIGHUP with the same file: a reload all the same, unchanged.
    proxy.signal(Signal::SIGHUP);
    let (status, first_usec) = manager.reload("SIGHUP").await;
    assert_eq!(
        status,
        "serving generation 1; last reload (signal): unchanged"
    );

    // A changed file through the watcher: applied.
    let second = TestConfig::same_ports(&config)
        .proxy_setting(&format!(
            "access_log = {{ path = \"{}\" }}",
            access_log.display()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[2]))
        .route("all", "/", "g");
    proxy.write_config(&second.render());
    let (status, second_usec) = manager.reload("file edit").await;
    assert_eq!(status, "serving generation 2; last reload (file): applied");
    assert!(second_usec > first_usec);

    // A broken file through the watcher, then by SIGHUP: rejected both times, and READY=1 ends
    // each, so `systemctl reload` returns instead of waiting for its timeout.
    proxy.write_config("[proxy\n");
    let (status, _) = manager.reload("broken file").await;
    assert_eq!(status, "serving generation 2; last reload (file): rejected");
    proxy.signal(Signal::SIGHUP);
    let (status, _) = manager.reload("SIGHUP on a broken file").await;
    assert_eq!(
        status,
        "serving generation 2; last reload (signal): rejected"
    );
    let response = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(response.headers()["x-config-generation"], "2");

    proxy.signal(Signal::SIGTERM);
    let stopping = manager.next("SIGTERM").await;
    assert!(stopping.has("STOPPING=1"), "{stopping:?}");
    assert_eq!(
        proxy.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
}

/// Starts the proxy with its standard error a pipe and `JOURNAL_STREAM` set to what
/// `journal_stream` makes of the pipe's `(device, inode)`; returns the proxy and its lines.
fn start_with_journal_stream(
    config: &TestConfig,
    dir: &std::path::Path,
    journal_stream: impl Fn(u64, u64) -> String,
) -> (ChildGuard, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead as _;
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config.render()).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    let stream = std::fs::metadata(format!("/proc/self/fd/{}", writer.as_raw_fd())).unwrap();
    let child = Command::new(binary())
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .env("JOURNAL_STREAM", journal_stream(stream.dev(), stream.ino()))
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    (ChildGuard::new(child, "proxy"), received)
}

/// The first line that contains `text`, within a deadline; the lines before it are dropped.
fn line_with(lines: &std::sync::mpsc::Receiver<String>, text: &str) -> String {
    let deadline = std::time::Instant::now() + patient(Duration::from_secs(15));
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(error) => panic!("no log line with {text:?}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_journald_log_lines_carry_syslog_priorities_and_no_timestamps() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("all", "/", "g");
    let dir = tempfile::tempdir().unwrap();
    let (proxy, lines) = start_with_journal_stream(&config, dir.path(), |device, inode| {
        format!("{device}:{inode}")
    });
    let serving = line_with(&lines, "scalelab-proxy serving");
    assert!(
        serving.starts_with("<6> INFO scalelab_proxy::server: scalelab-proxy serving"),
        "{serving:?}"
    );
    // SIGHUP before the handler is installed would end the process: wait for the admin API,
    // which starts with the handler.
    let http = client();
    let health = format!("http://127.0.0.1:{}/health", config.admin_port);
    eventually(Duration::from_secs(15), "the admin API to answer", || {
        let (http, health) = (http.clone(), health.clone());
        async move {
            let response = http.get(health).send().await.ok()?;
            response.status().is_success().then_some(())
        }
    })
    .await;
    std::fs::write(dir.path().join("config.toml"), "[proxy\n").unwrap();
    proxy.signal(Signal::SIGHUP);
    let rejected = line_with(&lines, "config reload rejected");
    assert!(rejected.starts_with("<3>ERROR "), "{rejected:?}");
    let kept = line_with(&lines, "keeping the running config");
    assert!(kept.starts_with("<4> WARN "), "{kept:?}");
}

#[test]
fn a_journal_stream_that_is_not_standard_error_changes_nothing() {
    // A child of a service inherits `JOURNAL_STREAM` even when its standard error goes
    // elsewhere; only the stream it names gets the journal's format.
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("all", "/", "g");
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, lines) = start_with_journal_stream(&config, dir.path(), |device, inode| {
        format!("{device}:{}", inode + 1)
    });
    let serving = line_with(&lines, "scalelab-proxy serving");
    // An RFC 3339 timestamp leads the line (after any colour codes), as without systemd.
    let plain = strip_colours(&serving);
    assert!(
        plain.len() > 5 && plain[..4].bytes().all(|b| b.is_ascii_digit()) && &plain[4..5] == "-",
        "{serving:?}"
    );
}

/// `line` without its ANSI colour sequences (`ESC [ ... m`).
fn strip_colours(line: &str) -> String {
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

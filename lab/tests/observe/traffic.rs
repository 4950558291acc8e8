//! Traffic that produces every kind of event a dashboard panel shows, each checked where it happens (the status a
//! client sees, the proxy's own view) and then in Prometheus, so that "the query returns data" cannot pass on
//! series that only ever held zeros.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use scalelab_test_support::{eventually_blocking, patient, Signal};
use serde_json::{json, Value};

use crate::support::alive;
use crate::{query, rewrite_config, Ports};

/// The running lab, as the traffic sees it.
pub struct Lab<'a> {
    pub http: &'a Client,
    pub ports: &'a Ports,
    pub config: &'a Path,
    pub token: &'a str,
    pub prometheus: &'a str,
}

/// Prometheus scrapes every second; rounds of traffic that far apart land in different scrapes.
const SCRAPE: Duration = Duration::from_secs(1);

impl Lab<'_> {
    fn proxy(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.proxy)
    }

    fn get(&self, path: &str, token: bool) -> u16 {
        let mut request = self.http.get(self.proxy(path));
        if token {
            request = request.bearer_auth(self.token);
        }
        request.send().unwrap().status().as_u16()
    }

    /// A GET through the proxy with one extra header (and the token, which the gateways check).
    fn get_with(&self, path: &str, header: (&str, &str)) -> u16 {
        self.http
            .get(self.proxy(path))
            .header(header.0, header.1)
            .bearer_auth(self.token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// Queues a task through the proxy and the gateway; its id when the worker accepted it.
    fn task(&self, priority: &str, body: &Value) -> (u16, Option<String>) {
        let response = self
            .http
            .post(self.proxy(&format!("/longtask?priority={priority}")))
            .bearer_auth(self.token)
            .json(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or_default();
        (status, body["task_id"].as_str().map(str::to_owned))
    }

    fn chaos(&self, port: u16, patch: Value) {
        let response = self
            .http
            .post(format!("http://127.0.0.1:{port}/admin/chaos"))
            .json(&patch)
            .send()
            .unwrap();
        assert!(response.status().is_success(), "chaos {patch} on {port}");
    }

    /// The admin token `up` made for this lab (kept in its data dir): the admin API needs it.
    fn admin_token(&self) -> String {
        let data = self.config.parent().unwrap_or(Path::new(".")).join("data");
        scalelab_lab::admin_token::load(&data).expect("up keeps its admin token in the data dir")
    }

    fn admin(&self, path: &str) -> Value {
        self.http
            .get(format!("http://127.0.0.1:{}{path}", self.ports.admin))
            .bearer_auth(self.admin_token())
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Whether the proxy sends traffic to the gateway on `port` (healthy and not drained).
    fn gateway_up(&self, port: u16) -> bool {
        let stats = self.admin("/stats");
        let url = format!("http://127.0.0.1:{port}");
        stats["upstreams"]["gateways"]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["url"] == url.as_str())
            .and_then(|s| s["health"].as_bool())
            .unwrap()
    }

    /// One HTTPS request through the listener `up` serves with its development CA (a handshake
    /// for the TLS panel). Read before the reload below, which picks another `tls_port` for the
    /// file (the running listener keeps the one it started with).
    fn https(&self) {
        let text = std::fs::read_to_string(self.config).unwrap();
        let port = crate::support::tls_port(&text);
        let ca = self.config.parent().unwrap().join("data/tls/ca.pem");
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20"])
            .args(["--output", "/dev/null", "--write-out", "%{http_code}"])
            .arg("--cacert")
            .arg(&ca)
            .arg(format!("https://localhost:{port}/health"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "200",
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A WebSocket handshake through the proxy to a gateway's echo; the connection stays open
    /// (an upgraded connection on the route) until the returned stream is dropped.
    fn websocket(&self) -> TcpStream {
        let mut stream = TcpStream::connect(("127.0.0.1", self.ports.proxy)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
                  Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            )
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0_u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).unwrap(),
                1,
                "the proxy closed the handshake"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        stream
    }

    /// Everything, in order; `doomed` is the pid of the third gateway, killed at the end.
    pub fn run(&self, doomed: u32) {
        let mut tasks = Vec::new();
        let io = |duration: f64| json!({"task_type": "io_intensive", "duration": duration});
        // Ordinary traffic over several scrapes: cache misses, hits and promotions, bypassed requests that reach
        // every gateway and through them the database and the microservice, refused tokens, a route miss, and a
        // task of each priority. An HTTPS request, and a WebSocket held open across the rounds'
        // scrapes.
        self.https();
        let websocket = self.websocket();
        for round in 0..4u32 {
            assert_eq!(self.get("/data", true), 200);
            assert_eq!(self.get("/data", true), 200);
            // Six ids through a cache of 2 + 3 entries: objects move down and fall out.
            for id in [round + 1, round + 3] {
                assert_eq!(self.get(&format!("/data/complex?id={id}"), true), 200);
            }
            for _ in 0..3 {
                assert_eq!(self.get("/data?bypass_cache=true", true), 200);
            }
            assert_eq!(self.get("/data", false), 401);
            assert_eq!(self.get("/nowhere", false), 404);
            // The access gates' row: forward auth through a gateway's /auth/verify (allowed, then
            // refused), and an IP allow list the test client is not in.
            assert_eq!(self.get("/whoami", true), 200);
            assert_eq!(self.get("/whoami", false), 401);
            assert_eq!(self.get("/office", false), 403);
            assert_eq!(self.get("/health", false), 200);
            // The canary split: two by weight, one pinned to the canary; and a mirrored request.
            for _ in 0..2 {
                assert_eq!(self.get_with("/canary/health", ("x-canary", "0")), 200);
            }
            assert_eq!(self.get_with("/canary/health", ("x-canary", "1")), 200);
            assert_eq!(self.get("/mirrored/health", false), 200);
            // The compression row: a gzip response (its bytes counted in and out).
            let zipped = self
                .http
                .get(self.proxy("/compressed/health"))
                .header("accept-encoding", "gzip")
                .send()
                .unwrap();
            assert_eq!(zipped.status().as_u16(), 200);
            assert_eq!(zipped.headers()["content-encoding"], "gzip");
            for priority in ["high", "normal", "low"] {
                let (status, id) = self.task(priority, &io(0.1));
                assert_eq!(status, 202, "{priority}");
                tasks.push(id.unwrap());
            }
            std::thread::sleep(SCRAPE);
        }
        drop(websocket);
        // A task that fails on purpose and one the worker refuses (passed on by the gateway as a 400).
        let (status, id) = self.task(
            "low",
            &json!({"task_type": "io_intensive", "duration": 0.1, "fail": true}),
        );
        assert_eq!(status, 202);
        tasks.push(id.unwrap());
        assert_eq!(self.task("high", &io(-1.0)).0, 400);

        // 5xx: the database fails every query, so the gateways answer /data with an error of their own.
        self.chaos(self.ports.database, json!({"error_rate": 1.0}));
        for _ in 0..3 {
            let status = self.get("/data?bypass_cache=true", true);
            assert!(status >= 500, "a failing database gave {status}");
        }
        // The same failure through the canary group (pinned): its first 5xx ejects that server
        // (consecutive_5xx = 1); the second server is kept (max_ejection: half of two).
        for _ in 0..2 {
            let status = self.get_with("/canary/data?bypass_cache=true", ("x-canary", "1"));
            assert!(
                status >= 500,
                "a failing database gave {status} through the canary"
            );
        }
        self.chaos(self.ports.database, json!({"error_rate": 0.0}));

        // A health flip: the second gateway fails its checks until the proxy takes it out, then recovers.
        let flapping = self.ports.gateways[1];
        self.chaos(flapping, json!({"fail_health": true}));
        eventually_blocking(Duration::from_secs(10), "the gateway taken out", || {
            (!self.gateway_up(flapping)).then_some(())
        });
        self.chaos(flapping, json!({"fail_health": false}));
        eventually_blocking(Duration::from_secs(10), "the gateway back", || {
            self.gateway_up(flapping).then_some(())
        });

        // A reload that changes something, so the generation moves.
        rewrite_config(self.config, self.ports, "3s");
        let reload = self
            .http
            .post(format!(
                "http://127.0.0.1:{}/admin/reload",
                self.ports.admin
            ))
            .bearer_auth(self.admin_token())
            .send()
            .unwrap();
        assert_eq!(reload.status(), 200);
        eventually_blocking(Duration::from_secs(10), "generation 2", || {
            (self.admin("/stats")["generation"].as_u64() >= Some(2)).then_some(())
        });

        // Refused connects: the third gateway is killed, and requests that still pick it are retried elsewhere.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(doomed).unwrap()),
            Signal::SIGTERM,
        )
        .unwrap();
        eventually_blocking(Duration::from_secs(10), "the gateway to exit", || {
            (!alive(doomed)).then_some(())
        });
        // Round robin over three servers picks the dead one within three requests, well before two failed checks
        // (two seconds) take it out of rotation; every request still succeeds, on another gateway.
        for _ in 0..6 {
            assert_eq!(self.get("/data?bypass_cache=true", true), 200);
        }

        self.wait_for_tasks(&tasks);
        self.assert_events_in_prometheus();
    }

    /// Waits until every task finished, so each priority has a wait and a run time.
    fn wait_for_tasks(&self, tasks: &[String]) {
        let worker = format!("http://127.0.0.1:{}", self.ports.worker);
        for id in tasks {
            eventually_blocking(Duration::from_secs(30), "a task to finish", || {
                let task: Value = self
                    .http
                    .get(format!("{worker}/tasks/{id}"))
                    .send()
                    .ok()?
                    .json()
                    .ok()?;
                matches!(task["status"].as_str(), Some("completed" | "failed")).then_some(())
            });
        }
    }

    /// Each event above, counted in Prometheus (not only a series at zero).
    fn assert_events_in_prometheus(&self) {
        let events = [
            r#"scalelab_http_requests_total{code=~"5.."}"#,
            r#"scalelab_http_requests_total{code="401"}"#,
            r#"scalelab_http_requests_total{route="none"}"#,
            r#"scalelab_upstream_errors_total{kind="connect_refused"}"#,
            r#"scalelab_upstream_retries_total{outcome="recovered"}"#,
            r#"scalelab_health_checks_total{result="fail"}"#,
            r#"scalelab_health_transitions_total{to="unhealthy"}"#,
            r#"scalelab_health_transitions_total{to="healthy"}"#,
            r#"scalelab_cache_lookups_total{result="hit"}"#,
            r#"scalelab_cache_moves_total"#,
            r#"scalelab_cache_evictions_total"#,
            r#"scalelab_config_reloads_total{result="applied"}"#,
            r#"scalelab_gateway_dependency_requests_total{dependency="database", outcome="error"}"#,
            r#"scalelab_gateway_dependency_requests_total{dependency="microservice", outcome="ok"}"#,
            r#"scalelab_gateway_dependency_requests_total{dependency="worker", outcome="ok"}"#,
            r#"scalelab_worker_tasks_total{priority="high", outcome="completed"}"#,
            r#"scalelab_worker_tasks_total{priority="normal", outcome="completed"}"#,
            r#"scalelab_worker_tasks_total{priority="low", outcome="completed"}"#,
            r#"scalelab_worker_tasks_total{outcome="failed"}"#,
            r#"scalelab_worker_tasks_total{outcome="rejected"}"#,
            r#"scalelab_tls_handshakes_total{result="ok"}"#,
            r#"scalelab_upgrades_total{outcome="switched"}"#,
            r#"scalelab_upgraded_connections_open{route="ws"}"#,
            r#"scalelab_split_requests_total{route="canary", reason="match"}"#,
            r#"scalelab_split_requests_total{route="canary", reason="weight"}"#,
            r#"scalelab_mirror_requests_total{route="mirrored", status="200"}"#,
            r#"scalelab_outlier_ejections_total{upstream="canary", reason="consecutive_5xx"}"#,
            r#"scalelab_upstream_server_ejected{upstream="canary"}"#,
            r#"scalelab_upstream_server_ewma_seconds{upstream="gateways"}"#,
            r#"scalelab_compression_bytes_total{encoding="gzip", direction="in"}"#,
            r#"scalelab_compression_bytes_total{encoding="gzip", direction="out"}"#,
        ];
        let deadline = Instant::now() + patient(Duration::from_secs(20));
        loop {
            let missing: Vec<&str> = events
                .iter()
                .copied()
                .filter(|series| {
                    let expr = format!("sum(max_over_time({series}[5m])) > 0");
                    !query(self.http, self.prometheus, &expr).is_ok_and(|r| !r.is_empty())
                })
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "events Prometheus never counted:\n{}",
                missing.join("\n")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

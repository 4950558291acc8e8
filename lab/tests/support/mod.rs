//! What the lab's end-to-end tests share: the `scalelab` binary and its siblings, the dev `[auth]` table, a
//! driver for `scalelab up` that keeps its output, and a view of processes from /proc.
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use scalelab_test_support::{free_port, patient, ChildGuard, Signal};

/// The dev settings the shipped config.toml uses, in a temp config.
pub const AUTH: &str = r#"
[auth]
algorithms = ["HS256"]
secret = "scalelab-test-secret-0123456789-abcdefghij"
issuer = "scalelab"
audience = "scalelab-lab"
required_claims = ["exp"]
leeway = "5s"
"#;

pub fn scalelab() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scalelab"))
}

/// Integration tests build only this package's binaries; `up` needs its siblings in the same directory, so build
/// them into the same target dir and profile.
pub fn build_siblings() -> PathBuf {
    let bin_dir = scalelab().parent().unwrap().to_owned();
    let target_dir = bin_dir.parent().unwrap();
    let mut command = Command::new(env!("CARGO"));
    command
        .args([
            "build",
            "--bins",
            "-p",
            "scalelab-backends",
            "-p",
            "scalelab-proxy",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if bin_dir.file_name().and_then(|n| n.to_str()) == Some("release") {
        command.arg("--release");
    }
    let status = command.status().unwrap();
    assert!(status.success(), "building the lab's binaries failed");
    bin_dir
}

/// A ten-minute token from `scalelab token`, which the lab's `[auth]` table accepts.
pub fn mint_token(config: &Path) -> String {
    let output = Command::new(scalelab())
        .args(["token", "--sub", "e2e", "--ttl", "10m", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The proxy must accept the lab's config with its `[auth]` table: without it the gateways fail closed and the
/// seed's flow (tokens, `/data`, `/longtask`) cannot be tested, which is a failure, not a reason to test less.
pub fn assert_proxy_accepts_auth(bin_dir: &Path, config: &Path) {
    let output = Command::new(bin_dir.join("scalelab-proxy"))
        .args(["--check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scalelab-proxy --check refuses the lab's config with [auth], so the auth and seed flow cannot run:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Children of `parent`, from /proc (the test's independent view, not `up`'s own report).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the parenthesised command name: state, ppid, ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

pub fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent has not collected it yet.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

pub struct Up {
    /// Stopped with SIGTERM on drop, so that a failed assertion does not leave the lab running: SIGKILL would
    /// orphan `up`'s own children.
    pub child: ChildGuard,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Up {
    /// Starts `scalelab up` with `extra` arguments after the config and bin dir.
    pub fn start(config: &Path, bin_dir: &Path, extra: &[&str]) -> Up {
        let mut child = Command::new(scalelab())
            .args(["up", "--no-color", "--config"])
            .arg(config)
            .arg("--bin-dir")
            .arg(bin_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Up {
            child: ChildGuard::new(child, "scalelab up").stop_with(Signal::SIGTERM),
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`, keeping every line for the failure message; `timeout` is scaled by
    /// patience.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let timeout = patient(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {timeout:?}; output:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }
}

/// The start every test config shares: the proxy on the given ports (one thread, a short drain) and the
/// `gateways` upstream, checked every second.
pub fn proxy_head(proxy: u16, admin: u16, gateways: [u16; 3]) -> String {
    let [g1, g2, g3] = gateways;
    format!(
        r#"
[proxy]
listen = ["127.0.0.1:{proxy}"]
admin_listen = "127.0.0.1:{admin}"
threads = 1
debug_headers = "on"
shutdown_timeout = "2s"

[admin]
token = {{ env = "SCALELAB_ADMIN_TOKEN", optional = true }}

[upstreams.gateways]
strategy = "round_robin"
servers = [ {{ addr = "127.0.0.1:{g1}" }}, {{ addr = "127.0.0.1:{g2}" }}, {{ addr = "127.0.0.1:{g3}" }} ]
connect_timeout = "1s"
read_timeout = "10s"

[upstreams.gateways.health_check]
path = "/health"
interval = "1s"
timeout = "1s"
"#
    )
}

/// The seed's complex-data route (the gateway's fan-out to the database and the microservice),
/// behind the token and not cached, so every request reaches a gateway.
pub const COMPLEX_ROUTE: &str = r#"
[[routes]]
name = "complex"
auth = "jwt"
path = "/data/complex"
upstream = "gateways"
"#;

/// Promotion after two hits, and the seed's two data routes behind the token with the cache on: `/data` under
/// the key `my_data`, `/data/complex` under `<complex_prefix>{query.id}`.
pub fn cached_data_routes(complex_prefix: &str) -> String {
    format!(
        r#"
[cache.promotion]
hits = 2

[[routes]]
name = "data"
auth = "jwt"
path = "/data"
upstream = "gateways"
cache = {{ enabled = true, key = "my_data", default_ttl = "300s" }}

[[routes]]
name = "complex"
auth = "jwt"
path = "/data/complex"
upstream = "gateways"
cache = {{ enabled = true, key = "{complex_prefix}{{query.id}}", default_ttl = "300s" }}
"#
    )
}

/// The end every test config shares: the public `/health` route, the `[lab]` table on the
/// given ports (the HTTPS listener on a free one, read back with [`tls_port`]), and `[auth]`.
/// `ready_timeout` (how long `up` waits for its children and for Prometheus's targets) is
/// scaled like every other bound.
pub fn lab_tail(gateways: [u16; 3], microservice: u16, database: u16, worker: u16) -> String {
    let [g1, g2, g3] = gateways;
    let tls_port = free_port();
    let ready_timeout = patient(Duration::from_secs(60)).as_millis();
    format!(
        r#"
[[routes]]
name = "health"
path = "/health"
upstream = "gateways"

[lab]
data_dir = "data"
gateways = [{g1}, {g2}, {g3}]
microservice = {microservice}
database = {database}
worker = {worker}
workers = 2
database_latency_ms = [0, 5]
ready_timeout = "{ready_timeout}ms"
tls_port = {tls_port}
{AUTH}"#
    )
}

/// The `[lab] tls_port` of a config made with [`lab_tail`].
pub fn tls_port(config_text: &str) -> u16 {
    let table: toml::Table = toml::from_str(config_text).unwrap();
    u16::try_from(table["lab"]["tls_port"].as_integer().unwrap()).unwrap()
}

//! Starting backend binaries on free ports with temporary data dirs, polling with deadlines, and cleaning up.

use std::collections::HashSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

static USED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port nothing listens on, never handed out twice in this process.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if USED_PORTS
            .lock()
            .unwrap()
            .get_or_insert_with(HashSet::new)
            .insert(port)
        {
            return port;
        }
    }
}

/// A shared HTTP client that ignores any proxy settings in the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A running backend binary; killed and reaped on drop, printing its log if the test failed.
pub struct Backend {
    child: Option<Child>,
    pub url: String,
    log: PathBuf,
}

impl Backend {
    /// Starts `binary` with `--port` on a free port plus `args`, and waits until `/health` answers 200.
    pub async fn start(binary: &str, args: &[&str], log_dir: &Path) -> Self {
        let port = free_port();
        let log = log_dir.join(format!("{port}.log"));
        let child = Command::new(binary)
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let backend = Self {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = client();
        eventually("backend health", || async {
            let response = client
                .get(format!("{}/health", backend.url))
                .send()
                .await
                .ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        backend
    }

    /// SIGKILL: no chance to clean up, like a crash.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the process to exit and returns its status.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- log of {} ---\n{}",
                self.url,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Polls `probe` every 20 ms until it yields `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs a JSON document, returning the status and body.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

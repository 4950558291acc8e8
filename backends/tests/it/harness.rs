//! Starting backend binaries on free ports with temporary data dirs; ports, polling, clients
//! and the process guard come from `scalelab-test-support`.

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use scalelab_test_support::{free_port, ChildGuard, Signal};
use serde_json::Value;

/// How long any wait may take on a quiet machine before the test fails; `eventually` scales it
/// by `SCALELAB_TEST_PATIENCE`.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A shared HTTP client that ignores any proxy settings in the environment.
pub fn client() -> reqwest::Client {
    scalelab_test_support::client(Duration::from_secs(5))
}

/// A running backend binary; killed and reaped on drop, printing its log if the test failed.
pub struct Backend {
    process: ChildGuard,
    pub url: String,
}

impl Backend {
    /// Starts `binary` with `--port` on a free port plus `args`, and waits until `/health` answers 200.
    pub async fn start(binary: &str, args: &[&str], log_dir: &Path) -> Self {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command.args(["--port", &port.to_string()]).args(args);
        let process =
            ChildGuard::spawn_logged(&mut command, &log_dir.join(format!("{port}.log")), &url);
        let backend = Self { process, url };
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
        self.process.kill_hard();
    }

    /// SIGTERM, then waits for the process to exit and returns its status.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.process.signal(Signal::SIGTERM);
        self.process.wait_exit(PATIENCE).await
    }
}

/// Polls `probe` until it yields `Some`, failing the test after [`PATIENCE`] (scaled).
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    scalelab_test_support::eventually(PATIENCE, what, probe).await
}

/// GETs a JSON document, returning the status and body.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

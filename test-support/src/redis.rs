//! A real `redis-server` (Debian's package; `scripts/install-deps.sh` installs it) on a free port with its data in a
//! test's temporary directory, for the scale-out tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::patience::patient;
use crate::poll::eventually_blocking;
use crate::ports::free_port;
use crate::process::ChildGuard;

/// A running redis-server, killed on drop.
pub struct RedisServer {
    process: Option<ChildGuard>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts redis-server on a free port with append-only persistence in `dir`, and waits until it answers PING.
    ///
    /// # Panics
    /// redis-server is not installed or does not answer in time.
    pub fn start(dir: &Path) -> RedisServer {
        let mut server = RedisServer {
            process: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL, like a crash or a network cut); [`RedisServer::restart`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_hard();
        }
    }

    /// Starts the server again on the same port and data directory, and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &self.dir.to_string_lossy(),
            "--appendonly",
            "yes",
            "--save",
            "",
        ]);
        let log = self.dir.join(format!("redis-{}.log", self.port));
        self.process = Some(ChildGuard::spawn_logged(&mut command, &log, "redis-server"));
        let port = self.port;
        eventually_blocking(
            patient(Duration::from_secs(10)),
            "redis-server to answer PING",
            || ping(port).then_some(()),
        );
    }
}

/// Whether a server on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0_u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

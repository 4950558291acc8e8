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
    /// Set for a server that speaks only TLS ([`RedisServer::start_tls`]).
    tls: Option<TlsFiles>,
}

/// The PEM files of a TLS server: a private CA and the server's certificate and key.
struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
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
            tls: None,
        };
        server.restart();
        server
    }

    /// Starts redis-server speaking only TLS on a free port, with a certificate for
    /// `127.0.0.1` and `localhost` signed by a private CA made here ([`RedisServer::ca`]).
    ///
    /// # Panics
    /// The certificates cannot be made, or the server does not answer in time.
    pub fn start_tls(dir: &Path) -> RedisServer {
        let mut server = RedisServer {
            process: None,
            port: free_port(),
            dir: dir.to_owned(),
            tls: Some(TlsFiles::write(dir)),
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>/0`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The server's `used_memory` (`INFO memory`), through redis-cli; a plain server only.
    ///
    /// # Panics
    /// redis-cli cannot run or the answer has no `used_memory`.
    pub fn used_memory(&self) -> u64 {
        let info = self.cli(&["INFO", "memory"]);
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no used_memory in {info:?}"))
    }

    /// Runs one command through redis-cli and returns its output; a plain server only.
    ///
    /// # Panics
    /// redis-cli cannot run.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The PEM file of the CA that signed a TLS server's certificate.
    ///
    /// # Panics
    /// The server does not speak TLS.
    pub fn ca(&self) -> &Path {
        &self.tls.as_ref().expect("a TLS server").ca
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
        let port = self.port.to_string();
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(tls) => command.args(["--port", "0", "--tls-port", &port]).args([
                "--tls-cert-file".as_ref(),
                tls.cert.as_os_str(),
                "--tls-key-file".as_ref(),
                tls.key.as_os_str(),
                "--tls-ca-cert-file".as_ref(),
                tls.ca.as_os_str(),
                // The proxy presents no client certificate: the server's is what is checked.
                "--tls-auth-clients".as_ref(),
                "no".as_ref(),
            ]),
        };
        command.args([
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
        let ca = self.tls.as_ref().map(|tls| tls.ca.clone());
        eventually_blocking(
            patient(Duration::from_secs(10)),
            "redis-server to answer PING",
            || match &ca {
                None => ping(port).then_some(()),
                Some(ca) => ping_tls(port, ca).then_some(()),
            },
        );
    }
}

impl TlsFiles {
    /// Makes a CA and a server certificate for `127.0.0.1` and `localhost`, written to `dir`.
    fn write(dir: &Path) -> TlsFiles {
        let ca = crate::pki::Ca::new();
        let server = ca.leaf(&["127.0.0.1", "localhost"]);
        let files = TlsFiles {
            ca: dir.join("redis-ca.pem"),
            cert: dir.join("redis-server.pem"),
            key: dir.join("redis-server.key"),
        };
        std::fs::write(&files.ca, ca.pem()).expect("write the CA");
        std::fs::write(&files.cert, &server.cert_pem).expect("write the certificate");
        std::fs::write(&files.key, &server.key_pem).expect("write the key");
        files
    }
}

/// Whether a TLS server on `port` answers `PING` (through redis-cli, which speaks TLS).
fn ping_tls(port: u16, ca: &Path) -> bool {
    Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(ca)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "PING"])
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"PONG"))
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

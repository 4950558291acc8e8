//! A real DNS server for the service discovery tests: `dnsmasq` (Debian's `dnsmasq-base`;
//! `scripts/install-deps.sh --test` installs it) on a free loopback port, answering only from
//! files in a test's directory, and `SlowDns`, a tiny UDP server that answers every query
//! after a delay.
//!
//! How dnsmasq is started (its private flags, a TTL of one second, the readiness probe) is
//! `scalelab_common::dnsmasq`, shared with `scalelab up --dns`. It re-reads its hosts file on
//! SIGHUP but not its config file, where SRV records live, so `set_hosts` rewrites and
//! signals, while `set_srv` rewrites and restarts it on the same port.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scalelab_common::dnsmasq;

use crate::patience::patient;
use crate::poll::eventually_blocking;
use crate::ports::free_port;
use crate::process::ChildGuard;

/// One SRV record: `_service._proto.name` -> `target:port` with its priority and weight.
#[derive(Debug, Clone)]
pub struct Srv {
    pub name: String,
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// A running dnsmasq, killed on drop.
pub struct Dnsmasq {
    process: Option<ChildGuard>,
    port: u16,
    dir: PathBuf,
    /// How many times it has read its hosts file (each start and each SIGHUP).
    reads: usize,
}

impl Dnsmasq {
    /// Starts dnsmasq on a free port with an empty hosts file and no SRV records, and waits
    /// until it answers.
    ///
    /// # Panics
    /// dnsmasq is not installed or does not answer in time.
    pub fn start(dir: &Path) -> Dnsmasq {
        let dir = dir.join(format!("dnsmasq-{}", free_port()));
        std::fs::create_dir_all(&dir).expect("create the dnsmasq directory");
        let mut server = Dnsmasq {
            process: None,
            port: free_port(),
            dir,
            reads: 0,
        };
        std::fs::write(server.hosts_path(), "").expect("write the hosts file");
        std::fs::write(server.conf_path(), "").expect("write the config file");
        server.restart();
        server
    }

    /// `127.0.0.1:PORT`, for `[dns] resolvers`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn files(&self) -> dnsmasq::Files {
        dnsmasq::Files::under(&self.dir)
    }

    fn hosts_path(&self) -> PathBuf {
        self.files().hosts
    }

    fn conf_path(&self) -> PathBuf {
        self.files().conf
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }

    /// Replaces every A/AAAA record: `records` are (address, name) pairs, as in /etc/hosts.
    /// Returns once dnsmasq has read the new file (its log says so).
    ///
    /// # Panics
    /// The file cannot be written or dnsmasq does not read it in time.
    pub fn set_hosts(&mut self, records: &[(&str, &str)]) {
        std::fs::write(self.hosts_path(), dnsmasq::hosts_text(records))
            .expect("write the hosts file");
        if let Some(process) = &self.process {
            process.signal(nix::sys::signal::Signal::SIGHUP);
            self.reads += 1;
            self.wait_for_reads();
        }
    }

    /// Replaces every SRV record; dnsmasq reads them only at start, so it is restarted on the
    /// same port (the hosts file stays).
    ///
    /// # Panics
    /// The file cannot be written or dnsmasq does not come back in time.
    pub fn set_srv(&mut self, records: &[Srv]) {
        let text: String = records
            .iter()
            .map(|srv| {
                format!(
                    "srv-host={},{},{},{},{}\n",
                    srv.name, srv.target, srv.port, srv.priority, srv.weight
                )
            })
            .collect();
        std::fs::write(self.conf_path(), text).expect("write the config file");
        if self.process.is_some() {
            self.restart();
        }
    }

    /// Stops dnsmasq (SIGKILL): every query from then on goes unanswered.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_hard();
        }
    }

    /// Starts dnsmasq again on the same port with the current files, and waits until it
    /// answers.
    ///
    /// # Panics
    /// dnsmasq cannot start or does not answer in time.
    pub fn restart(&mut self) {
        self.stop();
        let binary = dnsmasq::find_binary(std::env::var_os("PATH").as_deref())
            .expect("dnsmasq is not installed; `bash scripts/install-deps.sh --test` installs it");
        let mut command = Command::new(binary);
        command.args(dnsmasq::args(self.port, &self.files()));
        self.process = Some(ChildGuard::spawn_logged(
            &mut command,
            &self.log_path(),
            "dnsmasq",
        ));
        self.reads = 1;
        self.wait_for_reads();
        let addr = self.addr();
        eventually_blocking(
            patient(Duration::from_secs(10)),
            "dnsmasq to answer a query",
            || dnsmasq::answers(addr, Duration::from_millis(200)).then_some(()),
        );
    }

    fn wait_for_reads(&self) {
        let log = self.log_path();
        let marker = dnsmasq::read_marker(&self.hosts_path());
        let want = self.reads;
        eventually_blocking(
            patient(Duration::from_secs(10)),
            "dnsmasq to read its hosts file",
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let reads = text.lines().filter(|line| line.contains(&marker)).count();
                (reads >= want).then_some(())
            },
        );
    }
}

/// A DNS server that answers every A query with `answer` (TTL 1 s) after `delay`, and every
/// other type with no records, each query on its own thread: a resolver that is slow, not
/// dead. The thread ends with the process.
pub struct SlowDns {
    addr: SocketAddr,
    received: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl SlowDns {
    /// # Panics
    /// No UDP socket can be bound on the loopback interface.
    pub fn start(delay: Duration, answer: Ipv4Addr) -> SlowDns {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind the slow DNS socket"));
        let addr = socket.local_addr().expect("local address");
        let received = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let (counted, done) = (received.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buffer) {
                let Some(reply) = reply(&buffer[..n], answer) else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let (socket, done) = (socket.clone(), done.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = socket.send_to(&reply, from);
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        SlowDns {
            addr,
            received,
            answered,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// Answers sent so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

/// The answer to `query`: its question, and for type A one record with `answer`.
fn reply(query: &[u8], answer: Ipv4Addr) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question's name ends at its zero label; its type and class follow.
    let mut end = 12;
    while end < query.len() && query[end] != 0 {
        end += usize::from(query[end]) + 1;
    }
    let question_end = end + 5;
    if question_end > query.len() {
        return None;
    }
    let qtype = u16::from_be_bytes([query[end + 1], query[end + 2]]);
    let answers: u16 = u16::from(qtype == 1);
    let mut packet = Vec::with_capacity(question_end + 16);
    packet.extend_from_slice(&query[..2]);
    packet.extend_from_slice(&[0x81, 0x80, 0, 1]);
    packet.extend_from_slice(&answers.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 0]);
    packet.extend_from_slice(&query[12..question_end]);
    if answers == 1 {
        packet.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        packet.extend_from_slice(&answer.octets());
    }
    Some(packet)
}

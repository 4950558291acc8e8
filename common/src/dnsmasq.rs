//! How scalelab runs `dnsmasq` (Debian's `dnsmasq-base`) as a private name server: on one
//! loopback port, answering only from the files it is given, never asking anyone else. The test
//! suites' `Dnsmasq` and `scalelab up --dns` both start it from here, so the two cannot drift
//! apart in the flags that make it private (`--no-resolv`, `--local=/#/`) or short-lived in its
//! answers (`--local-ttl=1`).
//!
//! dnsmasq re-reads its hosts file (`--addn-hosts`) on SIGHUP but not its config file, where SRV
//! records live (`srv-host=`): a changed address set is a rewrite and a signal, a changed SRV set
//! a restart.

use std::ffi::OsString;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Debian installs it; a non-root `PATH` often lacks `/usr/sbin`.
const DEBIAN_BINARY: &str = "/usr/sbin/dnsmasq";

/// The dnsmasq binary: Debian's path, else the first `dnsmasq` in `path` (the value of `PATH`).
pub fn find_binary(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let debian = Path::new(DEBIAN_BINARY);
    if debian.is_file() {
        return Some(debian.to_owned());
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file())
}

/// The files one private dnsmasq reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// A/AAAA records, one `ADDRESS NAME` line each (as in /etc/hosts); re-read on SIGHUP.
    pub hosts: PathBuf,
    /// Extra config lines (`srv-host=`); read at start only.
    pub conf: PathBuf,
    /// Where dnsmasq writes its process id, so that another process can signal it.
    pub pid: PathBuf,
}

impl Files {
    /// The usual names under `dir`: `hosts`, `srv.conf`, `dnsmasq.pid`.
    pub fn under(dir: &Path) -> Files {
        Files {
            hosts: dir.join("hosts"),
            conf: dir.join("srv.conf"),
            pid: dir.join("dnsmasq.pid"),
        }
    }
}

/// The arguments of a dnsmasq serving `files` on `127.0.0.1:port` in the foreground, logging to
/// standard error. Every answer has a TTL of one second, so a resolver that follows the TTL
/// asks again within a second of a change; a name it does not know is NXDOMAIN.
pub fn args(port: u16, files: &Files) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![format!("--port={port}").into()];
    args.extend(
        [
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--keep-in-foreground",
            "--log-facility=-",
            "--local-ttl=1",
            "--max-ttl=1",
            "--local=/#/",
        ]
        .map(OsString::from),
    );
    for (flag, path) in [
        ("--addn-hosts", &files.hosts),
        ("--conf-file", &files.conf),
        ("--pid-file", &files.pid),
    ] {
        let mut arg = OsString::from(format!("{flag}="));
        arg.push(path);
        args.push(arg);
    }
    // As root dnsmasq would switch to `nobody`, who may not read the hosts file's directory on a
    // SIGHUP; any other user keeps its own identity anyway.
    if is_root() {
        args.push("--user=root".into());
    }
    args
}

/// A hosts file giving each `(address, name)` pair its record.
pub fn hosts_text<A: AsRef<str>, N: AsRef<str>>(records: &[(A, N)]) -> String {
    records
        .iter()
        .map(|(addr, name)| format!("{} {}\n", addr.as_ref(), name.as_ref()))
        .collect()
}

/// The line dnsmasq logs each time it reads `hosts` (at start and on every SIGHUP).
pub fn read_marker(hosts: &Path) -> String {
    format!("read {}", hosts.display())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .map(|ids| ids.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// A DNS query for `name` (type A, recursion desired) with id `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        // Labels of a probe name are short ASCII; a longer one would be cut, never panic.
        let bytes = label.as_bytes();
        let len = bytes.len().min(63);
        packet.push(u8::try_from(len).unwrap_or(63));
        packet.extend_from_slice(&bytes[..len]);
    }
    packet.extend_from_slice(&[0, 0, 1, 0, 1]);
    packet
}

/// Whether a DNS server at `addr` answers a query within `timeout` (any response code counts:
/// the question is whether it serves, not what it knows). Blocking.
pub fn answers(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(timeout));
    if socket.send_to(&query(0x5ca1, "ready.probe"), addr).is_err() {
        return false;
    }
    let mut buffer = [0u8; 512];
    matches!(socket.recv_from(&mut buffer), Ok((n, _)) if n >= 12 && buffer[..2] == [0x5c, 0xa1])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_arguments_keep_it_private_and_name_its_files() {
        let files = Files::under(Path::new("/lab/dns"));
        let args: Vec<String> = args(5353, &files)
            .into_iter()
            .map(|arg| arg.into_string().unwrap())
            .collect();
        for expected in [
            "--port=5353",
            "--no-resolv",
            "--local=/#/",
            "--local-ttl=1",
            "--addn-hosts=/lab/dns/hosts",
            "--conf-file=/lab/dns/srv.conf",
            "--pid-file=/lab/dns/dnsmasq.pid",
        ] {
            assert!(
                args.iter().any(|arg| arg == expected),
                "{expected}: {args:?}"
            );
        }
    }

    #[test]
    fn hosts_lines_and_the_probe_query() {
        assert_eq!(
            hosts_text(&[("127.0.0.1", "a.lab"), ("127.0.0.2", "a.lab")]),
            "127.0.0.1 a.lab\n127.0.0.2 a.lab\n"
        );
        let packet = query(7, "ready.probe");
        assert_eq!(&packet[..2], &[0, 7]);
        assert_eq!(&packet[12..18], b"\x05ready");
        assert_eq!(&packet[packet.len() - 5..], &[0, 0, 1, 0, 1]);
    }
}

//! Whether a child itself holds its listening sockets. An answer on a port proves only that *something* listens
//! there: with another program on the proxy's port, the admin port answered while the proxy retried its bind, and
//! `up` called the lab up. So a child is ready only when each of its ports is a listening socket that the child's
//! own process holds: `/proc/net/tcp` and `tcp6` map listening ports to socket inodes, and `/proc/<pid>/fd` shows
//! which inodes the child has open.

use std::collections::HashSet;

/// The TCP state `/proc/net/tcp` writes for a listening socket.
const LISTEN: &str = "0A";

/// Why a port does not count as the child's yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// Another process listens on the port, so the child cannot.
    HeldByOther(u16),
    /// Nothing listens on the port yet.
    NotListening(u16),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::HeldByOther(port) => {
                write!(f, "port {port} is held by another program")
            }
            Missing::NotListening(port) => write!(f, "nothing listens on port {port} yet"),
        }
    }
}

/// The `(port, socket inode)` of every listening socket in a `/proc/net/tcp` or `tcp6` table.
pub fn listening(table: &str) -> Vec<(u16, u64)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl, local_address, rem_address, st, tx:rx queues, tr:when, retrnsmt, uid, timeout, inode.
            if fields.get(3) != Some(&LISTEN) {
                return None;
            }
            let (_, port) = fields.get(1)?.rsplit_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some((port, inode))
        })
        .collect()
}

/// The inodes of the sockets process `pid` has open (`socket:[N]` links in `/proc/<pid>/fd`).
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// The ports among `ports` that process `pid` does not listen on itself, and why.
pub fn missing(pid: u32, ports: &[u16]) -> Vec<Missing> {
    let mut table = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            table.extend(listening(&text));
        }
    }
    classify(&table, &socket_inodes(pid), ports)
}

/// The ports of `ports` that no listening socket among `owned` serves, given the listening sockets `table`.
pub fn classify(table: &[(u16, u64)], owned: &HashSet<u64>, ports: &[u16]) -> Vec<Missing> {
    ports
        .iter()
        .filter_map(|&port| {
            let mut inodes = table
                .iter()
                .filter(|(p, _)| *p == port)
                .map(|(_, inode)| inode)
                .peekable();
            if inodes.peek().is_none() {
                Some(Missing::NotListening(port))
            } else if inodes.any(|inode| owned.contains(inode)) {
                None
            } else {
                Some(Missing::HeldByOther(port))
            }
        })
        .collect()
}

/// The port of a `scheme://host:port/...` URL, the bracketed IPv6 form included.
pub fn url_port(url: &str) -> Option<u16> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (_, port) = authority.rsplit_once(':')?;
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4711 1 0000000000000000 100 0 0 10 0
   1: 0100007F:26AD 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4712 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F40 0100007F:D3A2 01 00000000:00000000 00:00000000 00000000  1000        0 4713 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn listening_sockets_are_read_from_the_table() {
        // The established connection (state 01) on port 8000 is not a listener.
        assert_eq!(listening(TCP), [(8000, 4711), (9901, 4712)]);
        assert_eq!(listening(""), []);
    }

    #[test]
    fn a_port_counts_only_when_the_child_holds_its_socket() {
        let table = listening(TCP);
        let owned: HashSet<u64> = [4712].into();
        assert_eq!(
            classify(&table, &owned, &[9901, 8000, 8443]),
            [Missing::HeldByOther(8000), Missing::NotListening(8443)]
        );
        let owned: HashSet<u64> = [4711, 4712].into();
        assert_eq!(classify(&table, &owned, &[9901, 8000]), []);
    }

    #[test]
    fn a_listener_of_this_process_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(missing(std::process::id(), &[port]), []);
        // The parent process (the test runner or a shell) does not hold it.
        assert_eq!(
            missing(std::os::unix::process::parent_id(), &[port]),
            [Missing::HeldByOther(port)]
        );
    }

    #[test]
    fn ports_of_urls() {
        assert_eq!(url_port("http://127.0.0.1:9901/health"), Some(9901));
        assert_eq!(url_port("redis://127.0.0.1:7000"), Some(7000));
        assert_eq!(url_port("http://[::1]:8000/-/ready"), Some(8000));
        assert_eq!(url_port("http://localhost/health"), None);
    }
}

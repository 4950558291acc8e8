//! The `[lab]` table and the few `[proxy]` keys the launcher needs. The rest of the file is the proxy's business
//! and is read (and validated) by the proxy itself.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a config file cannot drive the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The `[lab]` table as written; every key has a default, so a config without `[lab]` runs the seed's topology.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabConfig {
    /// Address every backend listens on.
    pub host: IpAddr,
    /// Directory of the database's and the worker's SQLite files, relative to the config file.
    pub data_dir: PathBuf,
    /// Ports of the gateways, one process each.
    pub gateways: Vec<u16>,
    pub microservice: u16,
    pub database: u16,
    pub worker: u16,
    /// Initial size of the worker's pool.
    pub workers: usize,
    /// The database's simulated query latency range, `[min, max]` in milliseconds.
    pub database_latency_ms: [u64; 2],
    /// A queued task older than this overtakes fresher tasks of any priority.
    pub worker_aging: String,
    /// How long `up` waits for every `/health` before giving up.
    pub ready_timeout: String,
    /// Proxy processes sharing the config file and a Redis cache tier (`up --fleet`: 2); see `fleet`.
    pub proxies: usize,
    /// Worker processes sharing one Redis task queue (`up --fleet`: 2). Not `workers`, which is each worker's
    /// pool size.
    pub worker_processes: usize,
    /// The port of the redis-server `up` starts for a fleet; unset, `up` picks a free one
    /// (`fleet::pick_redis_port`) and prints it, so a fleet never collides with another Redis.
    pub redis_port: Option<u16>,
    /// An existing Redis for a fleet (`redis://host:port/db`); then `up` starts none.
    pub redis_url: Option<String>,
    /// The proxy's HTTPS port, served with the development CA's localhost certificate; 0 for
    /// no HTTPS listener.
    pub tls_port: u16,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            data_dir: PathBuf::from("data"),
            gateways: vec![5000, 5003, 5006],
            microservice: 5001,
            database: 5002,
            worker: 5005,
            workers: 3,
            database_latency_ms: [100, 300],
            worker_aging: "30s".to_owned(),
            ready_timeout: "30s".to_owned(),
            proxies: 1,
            worker_processes: 1,
            redis_port: None,
            redis_url: None,
            tls_port: 8443,
        }
    }
}

/// Everything `up` needs from one config file, checked.
#[derive(Debug, Clone)]
pub struct LabFile {
    /// The config file, absolute, so children started elsewhere still find it.
    pub path: PathBuf,
    pub lab: LabConfig,
    /// `data_dir` resolved against the config file's directory.
    pub data_dir: PathBuf,
    pub worker_aging: Duration,
    pub ready_timeout: Duration,
    /// The proxy's first listen address, as a client reaches it.
    pub proxy_url: String,
    /// The proxy's admin address, as a client reaches it.
    pub admin_url: String,
    /// The proxy's first listen address and its admin address as written (a fleet's next proxies take the ports
    /// after them).
    pub proxy_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// True when the file has an `[auth]` table.
    pub has_auth: bool,
    /// The proxy's `[redis] url`: an existing Redis that a fleet uses instead of starting one.
    pub redis_url: Option<String>,
    /// Where the proxy serves HTTPS (`[lab] tls_port` on the first listen address's IP); `None`
    /// when `tls_port` is 0.
    pub tls_listen: Option<SocketAddr>,
}

#[derive(Deserialize)]
struct Outer {
    #[serde(default)]
    lab: LabConfig,
    #[serde(default)]
    proxy: ProxyKeys,
    auth: Option<toml::Value>,
    redis: Option<RedisKeys>,
}

// Only the url: the proxy validates the rest of `[redis]`. A list (a Redis Cluster's seed nodes)
// is not a Redis a fleet can share (the workers' queue needs one server), so only a string counts.
#[derive(Deserialize)]
struct RedisKeys {
    url: Option<toml::Value>,
}

// Only the keys the launcher needs; the proxy rejects unknown ones, so none are refused here.
#[derive(Default, Deserialize)]
struct ProxyKeys {
    listen: Option<Vec<String>>,
    admin_listen: Option<String>,
}

// The proxy's own defaults, repeated because the launcher must know where the proxy will listen.
const DEFAULT_LISTEN: &str = "0.0.0.0:8000";
const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

impl LabFile {
    /// Reads and checks the file at `path`.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or its `[lab]` table is inconsistent.
    pub fn load(path: &Path) -> Result<LabFile, LabFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        // Children get the absolute path: they may resolve it from another working directory.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        LabFile::parse(&text, &absolute)
    }

    /// Parses the text of the file at `path` (used for resolving `data_dir`).
    ///
    /// # Errors
    /// Not TOML, or an inconsistent `[lab]` table.
    pub fn parse(text: &str, path: &Path) -> Result<LabFile, LabFileError> {
        let invalid = |message: String| LabFileError::Invalid {
            path: path.to_owned(),
            message,
        };
        let outer: Outer = toml::from_str(text).map_err(|error| invalid(error.to_string()))?;
        let lab = outer.lab;
        let mut problems = Vec::new();
        if lab.gateways.is_empty() {
            problems.push("lab.gateways: list at least one port".to_owned());
        }
        let mut seen = BTreeSet::new();
        let named = lab
            .gateways
            .iter()
            .map(|port| ("lab.gateways", *port))
            .chain([
                ("lab.microservice", lab.microservice),
                ("lab.database", lab.database),
                ("lab.worker", lab.worker),
            ]);
        for (key, port) in named {
            if port == 0 {
                problems.push(format!(
                    "{key}: port 0 would be a random port the proxy cannot know"
                ));
            } else if !seen.insert(port) {
                problems.push(format!("{key}: port {port} is used twice"));
            }
        }
        let [low, high] = lab.database_latency_ms;
        if low > high {
            problems.push(format!(
                "lab.database_latency_ms: [{low}, {high}] has min > max"
            ));
        }
        if lab.workers > 256 {
            problems.push(format!("lab.workers: {} is more than 256", lab.workers));
        }
        let mut duration = |key: &str, text: &str| match humantime::parse_duration(text) {
            Ok(duration) => duration,
            Err(error) => {
                problems.push(format!(
                    "{key}: {text:?} is not a duration ({error}); write it like \"30s\""
                ));
                Duration::ZERO
            }
        };
        let worker_aging = duration("lab.worker_aging", &lab.worker_aging);
        let ready_timeout = duration("lab.ready_timeout", &lab.ready_timeout);

        let listen = outer
            .proxy
            .listen
            .and_then(|list| list.into_iter().next())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let admin = outer
            .proxy
            .admin_listen
            .unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
        let mut addr = |key: &str, text: &str| match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(error) => {
                problems.push(format!("{key}: {text:?} is not an address ({error})"));
                None
            }
        };
        let proxy_listen = addr("proxy.listen", &listen);
        let admin_listen = addr("proxy.admin_listen", &admin);
        let proxy_url = proxy_listen.map(client_url).unwrap_or_default();
        let admin_url = admin_listen.map(client_url).unwrap_or_default();
        problems.extend(fleet_problems(&lab));

        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let data_dir = if lab.data_dir.is_absolute() {
            lab.data_dir.clone()
        } else {
            base.join(&lab.data_dir)
        };
        Ok(LabFile {
            path: path.to_owned(),
            data_dir,
            worker_aging,
            ready_timeout,
            proxy_url,
            admin_url,
            proxy_listen,
            admin_listen,
            has_auth: outer.auth.is_some(),
            redis_url: outer
                .redis
                .and_then(|redis| redis.url)
                .and_then(|url| url.as_str().map(str::to_owned)),
            tls_listen: (lab.tls_port != 0)
                .then(|| proxy_listen.map(|addr| SocketAddr::new(addr.ip(), lab.tls_port)))
                .flatten(),
            lab,
        })
    }

    /// The base URL a client uses to reach a backend on `port`.
    pub fn backend_url(&self, port: u16) -> String {
        client_url(SocketAddr::new(self.lab.host, port))
    }
}

/// A wildcard listen address is reached on loopback.
pub fn client_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(host, addr.port()))
}

/// A bound on each kind of process, so a typo does not start a thousand children.
pub const MAX_PROCESSES: usize = 16;
/// Worker `i` (from 0) listens on `[lab] worker + WORKER_PORT_STEP * i`, clear of the seed's backend ports.
pub const WORKER_PORT_STEP: u16 = 10;

/// The `[lab]` fleet keys' problems, each with its key.
pub fn fleet_problems(lab: &LabConfig) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, count) in [
        ("lab.proxies", lab.proxies),
        ("lab.worker_processes", lab.worker_processes),
    ] {
        if !(1..=MAX_PROCESSES).contains(&count) {
            problems.push(format!(
                "{key}: {count} is not between 1 and {MAX_PROCESSES}"
            ));
        }
    }
    if lab.redis_port == Some(0) {
        problems.push(
            "lab.redis_port: port 0 would be a random port the proxies cannot know".to_owned(),
        );
    }
    if let Some(url) = &lab.redis_url {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            problems.push(format!(
                "lab.redis_url: {url:?} is not a Redis URL; write it like \"redis://127.0.0.1:6379/0\""
            ));
        }
    }
    let taken: Vec<u16> = lab
        .gateways
        .iter()
        .copied()
        .chain([lab.microservice, lab.database])
        .chain(lab.redis_port)
        .collect();
    for port in worker_ports(lab).iter().skip(1) {
        match port {
            Some(port) if taken.contains(port) => problems.push(format!(
                "lab.worker_processes: worker port {port} (lab.worker + {WORKER_PORT_STEP} per worker) is used by another process"
            )),
            Some(_) => {}
            None => problems.push("lab.worker_processes: the worker ports pass 65535".to_owned()),
        }
    }
    problems
}

/// The port of each worker process, the first on `[lab] worker`; `None` past 65535.
pub fn worker_ports(lab: &LabConfig) -> Vec<Option<u16>> {
    (0..lab.worker_processes)
        .map(|i| {
            u16::try_from(i)
                .ok()
                .and_then(|i| i.checked_mul(WORKER_PORT_STEP))
                .and_then(|offset| lab.worker.checked_add(offset))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(text: &str) -> Result<LabFile, LabFileError> {
        LabFile::parse(text, Path::new("/etc/lab/config.toml"))
    }

    #[test]
    fn defaults_are_the_seed_topology() {
        let file = parse("").unwrap();
        assert_eq!(file.lab, LabConfig::default());
        assert_eq!(file.data_dir, PathBuf::from("/etc/lab/data"));
        assert_eq!(file.proxy_url, "http://127.0.0.1:8000");
        assert_eq!(file.admin_url, "http://127.0.0.1:9901");
        assert_eq!(file.ready_timeout, Duration::from_secs(30));
        assert!(!file.has_auth);
        assert_eq!(file.tls_listen, Some("0.0.0.0:8443".parse().unwrap()));
    }

    #[test]
    fn https_follows_the_listen_address_and_tls_port_0_turns_it_off() {
        let file =
            parse("[proxy]\nlisten = [\"127.0.0.1:18000\"]\n[lab]\ntls_port = 18443").unwrap();
        assert_eq!(file.tls_listen, Some("127.0.0.1:18443".parse().unwrap()));
        assert_eq!(parse("[lab]\ntls_port = 0").unwrap().tls_listen, None);
    }

    #[test]
    fn a_full_table_is_read() {
        let file = parse(
            r#"
[proxy]
listen = ["127.0.0.1:18000"]
admin_listen = "127.0.0.1:19901"
[lab]
data_dir = "/var/lab"
gateways = [7000, 7001]
microservice = 7002
database = 7003
worker = 7004
workers = 5
database_latency_ms = [0, 0]
worker_aging = "2s"
ready_timeout = "1m"
[auth]
algorithms = ["HS256"]
"#,
        )
        .unwrap();
        assert_eq!(file.lab.gateways, vec![7000, 7001]);
        assert_eq!(file.data_dir, PathBuf::from("/var/lab"));
        assert_eq!(file.proxy_url, "http://127.0.0.1:18000");
        assert_eq!(file.backend_url(7002), "http://127.0.0.1:7002");
        assert_eq!(file.worker_aging, Duration::from_secs(2));
        assert!(file.has_auth);
    }

    #[test]
    fn problems_are_reported_with_their_key() {
        let cases = [
            ("[lab]\ngateways = []", "lab.gateways"),
            ("[lab]\ngateways = [5000, 5000]", "used twice"),
            (
                "[lab]\ndatabase = 5000",
                "lab.database: port 5000 is used twice",
            ),
            ("[lab]\nworker = 0", "lab.worker: port 0"),
            ("[lab]\ndatabase_latency_ms = [300, 100]", "min > max"),
            ("[lab]\nworker_aging = \"soon\"", "lab.worker_aging"),
            ("[lab]\ngatways = [1]", "unknown field `gatways`"),
            ("[proxy]\nadmin_listen = \"nowhere\"", "proxy.admin_listen"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}

//! `scalelab up --dns`: the lab's own name server. The gateways are published as the A records
//! of one name (`gateways.lab`) by a dnsmasq child on a free loopback port, and the proxy finds
//! them by resolving that name (`config`: the proxy's config with the group named, written
//! beside the lab's own as `<stem>.dns.toml`).
//!
//! A name's A records give addresses, not ports, so every gateway listens on the same port (the
//! first of `[lab] gateways`), each on its own loopback address: 127.0.0.1, 127.0.0.2, ... (the
//! whole of 127.0.0.0/8 is the loopback interface on Linux), as pods of a headless Kubernetes
//! service share a port and differ in address. What a lesson needs to change the set later
//! (the hosts file, dnsmasq's pid file, how to start one more gateway) is saved as `lab.json`
//! under `<data_dir>/dns`, where `scalelab bench -s scale-out` finds it.

pub mod config;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use scalelab_common::dnsmasq;

use crate::labfile::LabFile;
use crate::plan::{ChildSpec, Stage};

/// The name whose A records are the gateways.
pub const NAME: &str = "gateways.lab";
/// The child name of the lab's dnsmasq (its log prefix).
pub const CHILD: &str = "dnsmasq";
/// How `up --dns` says dnsmasq is missing.
pub const INSTALL_HINT: &str = "`up --dns` runs dnsmasq, which is not installed; install it with \
    `bash scripts/install-deps.sh --dns` (Debian's dnsmasq-base: the binary only, no service)";

/// Why the lab's name server cannot be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0}")]
    Setup(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DnsError + 'a {
    move |source| DnsError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// How to start one more gateway like the lab's: its binary, its arguments (the `--host` value
/// replaced per address) and environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayCommand {
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl GatewayCommand {
    /// The arguments of a gateway on `host` (the lab's common port stays).
    pub fn args_on(&self, host: IpAddr) -> Vec<String> {
        let mut args = self.args.clone();
        if let Some(at) = args.iter().position(|arg| arg == "--host") {
            if let Some(value) = args.get_mut(at + 1) {
                *value = host.to_string();
            }
        }
        args
    }
}

/// A lab whose gateways come from DNS: what `up --dns` set up, and what a lesson needs to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsLab {
    /// dnsmasq's address, `[dns] resolvers` of the proxy.
    pub resolver: SocketAddr,
    pub name: String,
    /// The port every gateway listens on.
    pub port: u16,
    /// The gateways' addresses at start, in `[lab] gateways` order.
    pub gateways: Vec<IpAddr>,
    /// The hosts file dnsmasq answers from and the file it writes its pid to.
    pub hosts: PathBuf,
    pub pid_file: PathBuf,
    /// The config the proxy runs.
    pub proxy_config: PathBuf,
    /// How to start one more gateway.
    pub gateway: Option<GatewayCommand>,
}

/// `<data_dir>/dns`: dnsmasq's files and `lab.json`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dns")
}

fn state_path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("lab.json")
}

/// The proxy config `--dns` writes beside the lab's: `config.toml` -> `config.dns.toml`, in the
/// same directory so the paths the file names relative to itself stay right.
pub fn proxy_config_path(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map_or_else(|| OsString::from("config"), ToOwned::to_owned);
    let mut name = stem;
    name.push(".dns.toml");
    config.with_file_name(name)
}

impl DnsLab {
    /// Plans the name server of `file`'s lab: a free port, the gateways' addresses (from the
    /// lab's host up), the files.
    ///
    /// # Errors
    /// `[lab] host` is not an IPv4 loopback address with room for the gateways (and one more), or
    /// no port is free.
    pub fn plan(file: &LabFile) -> Result<DnsLab, DnsError> {
        let IpAddr::V4(host) = file.lab.host else {
            return Err(DnsError::Setup(format!(
                "--dns puts each gateway on its own loopback address (127.0.0.1, 127.0.0.2, ...); [lab] host is {}, not an IPv4 loopback address",
                file.lab.host
            )));
        };
        let count = file.lab.gateways.len();
        let [a, b, c, d] = host.octets();
        // One more than the lab has, for scale-out's fourth gateway.
        if a != 127 || usize::from(d) + count + 1 > 254 {
            return Err(DnsError::Setup(format!(
                "--dns puts each gateway on its own loopback address from [lab] host up; {host} is not a 127.x.y.z address with room for {count} more"
            )));
        }
        let gateways = (0..count)
            .filter_map(|i| u8::try_from(i).ok())
            .map(|i| IpAddr::V4(Ipv4Addr::new(a, b, c, d + i)))
            .collect();
        let port = free_port()?;
        let dns_dir = dir(&file.data_dir);
        let files = dnsmasq::Files::under(&dns_dir);
        Ok(DnsLab {
            resolver: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            name: NAME.to_owned(),
            port: file.lab.gateways.first().copied().unwrap_or(5000),
            gateways,
            hosts: files.hosts,
            pid_file: files.pid,
            proxy_config: proxy_config_path(&file.path),
            gateway: None,
        })
    }

    /// The address a further gateway takes: the one after the last the lab started with.
    pub fn next_address(&self) -> Option<IpAddr> {
        match self.gateways.last() {
            Some(IpAddr::V4(last)) => {
                let [a, b, c, d] = last.octets();
                d.checked_add(1)
                    .map(|d| IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            }
            _ => None,
        }
    }

    /// The gateways' base URLs.
    pub fn gateway_urls(&self) -> Vec<String> {
        self.gateways
            .iter()
            .map(|&ip| format!("http://{}", SocketAddr::new(ip, self.port)))
            .collect()
    }

    /// Points Prometheus's scrape targets of the gateways (`host:port` from `[lab] gateways`) at
    /// where `--dns` moved them.
    pub fn retarget(&self, jobs: &mut [crate::observe::Job], file: &LabFile) {
        let moved: Vec<(String, String)> = file
            .lab
            .gateways
            .iter()
            .zip(&self.gateways)
            .map(|(&port, &ip)| {
                (
                    SocketAddr::new(file.lab.host, port).to_string(),
                    SocketAddr::new(ip, self.port).to_string(),
                )
            })
            .collect();
        for target in jobs.iter_mut().flat_map(|job| job.targets.iter_mut()) {
            if let Some((_, to)) = moved.iter().find(|(from, _)| from == target) {
                target.clone_from(to);
            }
        }
    }

    /// Writes dnsmasq's files (the hosts file with every gateway, an empty SRV file) and the
    /// proxy's config derived from the lab's `config_text`.
    ///
    /// # Errors
    /// A file cannot be written, or the lab's config has no gateways group to name.
    pub fn write_files(&self, config_text: &str) -> Result<(), DnsError> {
        let dns_dir = self.hosts.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dns_dir).map_err(io("creating", dns_dir))?;
        self.write_hosts(&self.gateways)?;
        let conf = dnsmasq::Files::under(dns_dir).conf;
        std::fs::write(&conf, "").map_err(io("writing", &conf))?;
        let text = config::derive(config_text, self.resolver, &self.name, self.port)
            .map_err(DnsError::Setup)?;
        std::fs::write(&self.proxy_config, text).map_err(io("writing", &self.proxy_config))
    }

    /// Replaces the name's A records with `addresses` (the file only; `publish` also tells
    /// dnsmasq).
    fn write_hosts(&self, addresses: &[IpAddr]) -> Result<(), DnsError> {
        let records: Vec<(String, &str)> = addresses
            .iter()
            .map(|ip| (ip.to_string(), self.name.as_str()))
            .collect();
        std::fs::write(&self.hosts, dnsmasq::hosts_text(&records))
            .map_err(io("writing", &self.hosts))
    }

    /// Publishes `addresses` as the name's records: rewrites the hosts file and sends dnsmasq
    /// SIGHUP, which makes it read the file again.
    ///
    /// # Errors
    /// The file cannot be written or dnsmasq is not running.
    pub fn publish(&self, addresses: &[IpAddr]) -> Result<(), DnsError> {
        let pid = self.running_pid().ok_or_else(|| {
            DnsError::Setup(format!(
                "the lab's dnsmasq (pid file {}) is not running",
                self.pid_file.display()
            ))
        })?;
        self.write_hosts(addresses)?;
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)
            .map_err(|error| DnsError::Setup(format!("signalling dnsmasq ({pid}): {error}")))
    }

    /// dnsmasq's pid, when its pid file names a live process.
    pub fn running_pid(&self) -> Option<nix::unistd::Pid> {
        let text = std::fs::read_to_string(&self.pid_file).ok()?;
        let pid = nix::unistd::Pid::from_raw(text.trim().parse().ok()?);
        nix::sys::signal::kill(pid, None).ok().map(|()| pid)
    }

    /// The dnsmasq child: the Store stage (before the proxy, which resolves the name at start),
    /// ready when it answers a query and listens on its port.
    pub fn child(&self, binary: &Path) -> ChildSpec {
        let dns_dir = self.hosts.parent().unwrap_or(Path::new("."));
        ChildSpec {
            name: CHILD.to_owned(),
            binary: binary.to_owned(),
            args: dnsmasq::args(self.resolver.port(), &dnsmasq::Files::under(dns_dir)),
            health_url: format!("dns://{}", self.resolver),
            more_ports: Vec::new(),
            stage: Stage::Store,
            env: Vec::new(),
        }
    }

    /// Moves the planned gateways to their addresses on the common port, points every proxy at
    /// the derived config, and records how a gateway is started.
    pub fn relocate(&mut self, children: &mut [ChildSpec]) {
        let mut addresses = self.gateways.iter();
        for child in children.iter_mut() {
            if child.stage == Stage::Backend && child.name.starts_with("gateway-") {
                let Some(&ip) = addresses.next() else {
                    break;
                };
                set_arg(&mut child.args, "--host", ip.to_string().into());
                set_arg(&mut child.args, "--port", self.port.to_string().into());
                child.name = format!("gateway-{ip}");
                child.health_url = format!("http://{}/health", SocketAddr::new(ip, self.port));
                if self.gateway.is_none() {
                    self.gateway = Some(GatewayCommand {
                        binary: child.binary.clone(),
                        args: child
                            .args
                            .iter()
                            .map(|arg| arg.to_string_lossy().into_owned())
                            .collect(),
                        env: child
                            .env
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.to_string_lossy().into_owned(),
                                    v.to_string_lossy().into_owned(),
                                )
                            })
                            .collect(),
                    });
                }
            } else if child.stage == Stage::Proxy {
                set_arg(
                    &mut child.args,
                    "--config",
                    self.proxy_config.clone().into_os_string(),
                );
            }
        }
    }

    /// Saves what a lesson needs under `<data_dir>/dns/lab.json`.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, data_dir: &Path) -> Result<(), DnsError> {
        let path = state_path(data_dir);
        let text = serde_json::to_string_pretty(self)
            .map_err(|error| DnsError::Setup(format!("encoding {}: {error}", path.display())))?;
        std::fs::write(&path, text).map_err(io("writing", &path))
    }

    /// The DNS lab `up --dns` saved under `data_dir`, when its dnsmasq still runs: a file left by
    /// a lab that is gone does not count.
    pub fn load_running(data_dir: &Path) -> Option<DnsLab> {
        let text = std::fs::read_to_string(state_path(data_dir)).ok()?;
        let lab: DnsLab = serde_json::from_str(&text).ok()?;
        lab.running_pid().map(|_| lab)
    }

    /// Removes `lab.json` (a lab started without `--dns`, or one stopping), so no lesson takes
    /// the lab for a DNS lab afterwards.
    pub fn forget(data_dir: &Path) {
        let _ = std::fs::remove_file(state_path(data_dir));
    }
}

/// `up`'s part: with `--dns` (`enabled`), `prepare` with the dnsmasq found in `PATH`; without,
/// forget any `lab.json` an earlier lab left, so no lesson takes this lab for a DNS lab.
///
/// # Errors
/// See `prepare`.
pub fn for_up(
    enabled: bool,
    file: &LabFile,
    children: &mut Vec<ChildSpec>,
) -> Result<Option<DnsLab>, DnsError> {
    if !enabled {
        DnsLab::forget(&file.data_dir);
        return Ok(None);
    }
    let binary = dnsmasq::find_binary(std::env::var_os("PATH").as_deref());
    prepare(file, children, binary).map(Some)
}

/// Prometheus's jobs for the lab, the gateways at their DNS addresses under `--dns`.
pub fn scrape_jobs(file: &LabFile, dns: Option<&DnsLab>) -> Vec<crate::observe::Job> {
    let mut jobs = crate::observe::jobs(file);
    if let Some(dns) = dns {
        dns.retarget(&mut jobs, file);
    }
    jobs
}

/// The gateways' base URLs: where `--dns` put them, else on their `[lab]` ports.
pub fn gateway_urls(file: &LabFile, dns: Option<&DnsLab>) -> Vec<String> {
    match dns {
        Some(dns) => dns.gateway_urls(),
        None => file
            .lab
            .gateways
            .iter()
            .map(|&port| file.backend_url(port))
            .collect(),
    }
}

/// `up --dns`: plans the name server (run from `binary`, `dnsmasq::find_binary`'s answer),
/// writes its files and the proxy's config, moves the gateways, adds the dnsmasq child to
/// `children` and saves `lab.json`.
///
/// # Errors
/// dnsmasq is not installed (`binary` is `None`: the error says how to install it), or the lab
/// cannot be set up (see `DnsLab::plan`, `write_files`).
pub fn prepare(
    file: &LabFile,
    children: &mut Vec<ChildSpec>,
    binary: Option<PathBuf>,
) -> Result<DnsLab, DnsError> {
    let binary = binary.ok_or_else(|| DnsError::Setup(INSTALL_HINT.to_owned()))?;
    let mut lab = DnsLab::plan(file)?;
    let text = std::fs::read_to_string(&file.path).map_err(io("reading", &file.path))?;
    // A pid file left by an earlier lab must not make this one look running before it is.
    let _ = std::fs::remove_file(&lab.pid_file);
    lab.write_files(&text)?;
    lab.relocate(children);
    children.push(lab.child(&binary));
    lab.save(&file.data_dir)?;
    Ok(lab)
}

/// What `up --dns` adds to its banner: where the name is served and how to look at it.
pub fn banner(lab: &DnsLab) -> Vec<String> {
    vec![
        String::new(),
        format!(
            "DNS: the gateways are the A records of {} on the lab's dnsmasq {} (hosts file {});",
            lab.name,
            lab.resolver,
            lab.hosts.display()
        ),
        format!(
            "     the proxy runs {}, which names them",
            lab.proxy_config.display()
        ),
        format!(
            "  dig +short -p {} @127.0.0.1 {}",
            lab.resolver.port(),
            lab.name
        ),
        "  scalelab bench -s scale-out   (adds a fourth gateway by its record under load, then removes one)"
            .to_owned(),
    ]
}

/// Sets the value after `flag` in `args`.
fn set_arg(args: &mut [OsString], flag: &str, value: OsString) {
    if let Some(at) = args.iter().position(|arg| arg == flag) {
        if let Some(slot) = args.get_mut(at + 1) {
            *slot = value;
        }
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (dnsmasq serves both).
fn free_port() -> Result<u16, DnsError> {
    let failed = |source| DnsError::Io {
        what: "binding a port on",
        path: PathBuf::from("127.0.0.1"),
        source,
    };
    for _ in 0..16 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(failed)?;
        let port = udp.local_addr().map_err(failed)?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(DnsError::Setup(
        "no port on 127.0.0.1 is free for both UDP and TCP".to_owned(),
    ))
}

#[cfg(test)]
mod tests;

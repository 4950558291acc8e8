//! `up --fleet` (or `[lab] proxies` / `worker_processes` above 1): several proxies sharing one config file and a
//! Redis cache tier, several workers sharing one Redis task queue, and the redis-server they share.
//!
//! `plan` stays the single-process lab; `extend` adds to its children what a fleet needs, so a lab of one proxy
//! and one worker without `[lab] redis_url` is exactly what it was: no redis-server, no extra flags.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::labfile::{client_url, worker_ports, LabConfig, LabFile};
use crate::plan::{ChildSpec, Stage};

/// What `--fleet` asks for: two proxies and two workers (more if the file already says so).
pub const FLEET_SIZE: usize = 2;
/// The child name of the redis-server `up` starts.
pub const REDIS_CHILD: &str = "redis";

/// `--fleet`: at least [`FLEET_SIZE`] proxies and workers.
pub fn widen(lab: &mut LabConfig) {
    lab.proxies = lab.proxies.max(FLEET_SIZE);
    lab.worker_processes = lab.worker_processes.max(FLEET_SIZE);
}

/// Whether the lab shares a Redis: more than one proxy or worker, or a Redis named in the file.
pub fn is_shared(lab: &LabConfig) -> bool {
    lab.proxies > 1 || lab.worker_processes > 1 || lab.redis_url.is_some()
}

/// The base URLs of the worker processes, the first being the one the gateways send to.
pub fn worker_urls(file: &LabFile) -> Vec<String> {
    worker_ports(&file.lab)
        .into_iter()
        .flatten()
        .map(|port| file.backend_url(port))
        .collect()
}

/// One proxy of the fleet: where it listens and where a client reaches it and its admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAt {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Its HTTPS listener (the lab's TLS port + i), if the lab has one.
    pub tls_listen: Option<SocketAddr>,
    pub url: String,
    pub admin_url: String,
}

/// Every proxy: proxy `i` (from 0) on the file's first listen port + i and admin port + i.
pub fn proxies(file: &LabFile) -> Vec<ProxyAt> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listen = file.proxy_listen.unwrap_or(SocketAddr::new(loopback, 8000));
    let admin = file.admin_listen.unwrap_or(SocketAddr::new(loopback, 9901));
    let shifted =
        |addr: SocketAddr, i: u16| SocketAddr::new(addr.ip(), addr.port().saturating_add(i));
    (0..file.lab.proxies)
        .filter_map(|i| u16::try_from(i).ok())
        .map(|i| {
            let (listen, admin_listen) = (shifted(listen, i), shifted(admin, i));
            ProxyAt {
                listen,
                admin_listen,
                tls_listen: file.tls_listen.map(|tls| shifted(tls, i)),
                url: client_url(listen),
                admin_url: client_url(admin_listen),
            }
        })
        .collect()
}

/// Gives the redis-server `up` starts a free port when `[lab] redis_port` does not name one (a
/// fixed default would collide with any other lab, test or Redis on the machine). The port is
/// found by binding port 0 on the lab's host; one that a worker or backend of the lab uses is
/// skipped.
///
/// # Errors
/// No port could be bound on the lab's host.
pub fn pick_redis_port(file: &mut LabFile) -> std::io::Result<()> {
    if file.lab.redis_port.is_some() || !starts_redis(file) {
        return Ok(());
    }
    let lab = &file.lab;
    let taken: Vec<u16> = lab
        .gateways
        .iter()
        .copied()
        .chain([lab.microservice, lab.database])
        .chain(worker_ports(lab).into_iter().flatten())
        .chain(
            proxies(file)
                .iter()
                .flat_map(|at| [at.listen.port(), at.admin_listen.port()]),
        )
        .collect();
    for _ in 0..16 {
        let port = std::net::TcpListener::bind(SocketAddr::new(lab.host, 0))?
            .local_addr()?
            .port();
        if !taken.contains(&port) {
            file.lab.redis_port = Some(port);
            return Ok(());
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port for redis-server outside the lab's own ports",
    ))
}

/// The address of the redis-server `up` starts. Before [`pick_redis_port`] (only pure callers,
/// such as `check`, ask that early) an unset port reads as 0.
fn started_redis_address(file: &LabFile) -> SocketAddr {
    SocketAddr::new(file.lab.host, file.lab.redis_port.unwrap_or(0))
}

/// An existing Redis the fleet uses: `[lab] redis_url`, else the proxy's `[redis] url`.
fn existing_redis(file: &LabFile) -> Option<&String> {
    file.lab.redis_url.as_ref().or(file.redis_url.as_ref())
}

/// The Redis the fleet shares: an existing one ([`existing_redis`]), else the redis-server `up` starts; `None`
/// without a fleet (a file's `[redis]` table alone does not make one: the proxy uses it as it is, the worker not).
pub fn redis_url(file: &LabFile) -> Option<String> {
    if !is_shared(&file.lab) {
        return None;
    }
    Some(existing_redis(file).cloned().unwrap_or_else(|| {
        let address = client_url(started_redis_address(file));
        format!("redis://{}/0", address.trim_start_matches("http://"))
    }))
}

/// Whether `up` must start a redis-server itself.
pub fn starts_redis(file: &LabFile) -> bool {
    is_shared(&file.lab) && existing_redis(file).is_none()
}

/// Where the redis-server `up` starts keeps its append-only file.
pub fn redis_dir(file: &LabFile) -> PathBuf {
    file.data_dir.join("redis")
}

/// The redis-server child: its data under [`redis_dir`], ready when it answers PING.
pub fn redis_child(file: &LabFile, binary: &Path) -> ChildSpec {
    let dir = redis_dir(file);
    let address = started_redis_address(file);
    let port = address.port();
    let address = client_url(address);
    ChildSpec {
        name: REDIS_CHILD.to_owned(),
        binary: binary.to_owned(),
        args: vec![
            "--port".into(),
            port.to_string().into(),
            "--bind".into(),
            file.lab.host.to_string().into(),
            "--dir".into(),
            dir.into_os_string(),
            "--appendonly".into(),
            "yes".into(),
            // The append-only file is the durability; RDB snapshots would only add pauses.
            "--save".into(),
            "".into(),
            "--daemonize".into(),
            "no".into(),
        ],
        health_url: format!("redis://{}", address.trim_start_matches("http://")),
        more_ports: Vec::new(),
        stage: Stage::Store,
        env: Vec::new(),
    }
}

/// Adds to `plan`'s children what the fleet needs: `redis` (when given) first, `--shared-cache-url` on every
/// proxy and `--redis-url` on every worker, and the extra proxies and workers. Without a fleet, nothing.
pub fn extend(children: &mut Vec<ChildSpec>, file: &LabFile, redis: Option<ChildSpec>) {
    let Some(url) = redis_url(file) else {
        return;
    };
    let lab = &file.lab;
    let mut added = Vec::new();
    let worker_name = format!("worker-{}", lab.worker);
    if let Some(worker) = children.iter_mut().find(|c| c.name == worker_name) {
        worker
            .args
            .extend(["--redis-url".into(), url.clone().into()]);
        for port in worker_ports(lab).into_iter().skip(1).flatten() {
            let mut other = worker.clone();
            other.name = format!("worker-{port}");
            set_arg(&mut other.args, "--port", port.to_string().into());
            other.health_url = format!("{}/health", file.backend_url(port));
            added.push(other);
        }
    }
    if let Some(proxy) = children.iter_mut().find(|c| c.stage == Stage::Proxy) {
        proxy.args.extend(["--shared-cache-url".into(), url.into()]);
        for at in proxies(file).into_iter().skip(1) {
            let mut other = proxy.clone();
            other.name = format!("proxy-{}", at.listen.port());
            if let Some(tls) = at.tls_listen {
                set_arg(&mut other.args, "--tls-listen", tls.to_string().into());
            }
            other.args.extend([
                "--listen".into(),
                at.listen.to_string().into(),
                "--admin-listen".into(),
                at.admin_listen.to_string().into(),
            ]);
            other.health_url = format!("{}/health", at.admin_url);
            other.more_ports = std::iter::once(at.listen)
                .chain(at.tls_listen)
                .map(|addr| addr.port())
                .collect();
            added.push(other);
        }
    }
    children.extend(added);
    if let Some(redis) = redis {
        children.insert(0, redis);
    }
}

/// Replaces the value after `flag` in `args`.
fn set_arg(args: &mut [OsString], flag: &str, value: OsString) {
    if let Some(index) = args.iter().position(|a| a == flag) {
        if let Some(slot) = args.get_mut(index + 1) {
            *slot = value;
        }
    }
}

/// What `up` prints about the fleet: which URL reaches which proxy, the workers and the shared Redis.
pub fn banner(file: &LabFile) -> Vec<String> {
    let Some(url) = redis_url(file) else {
        return Vec::new();
    };
    let started = if starts_redis(file) {
        format!("started by up, data in {}", redis_dir(file).display())
    } else {
        "an existing Redis: [lab] redis_url, else [redis] url".to_owned()
    };
    let mut lines = vec![
        String::new(),
        format!("fleet: shared cache tier and task queue in {url} ({started})"),
    ];
    for (i, at) in proxies(file).iter().enumerate() {
        lines.push(format!(
            "  {} hits proxy {} (admin {})",
            at.url,
            i + 1,
            at.admin_url
        ));
    }
    for (i, worker) in worker_urls(file).iter().enumerate() {
        let role = if i == 0 {
            "the gateways send tasks here"
        } else {
            "consumes the shared queue"
        };
        lines.push(format!("  {worker} is worker {} ({role})", i + 1));
    }
    lines
}

#[cfg(test)]
mod tests;

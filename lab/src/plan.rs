//! What `up` starts: one `ChildSpec` per process, in start order, backends first.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::labfile::LabFile;

/// When a child starts: the proxy waits for healthy backends, so its first health round finds them up instead of
/// marking them unhealthy and needing `healthy_threshold` more rounds; Prometheus (`up --observe`) comes last, so
/// its first scrapes find every target listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A fleet's redis-server (`fleet`): the workers and proxies connect to it when they start.
    Store,
    Backend,
    Proxy,
    Observe,
}

/// One child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    /// `gateway-5000`, `database-5002`, `proxy`: the log prefix and the name in reports.
    pub name: String,
    pub binary: PathBuf,
    pub args: Vec<OsString>,
    /// The URL that answers 200 once the child is ready; a `redis://host:port` one answers PING instead.
    pub health_url: String,
    /// Ports besides the health URL's that the child must listen on itself before it counts as ready: the
    /// proxy's HTTP and HTTPS listeners, which its admin health URL says nothing about.
    pub more_ports: Vec<u16>,
    pub stage: Stage,
    /// Environment variables set for this child only (the proxies' admin token).
    pub env: Vec<(OsString, OsString)>,
}

/// The binaries `up` needs, by file name.
pub const BINARIES: [&str; 5] = [
    "scalelab-gateway",
    "scalelab-microservice",
    "scalelab-database",
    "scalelab-worker",
    "scalelab-proxy",
];

/// Every child of the lab described by `file`, with binaries taken from `bin_dir`.
pub fn plan(file: &LabFile, bin_dir: &Path) -> Vec<ChildSpec> {
    let lab = &file.lab;
    let host = lab.host.to_string();
    let config = file.path.as_os_str().to_owned();
    let data_dir = file.data_dir.as_os_str().to_owned();
    let common = |port: u16| -> Vec<OsString> {
        vec![
            "--host".into(),
            host.clone().into(),
            "--port".into(),
            port.to_string().into(),
        ]
    };
    let backend = |kind: &str, port: u16, args: Vec<OsString>| ChildSpec {
        name: format!("{kind}-{port}"),
        binary: bin_dir.join(format!("scalelab-{kind}")),
        args,
        health_url: format!("{}/health", file.backend_url(port)),
        more_ports: Vec::new(),
        stage: Stage::Backend,
        // The services read the standard variable, so a collector named by `[lab]` reaches
        // every one without a flag of its own.
        env: lab
            .otlp_endpoint
            .iter()
            .map(|endpoint| ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.into()))
            .collect(),
    };

    let mut children = Vec::new();
    let mut args = common(lab.database);
    args.extend([
        "--data-dir".into(),
        data_dir.clone(),
        "--latency-min-ms".into(),
        lab.database_latency_ms[0].to_string().into(),
        "--latency-max-ms".into(),
        lab.database_latency_ms[1].to_string().into(),
    ]);
    children.push(backend("database", lab.database, args));
    children.push(backend(
        "microservice",
        lab.microservice,
        common(lab.microservice),
    ));
    let mut args = common(lab.worker);
    args.extend([
        "--data-dir".into(),
        data_dir,
        "--workers".into(),
        lab.workers.to_string().into(),
        "--aging".into(),
        lab.worker_aging.clone().into(),
    ]);
    children.push(backend("worker", lab.worker, args));
    for &port in &lab.gateways {
        let mut args = common(port);
        args.extend([
            "--database".into(),
            file.backend_url(lab.database).into(),
            "--microservice".into(),
            file.backend_url(lab.microservice).into(),
            "--worker".into(),
            file.backend_url(lab.worker).into(),
            "--config".into(),
            config.clone(),
        ]);
        children.push(backend("gateway", port, args));
    }
    let mut proxy_args = vec!["--config".into(), config];
    if let Some(tls_listen) = file.tls_listen {
        // The development pair (`devca`), made by `up` before the proxy starts.
        let certs = crate::devca::DevCertificates::under(&file.data_dir);
        proxy_args.extend([
            "--tls-listen".into(),
            tls_listen.to_string().into(),
            "--tls-cert".into(),
            certs.cert.into(),
            "--tls-key".into(),
            certs.key.into(),
        ]);
    }
    children.push(ChildSpec {
        name: "proxy".to_owned(),
        binary: bin_dir.join("scalelab-proxy"),
        args: proxy_args,
        health_url: format!("{}/health", file.admin_url),
        more_ports: [file.proxy_listen, file.tls_listen]
            .into_iter()
            .flatten()
            .map(|addr| addr.port())
            .collect(),
        stage: Stage::Proxy,
        env: Vec::new(),
    });
    children
}

/// Gives every proxy (the fleet's too) the lab's admin token, in the variable the lab's
/// `config.toml` names, so no secret is written into the config.
pub fn pass_admin_token(children: &mut [ChildSpec], token: &str) {
    for child in children
        .iter_mut()
        .filter(|child| child.stage == Stage::Proxy)
    {
        child
            .env
            .push((crate::admin_token::ENV.into(), token.into()));
    }
}

/// The executable `name` found first in `path` (the value of `PATH`), as found: not resolved, because a symlink's
/// name can matter (Debian's redis-server links to redis-check-rdb, which acts by the name it is run as).
pub fn find_in_path(path: Option<&std::ffi::OsStr>, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_default_lab_has_seven_children_with_real_ports() {
        let file = LabFile::parse("", Path::new("/lab/config.toml")).unwrap();
        let children = plan(&file, Path::new("/bin"));
        let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "database-5002",
                "microservice-5001",
                "worker-5005",
                "gateway-5000",
                "gateway-5003",
                "gateway-5006",
                "proxy"
            ]
        );
        let gateway = &children[4];
        assert_eq!(gateway.binary, PathBuf::from("/bin/scalelab-gateway"));
        let args: Vec<&str> = gateway.args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--host",
                "127.0.0.1",
                "--port",
                "5003",
                "--database",
                "http://127.0.0.1:5002",
                "--microservice",
                "http://127.0.0.1:5001",
                "--worker",
                "http://127.0.0.1:5005",
                "--config",
                "/lab/config.toml"
            ]
        );
        assert_eq!(gateway.health_url, "http://127.0.0.1:5003/health");
        let database: Vec<&str> = children[0]
            .args
            .iter()
            .map(|a| a.to_str().unwrap())
            .collect();
        assert!(database
            .windows(2)
            .any(|w| w == ["--data-dir", "/lab/data"]));
        let proxy = children.last().unwrap();
        assert_eq!(proxy.stage, Stage::Proxy);
        assert_eq!(proxy.health_url, "http://127.0.0.1:9901/health");
        assert_eq!(proxy.more_ports, [8000, 8443]);
        assert!(children[..6].iter().all(|c| c.stage == Stage::Backend));
    }
}

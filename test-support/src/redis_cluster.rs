//! A real Redis Cluster of three primaries (Debian's redis-server and redis-cli), each on a free
//! port with its cluster bus on another free port and its data in a test's temporary directory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::patience::patient;
use crate::poll::eventually_blocking;
use crate::ports::free_port;
use crate::process::ChildGuard;

/// How many primaries the cluster has; every slot is served by one of them.
const PRIMARIES: usize = 3;

/// A running Redis Cluster, its servers killed on drop.
pub struct RedisCluster {
    _servers: Vec<ChildGuard>,
    ports: Vec<u16>,
}

impl RedisCluster {
    /// Starts three cluster-enabled redis-servers under `dir`, joins them with
    /// `redis-cli --cluster create` (no replicas) and waits until every node reports
    /// `cluster_state:ok`.
    ///
    /// # Panics
    /// redis-server or redis-cli is missing, or the cluster does not form in time.
    pub fn start(dir: &Path) -> RedisCluster {
        let mut servers = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..PRIMARIES {
            let (port, bus) = (free_port(), free_port());
            let data = dir.join(format!("cluster-{port}"));
            std::fs::create_dir_all(&data).expect("create the node's data dir");
            let mut command = Command::new("redis-server");
            command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus.to_string(),
            ]);
            command.args(["--cluster-config-file", "nodes.conf", "--save", ""]);
            command.arg("--dir").arg(&data);
            let log = dir.join(format!("redis-cluster-{port}.log"));
            servers.push(ChildGuard::spawn_logged(
                &mut command,
                &log,
                "redis-server (cluster)",
            ));
            ports.push(port);
        }
        for &port in &ports {
            eventually_blocking(
                patient(Duration::from_secs(10)),
                "a cluster node to answer PING",
                || cli(port, &["PING"]).starts_with("PONG").then_some(()),
            );
        }
        let nodes: Vec<String> = ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .arg("--cluster-yes")
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for &port in &ports {
            eventually_blocking(
                patient(Duration::from_secs(20)),
                "every cluster node to report cluster_state:ok",
                || {
                    cli(port, &["CLUSTER", "INFO"])
                        .contains("cluster_state:ok")
                        .then_some(())
                },
            );
        }
        RedisCluster {
            _servers: servers,
            ports,
        }
    }

    /// The seed nodes' URLs, `redis://127.0.0.1:<port>`.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The seed nodes as a TOML array, for `[redis] url = [...]`.
    pub fn toml_urls(&self) -> String {
        let quoted: Vec<String> = self.urls().iter().map(|url| format!("\"{url}\"")).collect();
        format!("[{}]", quoted.join(", "))
    }

    /// How many keys the node on each port holds (`DBSIZE`), in the order of [`RedisCluster::urls`].
    pub fn key_counts(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|&port| cli(port, &["DBSIZE"]).trim().parse().unwrap_or(0))
            .collect()
    }
}

/// redis-cli's answer to `args` on the node at `port` (empty when it could not run).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

//! The worker's shared queue on the other Redis deployments: TLS with a private CA (a real
//! redis-server speaking only TLS), and a Redis Cluster, which the queue refuses clearly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scalelab_test_support::{patient, RedisCluster, RedisServer};

use crate::harness::{client, eventually, Backend};
use crate::worker::{submit, task};

const WORKER: &str = env!("CARGO_BIN_EXE_scalelab-worker");

#[tokio::test]
async fn a_worker_shares_its_queue_over_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_tls(dir.path());
    let worker = Backend::start(
        WORKER,
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--workers",
            "1",
            "--redis-url",
            &redis.url(),
            "--redis-ca",
            redis.ca().to_str().unwrap(),
            "--redis-command-timeout",
            "2s",
        ],
        dir.path(),
    )
    .await;
    let client = client();
    let id = submit(&client, &worker, "high", 0.05).await;
    eventually(&format!("{id} to complete"), || async {
        (task(&client, &worker, &id).await["status"] == "completed").then_some(())
    })
    .await;
}

#[test]
fn a_worker_refuses_a_redis_cluster_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RedisCluster::start(dir.path());
    let seed = cluster.urls()[0].clone();
    let log = dir.path().join("worker.log");
    let mut worker = Command::new(WORKER)
        .args(["--data-dir", dir.path().to_str().unwrap(), "--port", "0"])
        .args(["--redis-url", &seed, "--redis-command-timeout", "2s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + patient(Duration::from_secs(10));
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            worker.kill().unwrap();
            worker.wait().unwrap();
            panic!("the worker kept running on a cluster node");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("is a Redis Cluster node; the shared task queue needs one Redis server"),
        "{stderr}"
    );
}

//! A whole group from SRV records: targets and ports from the records, the weight as the
//! server weight, the lowest priority first (the others are backups).

use super::{dns_lines, group, spread, wait_for_servers, CHECK};
use crate::harness::{eventually, TestBackend, TestProxy};
use scalelab_test_support::{Dnsmasq, Srv};
use std::time::Duration;

fn srv(target: &str, backend: &TestBackend, priority: u16, weight: u16) -> Srv {
    Srv {
        name: "_http._tcp.api.test".to_string(),
        target: target.to_string(),
        port: backend.addr.port(),
        priority,
        weight,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_weights_and_priorities() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let backends = ["a", "b", "c"].map(TestBackend::start);
    dns.set_hosts(&[
        ("127.0.0.1", "t1.test"),
        ("127.0.0.1", "t2.test"),
        ("127.0.0.1", "t3.test"),
    ]);
    dns.set_srv(&[
        srv("t1.test", &backends[0], 10, 3),
        srv("t2.test", &backends[1], 10, 1),
        srv("t3.test", &backends[2], 20, 1),
    ]);
    let group_toml = format!(
        "[upstreams.g]\nstrategy = \"weighted\"\ndiscovery = {{ srv = \"_http._tcp.api.test\", refresh = \"500ms\" }}\nconnect_timeout = \"500ms\"\n{CHECK}\n"
    );
    let proxy = TestProxy::start(&super::dns_config(dns.addr(), &group_toml, "")).await;
    let all: Vec<&TestBackend> = backends.iter().collect();
    wait_for_servers(&proxy, &all).await;
    let shown = group(&proxy).await;
    let origin = shown["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["addr"] == backends[0].addr.to_string()))
        .map(|s| s["origin"].clone())
        .expect("a's entry");
    assert_eq!(origin["record"], "SRV", "{origin}");
    assert_eq!(origin["name"], "_http._tcp.api.test");
    assert_eq!(origin["target"], "t1.test");
    assert_eq!(origin["priority"], 10);
    assert_eq!(origin["weight"], 3);
    // Priority 10 takes everything, by weight 3:1; priority 20 waits.
    let servers = spread(&proxy, 40).await;
    let count = |name: &str| servers.iter().filter(|s| *s == name).count();
    assert_eq!(
        (count("a"), count("b"), count("c")),
        (30, 10, 0),
        "{servers:?}"
    );
    // With priority 10 down, priority 20 serves.
    backends[0].set_failing_health(true);
    backends[1].set_failing_health(true);
    for backend in &backends[..2] {
        eventually(
            Duration::from_secs(10),
            "a and b to fail their checks",
            || async { (proxy.server_healthy(backend.addr).await == Some(false)).then_some(()) },
        )
        .await;
    }
    let servers = spread(&proxy, 10).await;
    assert!(servers.iter().all(|s| s == "c"), "{servers:?}");
    // A record that goes away takes its server with it.
    backends[0].set_failing_health(false);
    backends[1].set_failing_health(false);
    dns.set_srv(&[
        srv("t1.test", &backends[0], 10, 3),
        srv("t2.test", &backends[1], 10, 1),
    ]);
    wait_for_servers(&proxy, &all[..2]).await;
    let lines = dns_lines(&proxy).await;
    assert_eq!(lines[0]["dns"]["record"], "SRV");
    assert_eq!(
        lines[0]["dns"]["removed"],
        serde_json::json!([backends[2].addr.to_string()])
    );
}

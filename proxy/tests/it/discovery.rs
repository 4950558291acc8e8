//! Service discovery against a real DNS server (dnsmasq on a free port): servers given by
//! name follow the name's A records live, changes are journaled, servers that stay keep their
//! state, removed ones drain, new ones are checked before they take traffic. SRV discovery is
//! in `discovery/srv`, failures of the name server in `discovery/resilience`.

mod resilience;
mod srv;

use crate::harness::{
    eventually, free_port, patient, sample, scrape, TestBackend, TestConfig, TestProxy,
};
use scalelab_test_support::Dnsmasq;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// The health check every discovery test's group has: one pass brings a server in.
const CHECK: &str = "health_check = { path = \"/health\", interval = \"200ms\", healthy_threshold = 1, unhealthy_threshold = 1 }";

/// `[dns]` pointing at `resolver`, with refreshes between 200 ms and 1 s (dnsmasq's TTL is
/// 1 s), and the group `g` described by `group`, routed at `/`.
pub fn dns_config(resolver: SocketAddr, group: &str, dns_extra: &str) -> TestConfig {
    with_dns(TestConfig::new(), resolver, group, dns_extra)
}

/// `config` with `dns_config`'s tables (for a config to reload into a running proxy).
pub fn with_dns(
    config: TestConfig,
    resolver: SocketAddr,
    group: &str,
    dns_extra: &str,
) -> TestConfig {
    // A test may set its own timeout (the slow name server's answer needs a longer one).
    let timeout = if dns_extra.contains("timeout =") {
        ""
    } else {
        "timeout = \"1s\"\n"
    };
    config
        .tables(&format!(
            "[dns]\nresolvers = [\"{resolver}\"]\nmin_refresh = \"200ms\"\nmax_refresh = \"1s\"\n{timeout}{dns_extra}"
        ))
        .tables(group)
        .route("all", "/", "g")
}

/// Group `g` with the servers of `name` on `port`.
pub fn named_group(name: &str, port: u16) -> String {
    format!("[upstreams.g]\nservers = [{{ name = \"{name}\", port = {port} }}]\nconnect_timeout = \"500ms\"\n{CHECK}\n")
}

/// Backends `names` on 127.0.0.1, 127.0.0.2, ... all on one port, as a name's A records
/// would give them.
pub fn backends_on_one_port(names: &[&str]) -> (u16, Vec<TestBackend>) {
    let port = free_port();
    let backends = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let addr = SocketAddr::from(([127, 0, 0, i as u8 + 1], port));
            TestBackend::start_at(name, addr)
        })
        .collect();
    (port, backends)
}

/// Hosts-file records giving `name` the addresses of `backends`.
pub fn records<'a>(name: &'a str, backends: &[&TestBackend]) -> Vec<(String, &'a str)> {
    backends
        .iter()
        .map(|backend| (backend.addr.ip().to_string(), name))
        .collect()
}

pub fn set_records(dns: &mut Dnsmasq, records: &[(String, &str)]) {
    let pairs: Vec<(&str, &str)> = records.iter().map(|(a, n)| (a.as_str(), *n)).collect();
    dns.set_hosts(&pairs);
}

/// Group `g` as `/admin/upstreams` shows it.
pub async fn group(proxy: &TestProxy) -> Value {
    let upstreams = proxy.upstreams().await;
    upstreams["upstreams"]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["name"] == "g"))
        .cloned()
        .expect("group g")
}

/// The addresses of group `g`'s servers.
pub async fn server_addrs(proxy: &TestProxy) -> BTreeSet<String> {
    group(proxy).await["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["addr"].as_str().map(str::to_string))
        .collect()
}

/// Waits until group `g` has exactly the servers `want`, each healthy.
pub async fn wait_for_servers(proxy: &TestProxy, want: &[&TestBackend]) {
    let want: BTreeSet<String> = want.iter().map(|b| b.addr.to_string()).collect();
    eventually(
        Duration::from_secs(10),
        &format!("group g to have the healthy servers {want:?}"),
        || async {
            let group = group(proxy).await;
            let servers = group["servers"].as_array().cloned().unwrap_or_default();
            let addrs: BTreeSet<String> = servers
                .iter()
                .filter_map(|s| s["addr"].as_str().map(str::to_string))
                .collect();
            let healthy = servers.iter().all(|s| s["healthy"] == true);
            (addrs == want && healthy).then_some(())
        },
    )
    .await;
}

/// The journal's `dns` lines, newest first.
pub async fn dns_lines(proxy: &TestProxy) -> Vec<Value> {
    proxy.admin_get("/admin/reloads").await["reloads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|record| record["trigger"] == "dns")
        .cloned()
        .collect()
}

/// `count` requests to `/`, one after another: the server each answered from.
pub async fn spread(proxy: &TestProxy, count: usize) -> Vec<String> {
    let http = proxy.http();
    let mut servers = Vec::new();
    for _ in 0..count {
        let response = http.get(proxy.url("/")).send().await.expect("response");
        assert_eq!(response.status(), 200, "a request failed");
        let body: Value = response.json().await.expect("json");
        servers.push(body["server"].as_str().unwrap_or_default().to_string());
    }
    servers
}

fn count(servers: &[String], name: &str) -> usize {
    servers.iter().filter(|s| *s == name).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_a_records_become_three_servers_with_their_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let (port, backends) = backends_on_one_port(&["a", "b", "c"]);
    let all: Vec<&TestBackend> = backends.iter().collect();
    set_records(&mut dns, &records("api.test", &all));
    let config = dns_config(dns.addr(), &named_group("api.test", port), "");
    let proxy = TestProxy::start(&config).await;
    // Resolved before the proxy listened: the servers are there from its first snapshot.
    wait_for_servers(&proxy, &all).await;
    let group = group(&proxy).await;
    for server in group["servers"].as_array().expect("servers") {
        assert_eq!(server["origin"]["kind"], "dns", "{server}");
        assert_eq!(server["origin"]["name"], "api.test");
        assert_eq!(server["origin"]["record"], "A");
    }
    assert_eq!(group["dns"][0]["name"], "api.test");
    assert_eq!(group["dns"][0]["last_result"], "ok");
    let servers = spread(&proxy, 30).await;
    for name in ["a", "b", "c"] {
        assert_eq!(count(&servers, name), 10, "round robin over 3: {servers:?}");
    }
    // The first resolution happened before start-up: no `dns` line for it.
    assert!(dns_lines(&proxy).await.is_empty());
    let text = scrape(&proxy).await;
    assert_eq!(
        sample(&text, "scalelab_upstream_servers{upstream=\"g\"}"),
        Some(3.0)
    );
    let ok = sample(
        &text,
        "scalelab_dns_resolutions_total{name=\"api.test\",result=\"ok\"}",
    );
    assert!(ok.is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "scalelab_dns_resolutions_total{name=\"api.test\",result=\"timeout\"}"
        ),
        Some(0.0)
    );
    // A literal address beside a name still works as before, and is `static`.
    let (_, extra) = backends_on_one_port(&["static"]);
    let mixed = format!(
        "[upstreams.g]\nservers = [{{ addr = \"{}\" }}, {{ name = \"api.test\", port = {port} }}]\n{CHECK}\n",
        extra[0].addr
    );
    let reloaded = with_dns(TestConfig::same_ports(&config), dns.addr(), &mixed, "");
    proxy.write_config(&reloaded.render());
    let mut want = all.clone();
    want.push(&extra[0]);
    wait_for_servers(&proxy, &want).await;
    let group = self::group(&proxy).await;
    let origin_of = |addr: SocketAddr| {
        group["servers"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["addr"] == addr.to_string()))
            .map(|s| s["origin"]["kind"].clone())
    };
    assert_eq!(origin_of(extra[0].addr), Some(Value::from("static")));
    assert_eq!(origin_of(backends[0].addr), Some(Value::from("dns")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_record_drains_while_its_request_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let (port, backends) = backends_on_one_port(&["a", "b", "c"]);
    let all: Vec<&TestBackend> = backends.iter().collect();
    set_records(&mut dns, &records("api.test", &all));
    let proxy = TestProxy::start(&dns_config(dns.addr(), &named_group("api.test", port), "")).await;
    wait_for_servers(&proxy, &all).await;
    // One slow request held by c, the server about to leave.
    backends[2].set_latency(patient(Duration::from_secs(8)).as_millis() as u64);
    let http = proxy.http();
    let mut slow = None;
    for _ in 0..3 {
        let request = tokio::spawn(http.get(proxy.url("/")).send());
        if slow.is_none() {
            let c = backends[2].addr.to_string();
            let on_c = eventually(
                Duration::from_secs(5),
                "the request to reach a server",
                || async {
                    let group = group(&proxy).await;
                    let servers = group["servers"].as_array().cloned().unwrap_or_default();
                    let busy: u64 = servers
                        .iter()
                        .map(|s| s["in_flight"].as_u64().unwrap_or(0))
                        .sum();
                    (busy > 0 || request.is_finished()).then(|| {
                        servers
                            .iter()
                            .any(|s| s["addr"] == c && s["in_flight"] == 1)
                    })
                },
            )
            .await;
            if on_c {
                slow = Some(request);
                continue;
            }
        }
        let _ = request.await;
    }
    let slow = slow.expect("one request on c");
    set_records(&mut dns, &records("api.test", &all[..2]));
    wait_for_servers(&proxy, &all[..2]).await;
    assert!(
        !slow.is_finished(),
        "c's request must still be in flight when c leaves"
    );
    let lines = dns_lines(&proxy).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["dns"]["name"], "api.test");
    assert_eq!(lines[0]["dns"]["upstream"], "g");
    assert_eq!(
        lines[0]["dns"]["removed"],
        serde_json::json!([backends[2].addr.to_string()])
    );
    assert_eq!(lines[0]["dns"]["added"], serde_json::json!([]));
    assert_eq!(lines[0]["result"], "applied");
    // New requests go to a and b only; c's request ends normally.
    let servers = spread(&proxy, 10).await;
    assert_eq!(count(&servers, "c"), 0, "{servers:?}");
    let response = slow.await.expect("join").expect("c's response");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["server"], "c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_record_takes_traffic_after_its_health_check_and_the_others_keep_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let (port, backends) = backends_on_one_port(&["a", "b", "c"]);
    let all: Vec<&TestBackend> = backends.iter().collect();
    set_records(&mut dns, &records("api.test", &all[..2]));
    let proxy = TestProxy::start(&dns_config(dns.addr(), &named_group("api.test", port), "")).await;
    wait_for_servers(&proxy, &all[..2]).await;
    let _ = spread(&proxy, 10).await;
    let selected = |group: &Value, addr: SocketAddr| {
        group["servers"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["addr"] == addr.to_string()))
            .and_then(|s| s["selected"].as_u64())
    };
    let before = group(&proxy).await;
    // c fails its check: listed, but no traffic until it passes.
    backends[2].set_failing_health(true);
    set_records(&mut dns, &records("api.test", &all));
    let c = backends[2].addr;
    eventually(Duration::from_secs(10), "c to be listed", || async {
        server_addrs(&proxy)
            .await
            .contains(&c.to_string())
            .then_some(())
    })
    .await;
    let lines = dns_lines(&proxy).await;
    assert_eq!(lines[0]["dns"]["added"], serde_json::json!([c.to_string()]));
    let after = group(&proxy).await;
    // a and b kept their state (their counters went on from where they were).
    for backend in &backends[..2] {
        assert_eq!(
            selected(&after, backend.addr),
            selected(&before, backend.addr)
        );
    }
    assert_eq!(proxy.server_healthy(c).await, Some(false));
    let servers = spread(&proxy, 10).await;
    assert_eq!(count(&servers, "c"), 0, "{servers:?}");
    backends[2].set_failing_health(false);
    wait_for_servers(&proxy, &all).await;
    let servers = spread(&proxy, 30).await;
    assert_eq!(count(&servers, "c"), 10, "{servers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_keeps_the_resolved_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let (port, backends) = backends_on_one_port(&["a", "b"]);
    let all: Vec<&TestBackend> = backends.iter().collect();
    set_records(&mut dns, &records("api.test", &all));
    let config = dns_config(dns.addr(), &named_group("api.test", port), "");
    let proxy = TestProxy::start(&config).await;
    wait_for_servers(&proxy, &all).await;
    // The name server goes away: only the table the proxy keeps can give the servers now.
    dns.stop();
    let changed = format!("{}retries = 1\n", named_group("api.test", port));
    let reload = with_dns(TestConfig::same_ports(&config), dns.addr(), &changed, "");
    std::fs::write(&proxy.config_path, reload.render()).expect("write");
    let (status, body) = proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "applied", "{body}");
    let group = group(&proxy).await;
    assert_eq!(group["retries"], 1);
    assert_eq!(server_addrs(&proxy).await.len(), 2);
    let servers = spread(&proxy, 10).await;
    assert_eq!(count(&servers, "a") + count(&servers, "b"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_a_name_follows_it_and_one_that_removes_it_drops_its_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let (port, backends) = backends_on_one_port(&["a", "b"]);
    let (_, fixed) = backends_on_one_port(&["static"]);
    let all: Vec<&TestBackend> = backends.iter().collect();
    set_records(&mut dns, &records("api.test", &all));
    let only_static = format!(
        "[upstreams.g]\nservers = [{{ addr = \"{}\" }}]\n{CHECK}\n",
        fixed[0].addr
    );
    let config = dns_config(dns.addr(), &only_static, "");
    let proxy = TestProxy::start(&config).await;
    wait_for_servers(&proxy, &[&fixed[0]]).await;
    // The reload names api.test: its task starts and its answer is applied as a `dns` change.
    let with_name = format!(
        "[upstreams.g]\nservers = [{{ addr = \"{}\" }}, {{ name = \"api.test\", port = {port} }}]\n{CHECK}\n",
        fixed[0].addr
    );
    proxy.write_config(
        &with_dns(TestConfig::same_ports(&config), dns.addr(), &with_name, "").render(),
    );
    wait_for_servers(&proxy, &[&fixed[0], &backends[0], &backends[1]]).await;
    let lines = dns_lines(&proxy).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let mut added: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
    added.sort();
    assert_eq!(lines[0]["dns"]["added"], serde_json::json!(added));
    // The reload that drops the name drops its servers and its task: a later change of the
    // record is no longer applied.
    proxy.write_config(
        &with_dns(
            TestConfig::same_ports(&config),
            dns.addr(),
            &only_static,
            "",
        )
        .render(),
    );
    wait_for_servers(&proxy, &[&fixed[0]]).await;
    // The follower notices within half a second and forgets the name.
    eventually(
        Duration::from_secs(5),
        "api.test to be forgotten",
        || async {
            group(&proxy).await["dns"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        },
    )
    .await;
    set_records(&mut dns, &records("api.test", &all[..1]));
    let generation = proxy.admin_get("/admin/reloads").await["generation"].clone();
    let text = scrape(&proxy).await;
    let resolved = sample(
        &text,
        "scalelab_dns_resolutions_total{name=\"api.test\",result=\"ok\"}",
    );
    tokio::time::sleep(patient(Duration::from_secs(2))).await;
    assert_eq!(dns_lines(&proxy).await.len(), 1);
    assert_eq!(
        proxy.admin_get("/admin/reloads").await["generation"],
        generation
    );
    let text = scrape(&proxy).await;
    assert_eq!(
        sample(
            &text,
            "scalelab_dns_resolutions_total{name=\"api.test\",result=\"ok\"}"
        ),
        resolved,
        "a name no group uses is not resolved any more"
    );
}

//! When the name server fails: a dead one (the last good set keeps serving, under load, with
//! no failed request), a slow one (requests never wait for it), NXDOMAIN (the last good set
//! for `max_stale`, then an empty group answering 503 with the reason) and a name that does
//! not resolve at start (the proxy starts; `--check` warns).

use super::{
    backends_on_one_port, dns_config, dns_lines, named_group, records, server_addrs, set_records,
    spread, wait_for_servers,
};
use crate::harness::{binary, eventually, patient, sample, scrape, TestBackend, TestProxy};
use scalelab_test_support::{Dnsmasq, SlowDns};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Failed resolutions of `name` so far (errors and timeouts).
async fn failed_resolutions(proxy: &TestProxy, name: &str) -> f64 {
    let text = scrape(proxy).await;
    ["error", "timeout"]
        .iter()
        .filter_map(|result| {
            sample(
                &text,
                &format!("scalelab_dns_resolutions_total{{name=\"{name}\",result=\"{result}\"}}"),
            )
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_name_server_keeps_the_last_good_set_with_no_failed_request_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let (port, backends) = backends_on_one_port(&["a", "b", "c"]);
    let all: Vec<&TestBackend> = backends.iter().collect();
    set_records(&mut dns, &records("api.test", &all));
    let proxy = TestProxy::start(&dns_config(dns.addr(), &named_group("api.test", port), "")).await;
    wait_for_servers(&proxy, &all).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (proxy.http(), proxy.url("/"));
            let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                // Bounded: the test stops it, and it never runs past 2,000 requests.
                for _ in 0..2_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let ok = http.get(&url).send().await.is_ok_and(|r| r.status() == 200);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let before = failed_resolutions(&proxy, "api.test").await;
    dns.stop();
    eventually(
        Duration::from_secs(20),
        "three failed resolutions",
        || async { (failed_resolutions(&proxy, "api.test").await >= before + 3.0).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.expect("load loop");
    }
    assert!(sent.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {}",
        sent.load(Ordering::Relaxed)
    );
    assert_eq!(server_addrs(&proxy).await.len(), 3);
    assert!(
        dns_lines(&proxy).await.is_empty(),
        "a failure changes nothing"
    );
    let group = super::group(&proxy).await;
    assert_ne!(group["dns"][0]["last_result"], "ok", "{group}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_name_server_never_stalls_a_request() {
    const DELAY: Duration = Duration::from_secs(5);
    let slow = SlowDns::start(DELAY, Ipv4Addr::LOCALHOST);
    let backend = TestBackend::start("a");
    let config = dns_config(
        slow.addr(),
        &named_group("slow.test", backend.addr.port()),
        // The answer takes 5 s; the timeout allows it.
        "refresh = \"200ms\"\ntimeout = \"20s\"\n",
    );
    let proxy = TestProxy::start(&config).await;
    wait_for_servers(&proxy, &[&backend]).await;
    // Wait for a refresh in flight (asked, not answered yet), then send requests meanwhile.
    let asked = eventually(Duration::from_secs(15), "a refresh in flight", || async {
        let (received, answered) = (slow.received(), slow.answered());
        (received > answered).then_some(answered)
    })
    .await;
    let http = proxy.http();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let response = http.get(proxy.url("/")).send().await.expect("response");
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    assert_eq!(
        slow.answered(),
        asked,
        "the requests ran while the answer was pending"
    );
    assert!(
        slowest < DELAY / 2,
        "a request waited {slowest:?} behind a DNS refresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_keeps_the_servers_for_max_stale_then_the_group_answers_503_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let (port, backends) = backends_on_one_port(&["a"]);
    let all: Vec<&TestBackend> = backends.iter().collect();
    set_records(&mut dns, &records("api.test", &all));
    let stale = patient(Duration::from_secs(3));
    let config = dns_config(
        dns.addr(),
        &named_group("api.test", port),
        &format!("max_stale = \"{}ms\"\n", stale.as_millis()),
    );
    let proxy = TestProxy::start(&config).await;
    wait_for_servers(&proxy, &all).await;
    dns.set_hosts(&[]);
    // Within max_stale of the first NXDOMAIN the server still serves.
    assert_eq!(spread(&proxy, 3).await, ["a", "a", "a"]);
    let http = proxy.http();
    let body: Value = eventually(
        Duration::from_secs(20),
        "a 503 from the emptied group",
        || async {
            let response = http.get(proxy.url("/")).send().await.ok()?;
            (response.status() == 503).then_some(())?;
            response.json().await.ok()
        },
    )
    .await;
    assert_eq!(body["upstream"], "g", "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("api.test") && reason.contains("NXDOMAIN"),
        "{body}"
    );
    let lines = dns_lines(&proxy).await;
    assert_eq!(
        lines[0]["dns"]["removed"],
        serde_json::json!([backends[0].addr.to_string()])
    );
    assert_eq!(lines[0]["dns"]["servers"], 0);
    let text = scrape(&proxy).await;
    assert_eq!(
        sample(&text, "scalelab_upstream_servers{upstream=\"g\"}"),
        Some(0.0)
    );
    assert!(sample(
        &text,
        "scalelab_dns_resolutions_total{name=\"api.test\",result=\"empty\"}"
    )
    .is_some_and(|n| n >= 1.0));
    // The record comes back: so does the server, after its check.
    set_records(&mut dns, &records("api.test", &all));
    wait_for_servers(&proxy, &all).await;
    assert_eq!(spread(&proxy, 2).await, ["a", "a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_at_start_warns_in_check_and_the_proxy_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dns = Dnsmasq::start(dir.path());
    let (port, backends) = backends_on_one_port(&["a"]);
    let config = dns_config(dns.addr(), &named_group("later.test", port), "");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config.render()).expect("write");
    let check = std::process::Command::new(binary())
        .arg("--check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run --check");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("warning: upstreams.g: A later.test does not resolve (NXDOMAIN)"),
        "{stdout}"
    );
    let proxy = TestProxy::start(&config).await;
    let response = proxy
        .http()
        .get(proxy.url("/"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("later.test")),
        "{body}"
    );
    let all: Vec<&TestBackend> = backends.iter().collect();
    set_records(&mut dns, &records("later.test", &all));
    wait_for_servers(&proxy, &all).await;
    assert_eq!(spread(&proxy, 2).await, ["a", "a"]);
    let lines = dns_lines(&proxy).await;
    assert_eq!(
        lines[0]["dns"]["added"],
        serde_json::json!([backends[0].addr.to_string()])
    );
}

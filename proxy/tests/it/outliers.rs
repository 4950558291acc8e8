//! Passive failure handling per group against the real binary: outlier detection (a server
//! whose health check passes but whose requests fail is ejected) and circuit breaking (issue 28).

use crate::balancing_more::{group_config, start};
use crate::harness::*;
use std::time::Duration;

/// `n` sequential GETs; returns how many answered 500.
async fn errors_in(proxy: &TestProxy, n: usize) -> usize {
    let http = client();
    let mut errors = 0;
    for _ in 0..n {
        let status = http.get(proxy.url("/o")).send().await.unwrap().status();
        assert!(status == 200 || status == 500, "{status}");
        errors += usize::from(status == 500);
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_server_whose_health_passes_but_requests_fail() {
    let backends = ["a", "b", "c"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines =
        "outlier = { consecutive_5xx = 3, base_ejection = \"60s\", max_ejection = \"50%\" }";
    let proxy = start(&refs, &group_config(&refs, "round_robin", lines)).await;
    backends[0].set_failing_requests(true);
    // Round robin: a's third 500 comes within 9 requests, then it is out.
    assert_eq!(errors_in(&proxy, 9).await, 3);
    assert_eq!(backends[0].hits(), 3);
    let report = proxy.server_report(backends[0].addr).await.unwrap();
    assert_eq!(
        (
            report["ejected"].as_bool(),
            report["ejections"].as_u64(),
            report["healthy"].as_bool()
        ),
        (Some(true), Some(1), Some(false)),
        "{report}"
    );
    // Its health check still passes, and it still gets nothing.
    assert_eq!(errors_in(&proxy, 12).await, 0);
    assert_eq!(backends[0].hits(), 3);
    assert_eq!(report["last_check"]["ok"], true, "{report}");

    // b breaks too, but ejecting it would take out 2 of 3 (> 50%): it stays, and errs.
    backends[1].set_failing_requests(true);
    assert_eq!(errors_in(&proxy, 12).await, 6);
    let b = proxy.server_report(backends[1].addr).await.unwrap();
    assert_eq!(
        (b["ejected"].as_bool(), b["ejections"].as_u64()),
        (Some(false), Some(0)),
        "{b}"
    );

    // One metric increment and one log line per ejection, by rule.
    let metrics = scrape(&proxy).await;
    let series = |addr: std::net::SocketAddr| {
        format!(
            "scalelab_outlier_ejections_total{{reason=\"consecutive_5xx\",server=\"{addr}\",upstream=\"g\"}}"
        )
    };
    assert!(
        metrics.contains(&format!("{} 1\n", series(backends[0].addr))),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("{} 0\n", series(backends[1].addr))),
        "{metrics}"
    );
    eventually(
        patient(Duration::from_secs(5)),
        "the ejection's log line",
        || async {
            let log = proxy.log();
            (log.matches("server ejected by outlier detection").count() == 1).then_some(())
        },
    )
    .await;
    // A reload (a new base_ejection) keeps the ejection and its count: the state is the server's.
    let journal = proxy.reloads().await.len();
    let relaxed =
        "outlier = { consecutive_5xx = 3, base_ejection = \"90s\", max_ejection = \"50%\" }";
    proxy.write_config(&group_config(&refs, "round_robin", relaxed).render());
    eventually(patient(Duration::from_secs(10)), "the reload", || async {
        let entries = proxy.reloads().await;
        (entries.len() > journal && entries[0]["result"] == "applied").then_some(())
    })
    .await;
    let report = proxy.server_report(backends[0].addr).await.unwrap();
    assert_eq!(
        (report["ejected"].as_bool(), report["ejections"].as_u64()),
        (Some(true), Some(1)),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_error_rate_ejects_by_the_share_of_failures_in_its_window() {
    let backends = ["a", "b", "c"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines = "outlier = { consecutive_5xx = 0, consecutive_gateway_errors = 0, \
                 error_rate = { threshold = \"50%\", min_requests = 4, window = \"60s\" } }";
    let proxy = start(&refs, &group_config(&refs, "round_robin", lines)).await;
    backends[0].set_failing_requests(true);
    // The consecutive rules are off; the rate rule needs 4 answers in its window.
    assert_eq!(errors_in(&proxy, 12).await, 4);
    assert_eq!(backends[0].hits(), 4);
    assert_eq!(errors_in(&proxy, 6).await, 0);
    assert_eq!(backends[0].hits(), 4);
    let metrics = scrape(&proxy).await;
    let addr = backends[0].addr;
    assert!(
        metrics.contains(&format!(
            "scalelab_outlier_ejections_total{{reason=\"error_rate\",server=\"{addr}\",upstream=\"g\"}} 1\n"
        )),
        "{metrics}"
    );
}

async fn queue_length(proxy: &TestProxy) -> Option<u64> {
    scrape(proxy)
        .await
        .lines()
        .find(|line| line.starts_with("scalelab_upstream_queue_length{upstream=\"g\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_caps_the_group_lets_max_pending_wait_and_refuses_the_rest_at_once() {
    let backends = ["a", "b", "c"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines = "circuit = { max_requests = 2, max_pending = 1 }";
    let proxy = start(&refs, &group_config(&refs, "round_robin", lines)).await;
    let slow = proxy.url(&format!(
        "/c?sleep_ms={}",
        patient(Duration::from_millis(1500)).as_millis()
    ));
    let http = client();
    let mut held = Vec::new();
    for _ in 0..2 {
        let (http, slow) = (http.clone(), slow.clone());
        held.push(tokio::spawn(async move {
            http.get(&slow).send().await.unwrap().status()
        }));
    }
    proxy
        .wait_in_flight(2, patient(Duration::from_secs(5)))
        .await;
    let groups = proxy.upstreams().await;
    assert_eq!(
        groups["upstreams"][0]["circuit"],
        serde_json::json!({"max_requests": 2, "max_pending": 1, "in_flight": 2, "open": true})
    );
    // Three servers with one idle, but the group has its two: the third request waits.
    let pending = {
        let (http, url) = (http.clone(), proxy.url("/c"));
        tokio::spawn(async move { http.get(&url).send().await.unwrap().status() })
    };
    eventually(
        patient(Duration::from_secs(5)),
        "one request pending",
        || async { (queue_length(&proxy).await == Some(1)).then_some(()) },
    )
    .await;
    // The fourth finds the circuit full and its one pending place taken: 503 at once.
    let response = http.get(proxy.url("/c")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "circuit_open", "{body}");
    assert_eq!(backends.iter().map(TestBackend::hits).sum::<usize>(), 2);
    // The held requests end; the pending one is served.
    for task in held {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(pending.await.unwrap(), 200);
    assert_eq!(backends.iter().map(TestBackend::hits).sum::<usize>(), 3);
    let metrics = scrape(&proxy).await;
    assert!(
        metrics.contains(
            "scalelab_upstream_refused_requests_total{reason=\"circuit_open\",upstream=\"g\"} 1\n"
        ),
        "{metrics}"
    );
    proxy
        .wait_in_flight(0, patient(Duration::from_secs(5)))
        .await;
}

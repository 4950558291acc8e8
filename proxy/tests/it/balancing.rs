//! Distribution per strategy, measured by per-server hit counts and `X-Upstream-Server`.

use crate::harness::*;
use std::collections::HashMap;
use std::time::Duration;

async fn pick_sequence(proxy: &TestProxy, path: &str, n: usize) -> Vec<String> {
    let http = client();
    let mut sequence = Vec::with_capacity(n);
    for _ in 0..n {
        let response = http.get(proxy.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        sequence.push(
            response.headers()["x-upstream-server"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_cycles_exactly() {
    let (backends, proxy) = backends_behind_proxy(["a", "b", "c"], "round_robin", &[3, 2, 1]).await;
    let sequence = pick_sequence(&proxy, "/rr", 30).await;
    for (i, server) in sequence.iter().enumerate().skip(3) {
        assert_eq!(
            server,
            &sequence[i - 3],
            "round robin must repeat with period 3: {sequence:?}"
        );
    }
    let distinct: std::collections::HashSet<_> = sequence[..3].iter().collect();
    assert_eq!(distinct.len(), 3, "{sequence:?}");
    assert_eq!(
        [backends[0].hits(), backends[1].hits(), backends[2].hits()],
        [10, 10, 10]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_is_exactly_3_2_1_and_interleaved() {
    let (backends, proxy) = backends_behind_proxy(["a", "b", "c"], "weighted", &[3, 2, 1]).await;
    let sequence = pick_sequence(&proxy, "/w", 600).await;
    assert_eq!(
        [backends[0].hits(), backends[1].hits(), backends[2].hits()],
        [300, 200, 100]
    );
    let heaviest = backends[0].addr.to_string();
    for window in sequence.windows(3) {
        assert!(
            !window.iter().all(|s| s == &heaviest),
            "heaviest server picked three times in a row"
        );
    }
    for window in sequence.windows(6) {
        let count = |addr: &str| window.iter().filter(|s| *s == addr).count();
        assert_eq!(
            (
                count(&heaviest),
                count(&backends[1].addr.to_string()),
                count(&backends[2].addr.to_string())
            ),
            (3, 2, 1)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_slow_server_and_leaks_nothing() {
    let (backends, proxy) =
        backends_behind_proxy(["a", "b", "slow"], "least_connections", &[1, 1, 1]).await;
    backends[0].set_latency(10);
    backends[1].set_latency(10);
    backends[2].set_latency(310);
    // 60 requests from 10 concurrent clients.
    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let http = http.clone();
        let url = proxy.url("/lc");
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..6 {
                statuses.push(http.get(&url).send().await.unwrap().status().as_u16());
            }
            statuses
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().iter().all(|&s| s == 200));
    }
    assert_eq!(backends.iter().map(TestBackend::hits).sum::<usize>(), 60);
    assert!(
        backends[2].hits() <= 12,
        "slow server got {} of 60",
        backends[2].hits()
    );

    // Cancelled clients must give their slots back too. The timeout and the request are scaled
    // together, so the clients still give up while their requests are in flight.
    let impatient = client_builder()
        .timeout(patient(Duration::from_millis(100)))
        .build()
        .unwrap();
    let slow = proxy.url(&format!(
        "/lc?sleep_ms={}",
        patient(Duration::from_millis(500)).as_millis()
    ));
    for _ in 0..6 {
        let _ = impatient.get(&slow).send().await;
    }
    proxy.wait_in_flight(0, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategy_override_by_query_and_header_and_400_on_unknown() {
    let (backends, proxy) = backends_behind_proxy(["a", "b"], "round_robin", &[5, 1]).await;
    let http = client();

    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..12 {
        let response = http
            .get(proxy.url("/x?a=1&strategy=weighted"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-strategy"], "weighted");
        *counts
            .entry(
                response.headers()["x-upstream-server"]
                    .to_str()
                    .unwrap()
                    .into(),
            )
            .or_default() += 1;
    }
    assert_eq!(counts[&backends[0].addr.to_string()], 10);
    assert_eq!(counts[&backends[1].addr.to_string()], 2);
    // The control parameter is removed before forwarding, the others are kept.
    let last = backends.iter().find(|b| b.last_query().is_some()).unwrap();
    assert_eq!(last.last_query().as_deref(), Some("a=1"));

    let response = http
        .get(proxy.url("/x"))
        .header("X-Scalelab-Strategy", "least_connections")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-strategy"], "least_connections");
    assert!(backends
        .iter()
        .all(|b| b.last_header("x-scalelab-strategy").is_none()));

    let hits_before: usize = backends.iter().map(TestBackend::hits).sum();
    let response = http
        .get(proxy.url("/x?strategy=fastest"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unknown strategy");
    assert_eq!(body["given"], "fastest");
    assert_eq!(
        body["valid"],
        serde_json::json!([
            "round_robin",
            "weighted",
            "least_connections",
            "p2c",
            "ewma",
            "hash"
        ])
    );
    assert_eq!(
        backends.iter().map(TestBackend::hits).sum::<usize>(),
        hits_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_header_lists_candidates_and_winner() {
    let (backends, proxy) = backends_behind_proxy(["a", "b"], "weighted", &[2, 1]).await;
    let response = client()
        .get(proxy.url("/e"))
        .header("X-Scalelab-Explain", "1")
        .send()
        .await
        .unwrap();
    let explain = response.headers()["x-scalelab-explain"]
        .to_str()
        .unwrap()
        .to_string();
    let winner = response.headers()["x-upstream-server"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        explain.contains(&format!("{}(w=2,inflight=0,up)", backends[0].addr)),
        "{explain}"
    );
    assert!(
        explain.contains(&format!("{}(w=1,inflight=0,up)", backends[1].addr)),
        "{explain}"
    );
    assert!(explain.contains(&format!("winner={winner}")), "{explain}");
    let plain = client().get(proxy.url("/e")).send().await.unwrap();
    assert!(plain.headers().get("x-scalelab-explain").is_none());
}

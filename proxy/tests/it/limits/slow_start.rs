//! Slow start: a server that recovers takes a small share at first, growing to its full share
//! by the end of the window, for every strategy.

use crate::harness::*;
use std::time::{Duration, Instant};

/// Sends `n` requests one after another with `strategy`; returns, for each, whether the
/// recovering server `addr` answered it and when it ended.
async fn block(proxy: &TestProxy, strategy: &str, n: usize, addr: &str) -> Vec<(bool, Instant)> {
    let http = client();
    let mut answers = Vec::with_capacity(n);
    for _ in 0..n {
        let response = http
            .get(proxy.url(&format!("/s?strategy={strategy}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let server = response.headers()["x-upstream-server"].to_str().unwrap() == addr;
        answers.push((server, Instant::now()));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovering_server_ramps_from_a_small_share_to_a_third() {
    let backends = ["a", "b", "recovering"].map(TestBackend::start);
    let window = patient(Duration::from_secs(9));
    let servers: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{}\" }}", b.addr))
        .collect();
    // A generous probe timeout and two failures to eject: on a loaded machine one slow probe
    // must not eject a server (its return would restart the ramp and spoil the exact counts).
    let config = TestConfig::new()
        .tables(&format!(
            "[upstreams.g]\nservers = [{}]\nretries = 0\nslow_start = \"{}ms\"\n[upstreams.g.health_check]\ninterval = \"100ms\"\ntimeout = \"1s\"\nhealthy_threshold = 1\nunhealthy_threshold = 2\n",
            servers.join(", "),
            window.as_millis()
        ))
        .route("all", "/", "g");
    let proxy = TestProxy::start(&config).await;
    let wait = patient(Duration::from_secs(10));
    let healthy = |index: usize, expected: bool| {
        let proxy = &proxy;
        let addr = backends[index].addr;
        async move {
            eventually(
                wait,
                &format!("server {index} healthy = {expected}"),
                || async { (proxy.server_healthy(addr).await == Some(expected)).then_some(()) },
            )
            .await
        }
    };
    for index in 0..3 {
        healthy(index, true).await;
    }
    let recovering = backends[2].addr.to_string();
    let report = proxy.server_report(backends[2].addr).await.unwrap();
    assert_eq!(
        report["effective_weight"], 1.0,
        "start-up servers do not ramp"
    );
    backends[2].set_failing_health(true);
    healthy(2, false).await;
    backends[2].set_failing_health(false);
    healthy(2, true).await;
    let recovered = Instant::now();
    let report = proxy.server_report(backends[2].addr).await.unwrap();
    assert!(
        report["effective_weight"].as_f64().unwrap() < 0.5,
        "{report}"
    );
    let explained = client()
        .get(proxy.url("/s"))
        .header("x-scalelab-explain", "1")
        .send()
        .await
        .unwrap();
    let explain = explained.headers()["x-scalelab-explain"].to_str().unwrap();
    assert!(
        explain.contains(&format!("{recovering}(w=1,slow_start=")),
        "{explain}"
    );

    let mut early = Vec::new();
    for strategy in ["round_robin", "weighted", "least_connections"] {
        let answers = block(&proxy, strategy, 100, &recovering).await;
        let in_third: Vec<bool> = answers
            .iter()
            .filter(|(_, at)| at.duration_since(recovered) < window / 3)
            .map(|(server, _)| *server)
            .collect();
        early.push((strategy, in_third));
    }
    let measured: usize = early.iter().map(|(_, answers)| answers.len()).sum();
    assert!(
        measured >= 150,
        "only {measured} of 300 requests ended in the first third of the window"
    );
    for (strategy, answers) in &early {
        if answers.len() < 30 {
            continue;
        }
        let share = answers.iter().filter(|&&s| s).count() as f64 / answers.len() as f64;
        eprintln!(
            "{strategy}: share {share:.3} of {} requests in the first third",
            answers.len()
        );
        assert!(
            share < 0.2,
            "{strategy}: share {share:.2} in the first third"
        );
    }

    eventually(window + wait, "the ramp to end", || async {
        let report = proxy.server_report(backends[2].addr).await?;
        (report["effective_weight"] == 1.0).then_some(())
    })
    .await;
    for strategy in ["round_robin", "weighted", "least_connections"] {
        let answers = block(&proxy, strategy, 99, &recovering).await;
        let count = answers.iter().filter(|(server, _)| *server).count();
        if strategy == "least_connections" {
            assert!((25..=41).contains(&count), "{strategy}: {count} of 99");
        } else {
            assert_eq!(count, 33, "{strategy}: a third after the window");
        }
    }
    let metrics = scrape(&proxy).await;
    let series =
        format!("scalelab_upstream_server_weight{{server=\"{recovering}\",upstream=\"g\"}}");
    assert_eq!(sample(&metrics, &series), Some(1.0));
}

//! The HTTP/1.1 fault suite against the real binary: every vector of
//! `tests/vectors/http1.toml` gets exactly its verdict (the statuses the client reads, and the
//! exact bytes a recording upstream received, nothing smuggled behind them), and a canary on a
//! fresh connection is answered after each.

use crate::attack::{self, masked, Recorder};
use crate::harness::{TestConfig, TestProxy};
use std::net::SocketAddr;

/// A config with one route to the recording upstream (no health checks, so the recorder sees
/// only what clients sent through the proxy) and `extra` lines in `[proxy]`.
pub(crate) fn recording_config(recorder: &Recorder, extra: &str) -> TestConfig {
    TestConfig::new()
        .threads(1)
        .proxy_setting(extra)
        .upstream(crate::harness::UpstreamSpec {
            name: "rec",
            strategy: "round_robin",
            servers: vec![(recorder.addr, 1)],
            retries: 0,
            read_timeout: "5s",
            health: None,
        })
        .route("all", "/", "rec")
}

/// The proxy listener's address.
pub(crate) fn listener(proxy: &TestProxy) -> SocketAddr {
    proxy
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("proxy addr")
}

/// The proxy, started with `recording_config`.
pub(crate) async fn proxy_in_front_of(recorder: &Recorder, extra: &str) -> (TestProxy, SocketAddr) {
    let proxy = TestProxy::start(&recording_config(recorder, extra)).await;
    let addr = listener(&proxy);
    (proxy, addr)
}

#[tokio::test]
async fn every_vector_gets_its_exact_verdict() {
    let recorder = Recorder::start().await;
    let (proxy, addr) = proxy_in_front_of(&recorder, "").await;
    let vectors = attack::vectors();
    assert!(
        vectors.len() >= 40,
        "the table has {} vectors",
        vectors.len()
    );
    let mut failures = Vec::new();
    for vector in &vectors {
        let verdict = attack::run(vector, addr, &recorder).await;
        let upstream = masked(&verdict.upstream);
        let want = String::from_utf8_lossy(&attack::expand(&vector.upstream)).into_owned();
        // The recorder parsed as many whole requests as the expected bytes hold.
        let want_requests = attack::count_requests(want.as_bytes());
        if verdict.statuses != vector.statuses
            || upstream != want
            || verdict.upstream_requests != want_requests
        {
            failures.push(format!(
                "{} ({}): statuses {:?} (want {:?}), upstream got {:?} (want {:?})",
                vector.name, vector.class, verdict.statuses, vector.statuses, upstream, want
            ));
        }
        if verdict.canary != [200] {
            failures.push(format!(
                "{}: the canary after it got {:?}",
                vector.name, verdict.canary
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
    // Every refusal was counted by reason.
    let metrics = crate::harness::scrape(&proxy).await;
    let refused: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("scalelab_requests_refused_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let rejected = vectors
        .iter()
        .filter(|v| v.statuses.first().is_some_and(|s| *s >= 400))
        .count();
    assert_eq!(refused as usize, rejected, "{metrics}");
}

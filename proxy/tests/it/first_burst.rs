//! Issue 31: Prometheus missed the first burst. A route's series were made by its first
//! request, so the first sample Prometheus took already held the burst, and `increase()` (which
//! needs two samples) read ~260 of 1,278 requests and 0 for every 429, 401 and 404. The series
//! now exist at 0 from the route's publication: a real Prometheus, scraping a fresh proxy, sees
//! `increase()` equal to the burst, code by code.

use crate::harness::*;
use scalelab_test_support::Prometheus;
use std::collections::BTreeMap;
use std::time::Duration;

const AUTH: &str =
    "algorithms = [\"HS256\"]\nsecret = \"first-burst-test-secret-0123456789abcdef\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_proxys_first_burst_is_counted_whole_by_prometheus() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .auth_table(AUTH)
        .route("open", "/open", "g")
        .jwt_route("private", "/private", "g")
        .route_with(
            "limited",
            "/limited",
            "g",
            "rate_limits = [{ name = \"all\", rate = \"1/min\", burst = 4, key = \"route\" }]",
        );
    let proxy = TestProxy::start(&config).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = proxy.admin.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(dir.path(), "proxy", &[admin], "/metrics").await;

    // Prometheus holds a sample of each series at 0 before the first request.
    let zero = "scalelab_http_requests_total{route=\"limited\",code=\"429\"}";
    eventually(
        Duration::from_secs(20),
        "a scrape of the fresh proxy",
        || {
            let prometheus = &prometheus;
            async move { (prometheus.query(zero, None).await.first()?.1 == 0.0).then_some(()) }
        },
    )
    .await;

    let http = client();
    let mut sent: BTreeMap<(&str, u16), f64> = BTreeMap::new();
    for (path, route, times) in [
        ("/open/x", "open", 30),
        ("/private/x", "private", 20),
        ("/nowhere", "none", 10),
        ("/limited/x", "limited", 12),
    ] {
        for _ in 0..times {
            let status = http.get(proxy.url(path)).send().await.unwrap().status();
            *sent.entry((route, status.as_u16())).or_default() += 1.0;
        }
    }
    let expected: BTreeMap<(&str, u16), f64> = [
        (("limited", 200), 4.0),
        (("limited", 429), 8.0),
        (("none", 404), 10.0),
        (("open", 200), 30.0),
        (("private", 401), 20.0),
    ]
    .into();
    assert_eq!(sent, expected, "the burst the proxy answered");

    // Wait for a scrape that holds the whole burst, then evaluate `increase()` at that scrape's
    // time: with the series' first sample at 0, nothing is extrapolated on either side, so the
    // value is exact.
    let open = "scalelab_http_requests_total{route=\"open\",code=\"200\"}";
    let at = eventually(Duration::from_secs(20), "a scrape after the burst", || {
        let prometheus = &prometheus;
        async move {
            let (time, value) = *prometheus.samples(open, "1m").await.last()?;
            (value == 30.0).then_some(time)
        }
    })
    .await;
    let seen = prometheus
        .query(
            "sum by (route, code) (increase(scalelab_http_requests_total[5m])) > 0",
            Some(at),
        )
        .await;
    let seen: BTreeMap<(String, u16), f64> = seen
        .into_iter()
        .map(|(labels, value)| {
            let route = labels["route"].as_str().unwrap_or_default().to_string();
            let code = labels["code"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .unwrap_or(0);
            ((route, code), (value * 1000.0).round() / 1000.0)
        })
        .collect();
    let expected: BTreeMap<(String, u16), f64> = expected
        .into_iter()
        .map(|((route, code), count)| ((route.to_string(), code), count))
        .collect();
    assert_eq!(seen, expected, "increase() by route and code at {at}");
}

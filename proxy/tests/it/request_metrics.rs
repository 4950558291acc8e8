//! Metrics recorded on the request path: requests, latency and sizes per route; responses,
//! errors and retries per upstream server; health checks. Counts are exact, the exposition
//! passes `promtool check metrics`, and a reload takes away the series of what it removed.

use crate::harness::*;
use std::time::Duration;

/// The sum of every `scalelab_http_requests_total` series.
fn requests_counted(text: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with("scalelab_http_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const AUTH: &str =
    "algorithms = [\"HS256\"]\nsecret = \"metrics-test-secret-0123456789abcdef\"\nleeway = \"5s\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_path_metrics_count_routes_servers_errors_and_retries() {
    let a = TestBackend::start("a");
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    // `g`: a live server and one that refuses connections, no active check (both start
    // healthy), one retry. `h`: the live server under active checks.
    let mut spec = UpstreamSpec::new("g", "round_robin", &[&a], &[1]);
    spec.servers.push((dead, 1));
    spec.health = None;
    spec.retries = 1;
    let checked = UpstreamSpec::new("h", "round_robin", &[&a], &[1]);
    let config = TestConfig::new()
        .upstream(spec)
        .upstream(checked)
        .cache(&[("L1", 10)], 1)
        .auth_table(AUTH)
        .cached_route("c", "/c", "h", "key = \"{path}\"")
        .jwt_route("secure", "/secure", "h")
        .route("api", "/api", "g");
    let proxy = TestProxy::start(&config).await;
    let http = client();
    for _ in 0..4 {
        let response = http.get(proxy.url("/api/x")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let status = |path: &'static str| {
        let (http, url) = (http.clone(), proxy.url(path));
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/nowhere").await, 404);
    assert_eq!(status("/secure").await, 401);
    assert_eq!(status("/c/obj").await, 200);
    assert_eq!(status("/c/obj").await, 200);

    let (a_addr, dead_addr) = (a.addr.to_string(), dead.to_string());
    // A request is counted in its `logging` phase, after the client has its answer: wait until
    // all 8 are, and until a health check of `a` has passed.
    let text = eventually(
        Duration::from_secs(5),
        "8 requests and a passed health check to be counted",
        || async {
            let text = scrape(&proxy).await;
            (requests_counted(&text) == 8.0).then_some(())?;
            sample(
                &text,
                &format!(
                    "scalelab_health_checks_total{{result=\"pass\",server=\"{a_addr}\",upstream=\"h\"}}"
                ),
            )
            .is_some_and(|n| n >= 1.0)
            .then_some(text)
        },
    )
    .await;
    let expect = |series: String, value: f64| {
        assert_eq!(sample(&text, &series), Some(value), "{series}\n{text}");
    };
    expect(
        "scalelab_http_requests_total{code=\"200\",method=\"GET\",protocol=\"http/1.1\",route=\"api\"}".into(),
        4.0,
    );
    expect(
        "scalelab_http_requests_total{code=\"404\",method=\"GET\",protocol=\"http/1.1\",route=\"none\"}".into(),
        1.0,
    );
    expect(
        "scalelab_http_requests_total{code=\"401\",method=\"GET\",protocol=\"http/1.1\",route=\"secure\"}".into(),
        1.0,
    );
    expect(
        "scalelab_http_requests_total{code=\"200\",method=\"GET\",protocol=\"http/1.1\",route=\"c\"}".into(),
        2.0,
    );
    expect(
        "scalelab_http_request_duration_seconds_count{cache=\"none\",route=\"api\"}".into(),
        4.0,
    );
    expect(
        "scalelab_http_request_duration_seconds_count{cache=\"miss\",route=\"c\"}".into(),
        1.0,
    );
    expect(
        "scalelab_http_request_duration_seconds_count{cache=\"hit\",route=\"c\"}".into(),
        1.0,
    );
    expect(
        "scalelab_http_response_size_bytes_count{route=\"api\"}".into(),
        4.0,
    );
    // Four answers from `a`; the one pick of the refusing server failed to connect, took it
    // out of rotation, and was retried on `a`.
    expect(
        format!(
            "scalelab_upstream_requests_total{{code=\"200\",server=\"{a_addr}\",upstream=\"g\"}}"
        ),
        4.0,
    );
    expect(
        format!(
            "scalelab_upstream_response_duration_seconds_count{{server=\"{a_addr}\",upstream=\"g\"}}"
        ),
        4.0,
    );
    expect(
        format!(
            "scalelab_upstream_errors_total{{kind=\"connect_refused\",server=\"{dead_addr}\",upstream=\"g\"}}"
        ),
        1.0,
    );
    expect(
        "scalelab_upstream_retries_total{outcome=\"recovered\",upstream=\"g\"}".into(),
        1.0,
    );
    expect(
        format!(
            "scalelab_health_transitions_total{{server=\"{dead_addr}\",to=\"unhealthy\",upstream=\"g\"}}"
        ),
        1.0,
    );
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|rss| rss > 0.0));
    assert!(sample(&text, "process_start_time_seconds").is_some_and(|t| t > 1.6e9));
    scalelab_test_support::assert_promtool_clean("proxy", &text);

    // A reload that removes route `api` and the refusing server takes their series away;
    // the routes that stay keep counting from where they were.
    let mut kept = UpstreamSpec::new("g", "round_robin", &[&a], &[1]);
    kept.health = None;
    let next = TestConfig::same_ports(&config)
        .upstream(kept)
        .upstream(UpstreamSpec::new("h", "round_robin", &[&a], &[1]))
        .cache(&[("L1", 10)], 1)
        .auth_table(AUTH)
        .cached_route("c", "/c", "h", "key = \"{path}\"")
        .jwt_route("secure", "/secure", "h");
    proxy.write_config(&next.render());
    let (code, _) = proxy.admin_post("/admin/reload").await;
    assert_eq!(code, 200);
    assert_eq!(status("/c/obj").await, 200);
    let text = eventually(
        Duration::from_secs(5),
        "the request after the reload to be counted (api's 4 are gone: 1 + 1 + 3)",
        || async {
            let text = scrape(&proxy).await;
            (requests_counted(&text) == 5.0).then_some(text)
        },
    )
    .await;
    assert!(!text.contains("route=\"api\""), "{text}");
    assert!(!text.contains(&dead_addr), "{text}");
    assert_eq!(
        sample(
            &text,
            "scalelab_http_requests_total{code=\"200\",method=\"GET\",protocol=\"http/1.1\",route=\"c\"}"
        ),
        Some(3.0)
    );
    scalelab_test_support::assert_promtool_clean("proxy", &text);
}

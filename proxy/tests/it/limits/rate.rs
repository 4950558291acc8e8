//! Rate limits: the 429 answer and its headers, buckets per key and the shared bucket of
//! requests without one, the counter, and buckets kept across a reload.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// One backend behind a proxy whose `/data` route has `limits` (a TOML array).
async fn limited(limits: &str) -> (TestBackend, TestProxy, TestConfig) {
    let backend = TestBackend::start("a");
    let config = limited_config(&TestConfig::new(), &backend, limits);
    let proxy = start_healthy(&config, &backend).await;
    (backend, proxy, config)
}

/// The proxy of `config`, once `backend` takes traffic.
async fn start_healthy(config: &TestConfig, backend: &TestBackend) -> TestProxy {
    let proxy = TestProxy::start(config).await;
    eventually(
        Duration::from_secs(5),
        "the server to be healthy",
        || async { (proxy.server_healthy(backend.addr).await == Some(true)).then_some(()) },
    )
    .await;
    proxy
}

fn limited_config(ports: &TestConfig, backend: &TestBackend, limits: &str) -> TestConfig {
    TestConfig::same_ports(ports)
        .upstream(UpstreamSpec::new("g", "round_robin", &[backend], &[1]))
        .route_with("data", "/data", "g", &format!("rate_limits = {limits}"))
        .route("other", "/", "g")
}

async fn get(proxy: &TestProxy, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_burst_is_429_with_retry_after_and_ratelimit_headers() {
    let (backend, proxy, _) =
        limited(r#"[{ name = "per-client", rate = "1/min", burst = 3, key = "client_ip" }]"#).await;
    // Allowed answers carry the budget left: one request less each time, and the time until
    // the whole burst is back.
    for (left, reset) in [(2, 60), (1, 120), (0, 180)] {
        let allowed = get(&proxy, "/data", &[]).await;
        assert_eq!(allowed.status(), StatusCode::OK);
        assert_eq!(
            allowed.headers()["ratelimit-policy"],
            "\"per-client\";q=3;w=180"
        );
        let state = allowed.headers()["ratelimit"].to_str().unwrap().to_string();
        let (r, t) = state
            .strip_prefix("\"per-client\";r=")
            .and_then(|rest| rest.split_once(";t="))
            .unwrap();
        assert_eq!(r, left.to_string(), "{state}");
        let t: u64 = t.parse().unwrap();
        assert!((reset - 1..=reset).contains(&t), "{state}");
    }
    let refused = get(&proxy, "/data", &[]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = refused.headers().clone();
    // One request costs 60 s and three are charged: the next fits after about 60 s.
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (59..=60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(headers["ratelimit-policy"], "\"per-client\";q=3;w=180");
    assert_eq!(
        headers["ratelimit"].to_str().unwrap(),
        format!("\"per-client\";r=0;t={retry_after}")
    );
    assert_eq!(headers["cache-control"], "no-store");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "rate limited", "limit": "per-client", "retry_after_s": retry_after})
    );
    assert_eq!(
        backend.hits(),
        3,
        "a refused request never reaches the upstream"
    );
    // Other routes have their own (no) limits.
    assert_eq!(get(&proxy, "/other", &[]).await.status(), StatusCode::OK);
    let metrics = scrape(&proxy).await;
    assert_eq!(
        sample(
            &metrics,
            "scalelab_rate_limited_requests_total{limit=\"per-client\",route=\"data\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "scalelab_http_requests_total{code=\"429\",method=\"GET\",protocol=\"http/1.1\",route=\"data\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_value_has_its_bucket_and_requests_without_one_share_one() {
    let (_backend, proxy, _) =
        limited(r#"[{ name = "per-user", rate = "1/min", burst = 1, key = "header.X-User" }]"#)
            .await;
    let status = |response: reqwest::Response| response.status().as_u16();
    assert_eq!(
        status(get(&proxy, "/data", &[("x-user", "ann")]).await),
        200
    );
    assert_eq!(
        status(get(&proxy, "/data", &[("x-user", "ann")]).await),
        429
    );
    assert_eq!(
        status(get(&proxy, "/data", &[("x-user", "bob")]).await),
        200
    );
    assert_eq!(status(get(&proxy, "/data", &[]).await), 200);
    let shared = get(&proxy, "/data", &[("x-scalelab-explain", "1")]).await;
    assert_eq!(
        shared.status(),
        429,
        "the second request without the header"
    );
    let explain = shared.headers()["x-scalelab-explain"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        explain.contains("per-user(header.x-user=(no header.x-user: shared bucket)"),
        "{explain}"
    );
    let allowed = get(
        &proxy,
        "/data",
        &[("x-user", "cy"), ("x-scalelab-explain", "1")],
    )
    .await;
    let explain = allowed.headers()["x-scalelab-explain"].to_str().unwrap();
    assert!(
        explain.starts_with(
            "limit per-user(header.x-user=cy, 1/min/burst 1: allowed, remaining=0); strategy="
        ),
        "{explain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_behind_a_trusted_proxy_is_the_forwarded_client() {
    let backend = TestBackend::start("a");
    let config = limited_config(
        &TestConfig::new(),
        &backend,
        r#"[{ name = "per-client", rate = "1/min", burst = 1 }]"#,
    )
    .proxy_setting("trusted_proxies = [\"127.0.0.1\"]");
    let proxy = start_healthy(&config, &backend).await;
    let from = |client: &'static str| [("x-forwarded-for", client)];
    assert_eq!(get(&proxy, "/data", &from("192.0.2.1")).await.status(), 200);
    assert_eq!(get(&proxy, "/data", &from("192.0.2.1")).await.status(), 429);
    assert_eq!(get(&proxy, "/data", &from("192.0.2.2")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_the_rate_keeps_each_keys_state() {
    let (backend, proxy, config) =
        limited(r#"[{ name = "per-client", rate = "1/min", burst = 2 }]"#).await;
    for _ in 0..2 {
        assert_eq!(get(&proxy, "/data", &[]).await.status(), 200);
    }
    assert_eq!(get(&proxy, "/data", &[]).await.status(), 429);
    // A new rate for the same limit: the key's spent budget stays spent.
    let faster = limited_config(
        &config,
        &backend,
        r#"[{ name = "per-client", rate = "2/min", burst = 2 }]"#,
    );
    proxy.write_config(&faster.render());
    let (status, _) = proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200);
    let refused = get(&proxy, "/data", &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        "\"per-client\";q=2;w=60"
    );
    // A limit under another name starts from a full bucket.
    let renamed = limited_config(
        &config,
        &backend,
        r#"[{ name = "per-client-v2", rate = "2/min", burst = 2 }]"#,
    );
    proxy.write_config(&renamed.render());
    let (status, _) = proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200);
    assert_eq!(get(&proxy, "/data", &[]).await.status(), 200);
    // The removed limit's series leaves the exposition; the new one starts at zero.
    let metrics = scrape(&proxy).await;
    let series = |limit: &str| {
        format!("scalelab_rate_limited_requests_total{{limit=\"{limit}\",route=\"data\"}}")
    };
    assert_eq!(sample(&metrics, &series("per-client")), None, "{metrics}");
    assert_eq!(sample(&metrics, &series("per-client-v2")), Some(0.0));
}

/// The auth crate's shared table and token helpers, loaded once by the auth tests.
use crate::auth::vectors;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_keyed_limit_counts_each_verified_subject_and_only_after_auth() {
    let backend = TestBackend::start("a");
    let table = vectors::hs256_table();
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .auth_table(&vectors::resolve_table(&table))
        .route_with(
            "data",
            "/data",
            "g",
            "auth = \"jwt\"\nrate_limits = [{ name = \"per-user\", rate = \"1/min\", burst = 1, key = \"jwt.sub\" }]",
        );
    let proxy = start_healthy(&config, &backend).await;
    let settings = vectors::settings(&table);
    let bearer = |sub: &str| {
        let token = scalelab_auth::mint(&settings, sub, Duration::from_secs(60)).unwrap();
        format!("Bearer {token}")
    };
    let (alice, bob) = (bearer("alice"), bearer("bob"));
    // Refused tokens are answered 401 and charge no bucket.
    for _ in 0..3 {
        assert_eq!(get(&proxy, "/data", &[]).await.status(), 401);
    }
    assert_eq!(
        get(&proxy, "/data", &[("authorization", &alice)])
            .await
            .status(),
        200
    );
    let refused = get(&proxy, "/data", &[("authorization", &alice)]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        "\"per-user\";q=1;w=60"
    );
    assert_eq!(
        get(&proxy, "/data", &[("authorization", &bob)])
            .await
            .status(),
        200
    );
    assert_eq!(backend.hits(), 2);
}

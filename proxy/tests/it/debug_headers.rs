//! `[proxy] debug_headers`: the diagnostic headers (`X-Upstream-Server`, `X-Strategy`,
//! `X-Config-Generation`, `X-Scalelab-Explain`) are off by default, on for everyone with
//! "on", and under "trusted" only for the allow list or the admin token; `X-Request-Id`,
//! `X-Cache` and `Cache-Status` are always sent.

use crate::harness::*;

const DIAGNOSTIC: [&str; 4] = [
    "x-upstream-server",
    "x-strategy",
    "x-config-generation",
    "x-scalelab-explain",
];
const TOKEN: &str = "debug-test-token-0123456789abcdef";

/// A proxy with one cached route and one plain route on `backend`, `debug_headers` as given
/// and `extra` lines in `[proxy]` and beside it.
async fn start(
    backend: &TestBackend,
    mode: Option<&'static str>,
    proxy_extra: &str,
    tables: &str,
) -> TestProxy {
    let config = TestConfig::new()
        .debug_headers(mode)
        .proxy_setting(proxy_extra)
        .upstream(UpstreamSpec::new("g", "round_robin", &[backend], &[1]))
        .cache(&[("L1", 100)], 2)
        .tables(tables)
        .cached_route("c", "/c", "g", "key = \"{path}\"")
        .route("plain", "/", "g");
    TestProxy::start(&config).await
}

/// The diagnostic headers present on the response to `GET path` with `headers`, checking the
/// always-on ones on the way.
async fn diagnostic_seen(proxy: &TestProxy, path: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let mut request = proxy.http().get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"), "{path}");
    DIAGNOSTIC
        .iter()
        .filter(|name| response.headers().contains_key(**name))
        .map(|name| (*name).to_string())
        .collect()
}

fn all() -> Vec<String> {
    DIAGNOSTIC.iter().map(|name| (*name).to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_sends_none_and_keeps_request_id_and_cache_status() {
    let backend = TestBackend::start("origin");
    let proxy = start(&backend, None, "", "").await;
    let explain = [("x-scalelab-explain", "1")];
    assert_eq!(
        diagnostic_seen(&proxy, "/plain", &explain).await,
        Vec::<String>::new()
    );
    // The proxy's own answers (here the 400 of an unknown strategy) carry none either.
    let refused = proxy
        .http()
        .get(proxy.url("/plain?strategy=fastest"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.headers().contains_key("x-request-id"));
    assert!(!refused.headers().contains_key("x-config-generation"));
    // A miss, then a hit from the memory tier: the cache's headers stay, the diagnostic go.
    for expected in ["MISS", "HIT"] {
        let response = proxy
            .http()
            .get(proxy.url("/c/one?cc=max-age=60"))
            .header("x-scalelab-explain", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-cache"], expected);
        assert!(
            response.headers().contains_key("cache-status"),
            "{expected}"
        );
        for name in DIAGNOSTIC {
            assert!(
                !response.headers().contains_key(name),
                "{name} on a {expected}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sends_every_diagnostic_header() {
    let backend = TestBackend::start("origin");
    let proxy = start(&backend, Some("on"), "", "").await;
    let explain = [("x-scalelab-explain", "1")];
    assert_eq!(diagnostic_seen(&proxy, "/plain", &explain).await, all());
    // Without asking, no explanation; the other three stay.
    assert_eq!(
        diagnostic_seen(&proxy, "/plain", &[]).await,
        all()[..3].to_vec()
    );
    let refused = proxy
        .http()
        .get(proxy.url("/plain?strategy=fastest"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["x-config-generation"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_shows_them_to_the_allow_list_only() {
    let backend = TestBackend::start("origin");
    let local = start(
        &backend,
        Some("trusted"),
        "debug_trusted = [\"127.0.0.1/32\"]",
        "",
    )
    .await;
    let explain = [("x-scalelab-explain", "1")];
    assert_eq!(diagnostic_seen(&local, "/plain", &explain).await, all());

    // The test client is 127.0.0.1, outside 10.0.0.0/8; and without trusted_proxies its
    // X-Forwarded-For is not believed.
    let elsewhere = start(
        &backend,
        Some("trusted"),
        "debug_trusted = [\"10.0.0.0/8\"]",
        "",
    )
    .await;
    assert_eq!(
        diagnostic_seen(&elsewhere, "/plain", &explain).await,
        Vec::<String>::new()
    );
    let spoofed = [("x-scalelab-explain", "1"), ("x-forwarded-for", "10.1.2.3")];
    assert_eq!(
        diagnostic_seen(&elsewhere, "/plain", &spoofed).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_shows_them_to_requests_with_the_admin_token_and_never_forwards_it() {
    let backend = TestBackend::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let proxy = start(
        &backend,
        Some("trusted"),
        "debug_trusted = [\"10.0.0.0/8\"]",
        &format!(
            "[admin]\ntoken = {{ file = {:?} }}\n",
            token_file.display().to_string()
        ),
    )
    .await;
    let explain = [("x-scalelab-explain", "1")];
    assert_eq!(
        diagnostic_seen(&proxy, "/plain", &explain).await,
        Vec::<String>::new()
    );
    let wrong = [
        ("x-scalelab-explain", "1"),
        (
            "x-scalelab-debug-token",
            "debug-test-token-0123456789abcdeX",
        ),
    ];
    assert_eq!(
        diagnostic_seen(&proxy, "/plain", &wrong).await,
        Vec::<String>::new()
    );
    let right = [
        ("x-scalelab-explain", "1"),
        ("x-scalelab-debug-token", TOKEN),
    ];
    assert_eq!(diagnostic_seen(&proxy, "/plain", &right).await, all());
    assert_eq!(backend.last_header("x-scalelab-debug-token"), None);
    assert_eq!(backend.last_header("x-scalelab-explain"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_turns_them_on_and_off_live() {
    let backend = TestBackend::start("origin");
    let spec = || UpstreamSpec::new("g", "round_robin", &[&backend], &[1]);
    let off = TestConfig::new()
        .debug_headers(Some("off"))
        .upstream(spec())
        .route("plain", "/", "g");
    let proxy = TestProxy::start(&off).await;
    assert_eq!(
        diagnostic_seen(&proxy, "/", &[]).await,
        Vec::<String>::new()
    );
    let on = TestConfig::same_ports(&off)
        .debug_headers(Some("on"))
        .upstream(spec())
        .route("plain", "/", "g");
    proxy.write_config(&on.render());
    eventually(
        std::time::Duration::from_secs(10),
        "the reload to turn the headers on",
        || async { (diagnostic_seen(&proxy, "/", &[]).await == all()[..3]).then_some(()) },
    )
    .await;
    proxy.write_config(&off.render());
    eventually(
        std::time::Duration::from_secs(10),
        "the reload to turn them off again",
        || async {
            diagnostic_seen(&proxy, "/", &[])
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
}

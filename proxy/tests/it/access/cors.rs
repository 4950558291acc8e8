//! CORS at the header level (the browser test is `browser`): the preflight answered by the
//! proxy, the exact origin echoed with credentials, `Vary: Origin`, a disallowed origin left
//! without CORS headers and counted.

use super::refused;
use crate::harness::*;

pub const POLICY: &str = "origins = [\"https://app.example\", \"*.example.com\"], methods = [\"GET\", \"POST\"], headers = [\"X-Custom\"], expose_headers = [\"X-Request-Id\"], credentials = true, max_age = \"10m\"";

async fn cors_headers(client: Client) {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .client(client)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route_with("api", "/api", "g", &format!("cors = {{ {POLICY} }}"));
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let before = refused(&proxy, "cors").await;
    let hits = backend.hits();

    let preflight = |origin: &str, method: &str, headers: &str| {
        http.request(reqwest::Method::OPTIONS, proxy.url("/api/items"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", method)
            .header("Access-Control-Request-Headers", headers)
    };
    let response = preflight("https://app.example", "POST", "x-custom")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), client.version());
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-allow-methods"], "GET, POST");
    assert_eq!(h["access-control-allow-headers"], "x-custom");
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["vary"], "Origin");
    // A wildcard subdomain, echoed exactly.
    let response = preflight("https://shop.example.com", "GET", "x-custom")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert_eq!(backend.hits(), hits, "preflights never reach the upstream");

    // Refused preflights: another origin, a method or a header the policy does not allow.
    for (origin, method, headers) in [
        ("https://evil.example", "POST", "x-custom"),
        ("https://app.example", "DELETE", "x-custom"),
        ("https://app.example", "GET", "x-secret"),
    ] {
        let response = preflight(origin, method, headers).send().await.unwrap();
        assert_eq!(response.status(), 403, "{origin} {method} {headers}");
        assert!(response
            .headers()
            .get("access-control-allow-origin")
            .is_none());
        assert_eq!(response.headers()["vary"], "Origin");
    }
    assert_eq!(backend.hits(), hits);

    // Actual requests: the allowed origin gets its headers, another origin none (and is
    // counted), a request without Origin is not a CORS request.
    let response = http
        .get(proxy.url("/api/items"))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-expose-headers"], "x-request-id");
    assert_eq!(h["vary"], "Origin");
    let response = http
        .get(proxy.url("/api/items"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert!(response
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let response = http.get(proxy.url("/api/items")).send().await.unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert_eq!(response.headers()["vary"], "Origin");
    assert_eq!(refused(&proxy, "cors").await - before, 4.0);
}

over_each_client!(cors_headers);

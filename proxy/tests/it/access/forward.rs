//! Forward auth: a 2xx from the auth service lets the request through with the copied
//! response headers (client copies removed); any other answer reaches the client as given
//! (status, `WWW-Authenticate`, `Location`, body); a dead service is 503 or `on_error`;
//! decisions are cached per credentials; the outcomes and latency are metrics.

use super::{refused, RouterServer};
use crate::harness::*;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The auth service: `Bearer good` is alice, `Bearer login` is sent to a login page, anything
/// else is 401. It records how often it was asked and the last `X-Forwarded-Uri`.
struct AuthService {
    server: RouterServer,
    asked: Arc<AtomicUsize>,
    last_uri: Arc<Mutex<Option<String>>>,
}

fn auth_service() -> AuthService {
    let asked = Arc::new(AtomicUsize::new(0));
    let last_uri = Arc::new(Mutex::new(None));
    let (count, uri) = (asked.clone(), last_uri.clone());
    let router = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route(
            "/verify",
            axum::routing::get(move |headers: HeaderMap| {
                let (count, uri) = (count.clone(), uri.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    *uri.lock().unwrap() = headers
                        .get("x-forwarded-uri")
                        .map(|v| v.to_str().unwrap().to_string());
                    match headers.get("authorization").map(|v| v.to_str().unwrap()) {
                        Some("Bearer good") => (
                            StatusCode::OK,
                            [("x-user", "alice"), ("x-tenant", "acme"), ("x-other", "no")],
                            "",
                        )
                            .into_response(),
                        Some("Bearer login") => (
                            StatusCode::FOUND,
                            [("location", "https://login.example/?next=/app")],
                            "",
                        )
                            .into_response(),
                        _ => (
                            StatusCode::UNAUTHORIZED,
                            [
                                ("www-authenticate", "Bearer realm=\"authsvc\""),
                                ("content-type", "text/plain"),
                            ],
                            "nope",
                        )
                            .into_response(),
                    }
                }
            }),
        );
    AuthService {
        server: RouterServer::start(router),
        asked,
        last_uri,
    }
}

async fn forward_auth(client: Client) {
    let backend = TestBackend::start("origin");
    let auth = auth_service();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let forward = |upstream: &str, extra: &str| {
        format!(
            "auth = \"forward\"\nforward = {{ upstream = \"{upstream}\", path = \"/verify\", copy_request_headers = [\"Authorization\"], copy_response_headers = [\"X-User\", \"X-Tenant\"], timeout = \"500ms\"{extra} }}"
        )
    };
    let mut dead_spec = UpstreamSpec::new("deadsvc", "round_robin", &[], &[]);
    dead_spec.servers = vec![(dead_addr, 1)];
    dead_spec.health = None;
    let mut auth_spec = UpstreamSpec::new("authsvc", "round_robin", &[], &[]);
    auth_spec.servers = vec![(auth.server.addr, 1)];
    let config = TestConfig::new()
        .client(client)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .upstream(auth_spec)
        .upstream(dead_spec)
        .route_with("app", "/app", "g", &forward("authsvc", ""))
        .route_with(
            "cached",
            "/cached",
            "g",
            &forward("authsvc", ", cache = \"30s\""),
        )
        .route_with("down", "/down", "g", &forward("deadsvc", ""))
        .route_with(
            "lenient",
            "/lenient",
            "g",
            &forward("deadsvc", ", on_error = \"allow\""),
        );
    let proxy = TestProxy::start(&config).await;
    // The auth service's redirect must reach the test as it was given, not be followed.
    let http = {
        let builder = scalelab_test_support::client_builder()
            .timeout(patient(std::time::Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none());
        match client {
            Client::Http1 => builder.http1_only(),
            Client::H2c => builder.http2_prior_knowledge(),
        }
        .build()
        .unwrap()
    };
    let before = refused(&proxy, "forward").await;

    let response = http
        .get(proxy.url("/app/page?q=1"))
        .header("Authorization", "Bearer good")
        .header("X-User", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), client.version());
    assert_eq!(response.status(), 200);
    assert_eq!(backend.last_header("x-user").as_deref(), Some("alice"));
    assert_eq!(backend.last_header("x-tenant").as_deref(), Some("acme"));
    assert_eq!(
        backend.last_header("x-other"),
        None,
        "only the named headers are copied"
    );
    assert_eq!(
        auth.last_uri.lock().unwrap().as_deref(),
        Some("/app/page?q=1")
    );

    let hits = backend.hits();
    let response = http
        .get(proxy.url("/app/page"))
        .header("Authorization", "Bearer bad")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"authsvc\""
    );
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.text().await.unwrap(), "nope");
    let response = http
        .get(proxy.url("/app/page"))
        .header("Authorization", "Bearer login")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "https://login.example/?next=/app"
    );
    assert_eq!(
        backend.hits(),
        hits,
        "refused requests never reach the upstream"
    );

    // A cached decision: the service is asked once for two requests with the same credentials.
    let asked = auth.asked.load(Ordering::SeqCst);
    for _ in 0..2 {
        let response = http
            .get(proxy.url("/cached/x"))
            .header("Authorization", "Bearer good")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(backend.last_header("x-user").as_deref(), Some("alice"));
    }
    assert_eq!(auth.asked.load(Ordering::SeqCst) - asked, 1);

    // The service cannot be reached: 503, or through with on_error = "allow" (and no identity).
    let response = http
        .get(proxy.url("/down/x"))
        .header("Authorization", "Bearer good")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "forward");
    let response = http
        .get(proxy.url("/lenient/x"))
        .header("Authorization", "Bearer good")
        .header("X-User", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(backend.last_header("x-user"), None);

    assert_eq!(refused(&proxy, "forward").await - before, 3.0);
    let text = scrape(&proxy).await;
    for (outcome, expected) in [
        ("allowed", 2.0),
        ("denied", 2.0),
        ("error", 2.0),
        ("cached", 1.0),
    ] {
        let series = format!("scalelab_forward_auth_total{{outcome=\"{outcome}\"}}");
        assert_eq!(sample(&text, &series), Some(expected), "{series}");
    }
    // Every question asked (not the cached answer) is timed.
    assert_eq!(
        sample(&text, "scalelab_forward_auth_duration_seconds_count"),
        Some(6.0)
    );
}

over_each_client!(forward_auth);

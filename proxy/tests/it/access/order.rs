//! The gates' order: IP lists, then the CORS preflight, then auth, then rate limits, then the
//! cache; a client a gate refuses is never served a cached object.

use crate::harness::*;
use serde_json::Value;

async fn order_and_cache(client: Client) {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .client(client)
        .proxy_setting("trusted_proxies = [\"127.0.0.1\"]")
        .auth_table("algorithms = [\"HS256\"]\nsecret = \"access-order-test-secret-0123456789abcdef\"")
        .cache(&[("l1", 100)], 2)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .raw_route(
            "[[routes]]\nname = \"doc\"\npath = \"/doc\"\nupstream = \"g\"\nallow = [\"10.0.0.0/8\"]\ncache = { default_ttl = \"60s\" }\n",
        )
        .raw_route(&format!(
            "[[routes]]\nname = \"guarded\"\npath = \"/guarded\"\nupstream = \"g\"\nallow = [\"10.0.0.0/8\"]\nauth = \"jwt\"\ncors = {{ {} }}\nrate_limits = [{{ name = \"one\", rate = \"1/min\", burst = 1, key = \"client_ip\" }}]\n",
            super::cors::POLICY
        ));
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let get = |path: &str, from: &str| {
        http.get(proxy.url(path))
            .header("X-Forwarded-For", from.to_string())
    };

    // The cache holds the object for allowed clients...
    let first = get("/doc/a?cc=public,max-age=60", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = get("/doc/a?cc=public,max-age=60", "10.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-cache"], "HIT");
    let hits = backend.hits();
    // ...and a refused client gets the 403, never the stored object.
    let refused = get("/doc/a?cc=public,max-age=60", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("x-cache").is_none());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "ip");
    assert_eq!(backend.hits(), hits);

    let preflight = |from: &str| {
        http.request(reqwest::Method::OPTIONS, proxy.url("/guarded/x"))
            .header("X-Forwarded-For", from.to_string())
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "GET")
    };
    // IP before the preflight: a denied client's preflight is refused for its address.
    let response = preflight("198.51.100.1").send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().await.unwrap()["reason"], "ip");
    // The preflight before auth: browsers send it without credentials.
    let response = preflight("10.0.0.1").send().await.unwrap();
    assert_eq!(response.status(), 204);
    // Auth before rate limits: refused tokens do not spend the client's one request a minute.
    for _ in 0..3 {
        let response = get("/guarded/x", "10.0.0.1").send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "u1", "exp": 4_102_444_800u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"access-order-test-secret-0123456789abcdef"),
    )
    .unwrap();
    let response = get("/guarded/x", "10.0.0.1")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = get("/guarded/x", "10.0.0.1")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
}

over_each_client!(order_and_cache);

/// `claims_to_headers` sets the named headers from the verified token and removes the
/// client's own copies first, so an identity header cannot be forged.
async fn claims_to_headers(client: Client) {
    let backend = TestBackend::start("origin");
    let secret = "claims-test-secret-0123456789abcdef-xyz";
    let config = TestConfig::new()
        .client(client)
        .auth_table(&format!("algorithms = [\"HS256\"]\nsecret = \"{secret}\""))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route_with(
            "me",
            "/me",
            "g",
            "auth = \"jwt\"\nclaims_to_headers = { sub = \"X-User\", tenant = \"X-Tenant\", admin = \"X-Admin\" }",
        );
    let proxy = TestProxy::start(&config).await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "u1", "tenant": "acme", "exp": 4_102_444_800u64}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let response = proxy
        .http()
        .get(proxy.url("/me"))
        .bearer_auth(&token)
        .header("X-User", "root")
        .header("X-Tenant", "other")
        .header("X-Admin", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = backend.state.last_headers.lock().unwrap().clone().unwrap();
    let all = |name: &str| -> Vec<String> {
        seen.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(all("x-user"), vec!["u1"]);
    assert_eq!(all("x-tenant"), vec!["acme"]);
    // A claim the token lacks: the client's copy is still removed, none is set.
    assert!(all("x-admin").is_empty());
}

over_each_client!(claims_to_headers);

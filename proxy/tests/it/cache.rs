//! The response cache through the real proxy: hits and expiry, controls, tiers, invalidation,
//! coalescing, stale serving, what is never stored, and connection hygiene.

use crate::harness::*;
use serde_json::json;
use std::time::{Duration, Instant};

const TIERS: &[(&str, usize)] = &[("L1", 100), ("L2", 100), ("L3", 100)];

async fn setup(route_cache: &str, tiers: &[(&str, usize)]) -> (TestBackend, TestProxy) {
    setup_over(route_cache, tiers, Client::Http1).await
}

/// As `setup`, with the tests speaking `client` to the proxy.
async fn setup_over(
    route_cache: &str,
    tiers: &[(&str, usize)],
    client: Client,
) -> (TestBackend, TestProxy) {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .cache(tiers, 2)
        .cached_route("c", "/c", "g", route_cache)
        .route("plain", "/", "g")
        .client(client);
    let proxy = TestProxy::start(&config).await;
    (backend, proxy)
}

struct Seen {
    status: u16,
    x_cache: String,
    tier: Option<String>,
    cache_status: String,
    age: Option<u64>,
    hit_number: u64,
}

async fn get(proxy: &TestProxy, path: &str) -> Seen {
    get_with(proxy, path, &[]).await
}

async fn get_with(proxy: &TestProxy, path: &str, headers: &[(&str, &str)]) -> Seen {
    let mut request = proxy.http().get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.version(), proxy.client.version());
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let seen = Seen {
        status: response.status().as_u16(),
        x_cache: header("x-cache").unwrap_or_default(),
        tier: header("x-cache-tier"),
        cache_status: header("cache-status").unwrap_or_default(),
        age: header("age").and_then(|a| a.parse().ok()),
        hit_number: 0,
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    Seen {
        hit_number: body["hit"].as_u64().unwrap_or(0),
        ..seen
    }
}

over_each_client!(
    miss_then_hit_with_age_then_expiry_after_max_age,
    two_hundred_concurrent_cold_requests_reach_the_origin_once,
);

async fn miss_then_hit_with_age_then_expiry_after_max_age(client: Client) {
    let (backend, proxy) = setup_over(
        "key = \"{path}?{query}\", default_ttl = \"300s\"",
        TIERS,
        client,
    )
    .await;
    let first = get(&proxy, "/c/x?cc=max-age=2").await;
    assert_eq!((first.status, first.x_cache.as_str()), (200, "MISS"));
    assert_eq!(first.cache_status, "scalelab; fwd=miss; stored; ttl=2");
    let stored_at = Instant::now();
    let second = get(&proxy, "/c/x?cc=max-age=2").await;
    assert_eq!(second.x_cache, "HIT");
    assert_eq!(second.tier.as_deref(), Some("L3"));
    assert_eq!(second.cache_status, "scalelab; hit; detail=L3");
    assert!(second.age.unwrap() <= 1);
    assert_eq!(backend.hits(), 1);
    let third = eventually(Duration::from_secs(5), "the object to expire", || async {
        let seen = get(&proxy, "/c/x?cc=max-age=2").await;
        (seen.x_cache == "MISS").then_some(seen)
    })
    .await;
    // A lower bound tied to max-age=2, which a slow machine cannot break: not scaled.
    assert!(
        stored_at.elapsed() >= Duration::from_millis(1900),
        "expired early"
    );
    assert_eq!(third.hit_number, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ttl_wins_and_bypass_skips_lookup_but_stores() {
    let (backend, proxy) = setup("key = \"{path}\", default_ttl = \"300s\"", TIERS).await;
    let response = client()
        .get(proxy.url("/c/t?cache_ttl=7&cc=max-age=100"))
        .header("X-Scalelab-Explain", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["cache-status"],
        "scalelab; fwd=miss; stored; ttl=7"
    );
    let explained = client()
        .get(proxy.url("/c/t"))
        .header("X-Scalelab-Explain", "1")
        .send()
        .await
        .unwrap();
    let explain = explained.headers()["x-scalelab-explain"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(explain.contains("ttl=7s from cache_ttl"), "{explain}");
    assert!(explain.contains("key=\"/c/t\""), "{explain}");

    let bypass = get(&proxy, "/c/t?bypass_cache=true").await;
    assert_eq!(bypass.x_cache, "BYPASS");
    assert!(
        bypass
            .cache_status
            .starts_with("scalelab; fwd=bypass; stored"),
        "{}",
        bypass.cache_status
    );
    assert_eq!(backend.hits(), 2);
    // The bypassing request's fresh answer replaced the stored one.
    let after = get(&proxy, "/c/t").await;
    assert_eq!((after.x_cache.as_str(), after.hit_number), ("HIT", 2));

    let revalidate = get_with(&proxy, "/c/t", &[("Cache-Control", "no-cache")]).await;
    assert_eq!(revalidate.x_cache, "MISS");
    assert!(revalidate
        .cache_status
        .starts_with("scalelab; fwd=request; stored"));
    assert_eq!(backend.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_climbs_tiers_after_configured_hits() {
    let (_backend, proxy) = setup("key = \"{path}\"", TIERS).await;
    get(&proxy, "/c/p").await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(get(&proxy, "/c/p").await.tier.unwrap());
    }
    // Hits 1-2 in L3 (the second promotes to L2), 3-4 in L2 (the fourth promotes), then L1.
    assert_eq!(seen, vec!["L3", "L2", "L2", "L1", "L1", "L1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_eviction_in_the_last_tier() {
    let (backend, proxy) = setup("key = \"{path}\"", &[("L1", 10), ("L2", 2)]).await;
    for path in ["/c/1", "/c/2", "/c/3"] {
        assert_eq!(get(&proxy, path).await.x_cache, "MISS");
    }
    assert_eq!(get(&proxy, "/c/3").await.x_cache, "HIT");
    assert_eq!(get(&proxy, "/c/2").await.x_cache, "HIT");
    assert_eq!(
        get(&proxy, "/c/1").await.x_cache,
        "MISS",
        "the oldest object was evicted"
    );
    assert_eq!(backend.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_by_key_prefix_tag_and_soft_purge() {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .cache(TIERS, 2)
        .cached_route(
            "c",
            "/c",
            "g",
            "key = \"{path}\", stale_while_revalidate = \"30s\"",
        )
        .route("inv", "/cache/invalidate", "g");
    let proxy = TestProxy::start(&config).await;
    for path in ["/c/a", "/c/b?sk=red", "/c/bb?sk=red%20blue", "/c/d"] {
        assert_eq!(get(&proxy, path).await.x_cache, "MISS");
    }
    let post = |body: serde_json::Value| {
        let url = proxy.url("/cache/invalidate");
        async move {
            let response = client().post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = post(serde_json::json!({"key": "/c/a"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"status": "Cache invalidated", "key": "/c/a", "removed": 1, "soft": false})
    );
    assert_eq!(get(&proxy, "/c/a").await.x_cache, "MISS");
    let (_, body) = post(serde_json::json!({"tag": "red"})).await;
    assert_eq!(body["removed"], 2);
    let (_, body) = post(serde_json::json!({"prefix": "/c/"})).await;
    assert_eq!(body["removed"], 2, "/c/a (re-stored) and /c/d remain");

    // Soft purge: the object is served stale while exactly one request refreshes it.
    assert_eq!(get(&proxy, "/c/s").await.x_cache, "MISS");
    let hits = backend.hits();
    let (_, body) = post(serde_json::json!({"key": "/c/s", "soft": true})).await;
    assert_eq!(body["removed"], 1);
    let stale = get(&proxy, "/c/s").await;
    assert_eq!(stale.x_cache, "STALE");
    eventually(Duration::from_secs(5), "the background refresh", || async {
        let seen = get(&proxy, "/c/s").await;
        (seen.x_cache == "HIT" && seen.hit_number == hits as u64 + 1).then_some(())
    })
    .await;
    assert_eq!(backend.hits(), hits + 1, "one refresh, no stampede");

    for bad in [
        serde_json::json!({}),
        serde_json::json!({"key": 1}),
        serde_json::json!({"key": "a", "tag": "b"}),
    ] {
        let (status, body) = post(bad).await;
        assert_eq!(status, 400);
        assert!(body["error"].as_str().unwrap().contains("exactly one"));
    }
    let response = client()
        .post(proxy.url("/cache/invalidate"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

async fn two_hundred_concurrent_cold_requests_reach_the_origin_once(client: Client) {
    let (backend, proxy) = setup_over("key = \"{path}\"", TIERS, client).await;
    backend.set_latency(300);
    let http = proxy.http();
    let url = proxy.url("/c/cold");
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let response = http.get(url).send().await.unwrap();
                (response.status().as_u16(), response.version())
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), (200, client.version()));
    }
    assert_eq!(backend.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_does_not_block_waiters() {
    let (backend, proxy) = setup("key = \"{path}\"", TIERS).await;
    // The origin's latency, the leader's timeout and the waiter's bound are scaled together, and
    // the harness scales the 5 s lock timeout too, so the waiter's bound stays under the lock
    // timeout and the leader still gives up long before the origin answers.
    let latency = patient(Duration::from_millis(800));
    backend.set_latency(u64::try_from(latency.as_millis()).unwrap());
    let impatient = client_builder()
        .timeout(patient(Duration::from_millis(200)))
        .build()
        .unwrap();
    let leader_url = proxy.url("/c/lead");
    let leader = tokio::spawn(async move { impatient.get(leader_url).send().await.is_err() });
    eventually(
        Duration::from_secs(2),
        "the leader to reach the origin",
        || async { (backend.hits() == 1).then_some(()) },
    )
    .await;
    let started = Instant::now();
    let waiter = get(&proxy, "/c/lead").await;
    assert!(leader.await.unwrap(), "the leader's client gave up");
    assert_eq!(waiter.status, 200);
    // Well under the lock timeout: the waiter woke when the leader was cancelled.
    let waiter_bound = patient(Duration::from_secs(3));
    assert!(waiter_bound < cache_lock_timeout());
    assert!(
        started.elapsed() < waiter_bound,
        "waiter took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_and_stale_if_error_with_the_origin_down() {
    let (mut backend, proxy) = setup(
        "key = \"{path}\", stale_while_revalidate = \"1s\", stale_if_error = \"60s\"",
        TIERS,
    )
    .await;
    assert_eq!(get(&proxy, "/c/s?cc=max-age=1").await.x_cache, "MISS");
    let stale = eventually(Duration::from_secs(4), "the object to go stale", || async {
        let seen = get(&proxy, "/c/s?cc=max-age=1").await;
        (seen.x_cache != "HIT").then_some(seen)
    })
    .await;
    assert_eq!(stale.x_cache, "STALE");
    assert!(
        stale
            .cache_status
            .starts_with("scalelab; hit; fwd=stale; detail=L"),
        "{}",
        stale.cache_status
    );
    eventually(Duration::from_secs(3), "the refreshed object", || async {
        let seen = get(&proxy, "/c/s?cc=max-age=1").await;
        (seen.x_cache == "HIT" && seen.hit_number == 2).then_some(())
    })
    .await;

    // Origin answers 5xx: the stale object is served instead.
    assert_eq!(get(&proxy, "/c/e?cc=max-age=1").await.x_cache, "MISS");
    let after_error = eventually(
        Duration::from_secs(6),
        "stale-if-error on a 5xx",
        || async {
            let seen = get(&proxy, "/c/e?cc=max-age=1&status=500").await;
            (seen.x_cache == "STALE").then_some(seen)
        },
    )
    .await;
    assert_eq!(after_error.status, 200);

    // Origin down: still the stale object.
    backend.kill();
    let down = get(&proxy, "/c/e?cc=max-age=1").await;
    assert_eq!((down.status, down.x_cache.as_str()), (200, "STALE"));
    // Without a stored object the client gets the error: 502 when the refused connection is
    // what it learns, 503 when the server was already taken out of rotation.
    let status = get(&proxy, "/c/never").await.status;
    assert!(matches!(status, 502 | 503), "got {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_cached_private_no_store_set_cookie_and_authorization() {
    let (backend, proxy) = setup("key = \"{path}?{query}\"", TIERS).await;
    for (path, detail) in [
        ("/c/n?cc=private", "private"),
        ("/c/n?cc=no-store", "no-store"),
        ("/c/n?cookie=1", "set-cookie"),
        ("/c/n?status=500", "status"),
    ] {
        let first = get(&proxy, path).await;
        assert_eq!(
            first.cache_status,
            format!("scalelab; fwd=miss; detail={detail}")
        );
        assert_eq!(
            get(&proxy, path).await.x_cache,
            "MISS",
            "{path} must not be stored"
        );
    }
    // Without a proxy-verified token, a request carrying Authorization is never stored.
    let auth = [("Authorization", "Bearer x")];
    let first = get_with(&proxy, "/c/n?cc=public", &auth).await;
    assert_eq!(
        first.cache_status,
        "scalelab; fwd=miss; detail=authorization-not-verified-by-proxy"
    );
    assert_eq!(
        get_with(&proxy, "/c/n?cc=public", &auth).await.x_cache,
        "MISS"
    );
    assert_eq!(backend.hits(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_variant_of_a_vary_response_is_stored_and_served_to_its_own_clients() {
    let (backend, proxy) = setup("key = \"{path}?{query}\"", TIERS).await;
    let path = "/c/v?vary=Accept-Language";
    let english = [("Accept-Language", "en")];
    let french = [("Accept-Language", "fr")];
    let first = get_with(&proxy, path, &english).await;
    assert_eq!((first.x_cache.as_str(), first.hit_number), ("MISS", 1));
    // A different value is a different object, not a hit on the English one.
    let second = get_with(&proxy, path, &french).await;
    assert_eq!((second.x_cache.as_str(), second.hit_number), ("MISS", 2));
    let third = get_with(&proxy, path, &[]).await;
    assert_eq!((third.x_cache.as_str(), third.hit_number), ("MISS", 3));
    for _ in 0..2 {
        for (headers, origin_hit) in [(&english[..], 1), (&french[..], 2), (&[][..], 3)] {
            let seen = get_with(&proxy, path, headers).await;
            assert_eq!(
                (seen.x_cache.as_str(), seen.hit_number),
                ("HIT", origin_hit),
                "{headers:?}"
            );
        }
    }
    assert_eq!(backend.hits(), 3);
    let key = "%2Fc%2Fv%3Fvary%3DAccept-Language";
    let report = proxy.admin_get(&format!("/admin/cache?key={key}")).await;
    assert_eq!(report["key"], "/c/v?vary=Accept-Language", "{report}");
    assert!(
        report["variant"]
            .as_str()
            .is_some_and(|v| v.starts_with("accept-language")),
        "{report}"
    );
    // Deleting the key removes all three variants.
    let (status, deleted) = proxy.admin_delete(&format!("/admin/cache?key={key}")).await;
    assert_eq!((status, &deleted["removed"]), (200, &json!(3)), "{deleted}");
    assert_eq!(get_with(&proxy, path, &french).await.x_cache, "MISS");
}

/// A GET with extra request headers: status, the named response headers, the origin hit number
/// in the body (0 for no body) and the body's length.
async fn conditional_get(
    proxy: &TestProxy,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value, u64, usize) {
    let mut request = client().get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let mut seen = serde_json::Map::new();
    for name in [
        "x-cache",
        "cache-status",
        "etag",
        "x-origin-hit",
        "content-type",
    ] {
        if let Some(value) = response.headers().get(name) {
            seen.insert(name.into(), value.to_str().unwrap().into());
        }
    }
    let body = response.bytes().await.unwrap();
    let hit = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b["hit"].as_u64())
        .unwrap_or(0);
    (status, serde_json::Value::Object(seen), hit, body.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_requests_get_304_from_the_cache_and_an_origin_304_freshens() {
    let (backend, proxy) = setup("key = \"{path}?{query}\"", TIERS).await;
    let path = "/c/e?etag=v1&cc=max-age=60";
    let (status, headers, hit, _) = conditional_get(&proxy, path, &[]).await;
    assert_eq!((status, hit), (200, 1));
    assert_eq!(headers["etag"], "\"v1\"");

    // A client that has the stored representation gets a bodiless 304 from the cache.
    let (status, headers, _, length) =
        conditional_get(&proxy, path, &[("If-None-Match", "\"v1\"")]).await;
    assert_eq!((status, length), (304, 0), "{headers}");
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(headers["etag"], "\"v1\"");
    assert!(headers.get("content-type").is_none(), "{headers}");
    // One that has another gets the stored 200.
    let (status, headers, hit, _) =
        conditional_get(&proxy, path, &[("If-None-Match", "\"v0\"")]).await;
    assert_eq!((status, hit, &headers["x-cache"]), (200, 1, &json!("HIT")));
    assert_eq!(backend.hits(), 1);

    // A reload with validators revalidates at the origin; its 304 freshens the stored object
    // (new headers, same body) instead of replacing it.
    let (status, headers, _, _) = conditional_get(
        &proxy,
        path,
        &[("Cache-Control", "no-cache"), ("If-None-Match", "\"v1\"")],
    )
    .await;
    assert_eq!(status, 304);
    assert_eq!(
        headers["cache-status"],
        "scalelab; fwd=request; fwd-status=304; detail=freshened"
    );
    assert_eq!(backend.hits(), 2);
    let (status, headers, hit, _) = conditional_get(&proxy, path, &[]).await;
    assert_eq!((status, hit), (200, 1), "the body was not fetched again");
    assert_eq!(headers["x-origin-hit"], "2", "headers come from the 304");
    assert_eq!(headers["x-cache"], "HIT");

    // A soft purge's background refresh also revalidates with the stored ETag.
    let (status, _) = proxy
        .admin_delete("/admin/cache?key=%2Fc%2Fe%3Fcc%3Dmax-age%3D60%26etag%3Dv1&soft=true")
        .await;
    assert_eq!(status, 200);
    let (_, headers, _, _) = conditional_get(&proxy, path, &[]).await;
    assert_eq!(headers["x-cache"], "STALE");
    eventually(
        Duration::from_secs(5),
        "the conditional refresh",
        || async {
            let (_, headers, hit, _) = conditional_get(&proxy, path, &[]).await;
            (headers["x-cache"] == "HIT" && headers["x-origin-hit"] == "3").then_some(hit)
        },
    )
    .await;
    assert_eq!(backend.hits(), 3, "one refresh, answered with a 304");
    let sent = backend.last_header("if-none-match");
    assert_eq!(sent.as_deref(), Some("\"v1\""));
    let (_, _, hit, _) = conditional_get(&proxy, path, &[]).await;
    assert_eq!(hit, 1, "still the first body");

    // A 304 for a representation we do not store changes nothing.
    let (status, headers, _, _) = conditional_get(
        &proxy,
        "/c/e?etag=v2&cc=max-age=60",
        &[("Cache-Control", "no-cache"), ("If-None-Match", "\"v2\"")],
    )
    .await;
    assert_eq!(status, 304);
    assert_eq!(
        headers["cache-status"],
        "scalelab; fwd=request; fwd-status=304; detail=not-stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_query_make_different_objects() {
    let (backend, proxy) = setup("default_ttl = \"60s\"", TIERS).await;
    assert_eq!(
        get_with(&proxy, "/c/h?a=1&b=2", &[("Host", "one.test")])
            .await
            .x_cache,
        "MISS"
    );
    assert_eq!(
        get_with(
            &proxy,
            "/c/h?b=2&a=1&strategy=weighted",
            &[("Host", "one.test")]
        )
        .await
        .x_cache,
        "HIT"
    );
    assert_eq!(
        get_with(&proxy, "/c/h?a=1&b=2", &[("Host", "two.test")])
            .await
            .x_cache,
        "MISS"
    );
    assert_eq!(
        get_with(&proxy, "/c/h?a=1&b=3", &[("Host", "one.test")])
            .await
            .x_cache,
        "MISS"
    );
    assert_eq!(backend.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_a_body_on_a_cached_path_does_not_desync_the_connection() {
    use tokio::io::AsyncWriteExt;
    let (backend, proxy) = setup("key = \"{path}\"", TIERS).await;
    assert_eq!(get(&proxy, "/c/body").await.x_cache, "MISS");
    let port: u16 = proxy.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // The body looks like a request: if the proxy parsed it as one, the origin would see it
    // and the next answer on this connection would be for the wrong request.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let first = format!(
        "GET /c/body HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    stream.write_all(first.as_bytes()).await.unwrap();
    let first_response = read_response(&mut stream).await;
    assert!(
        first_response.starts_with("HTTP/1.1 200"),
        "{first_response}"
    );
    assert!(first_response.contains("x-cache: HIT"), "{first_response}");
    stream
        .write_all(b"GET /c/body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let second_response = read_response(&mut stream).await;
    assert!(
        second_response.starts_with("HTTP/1.1 200"),
        "{second_response}"
    );
    assert!(
        second_response.contains("x-cache: HIT"),
        "{second_response}"
    );
    assert!(
        second_response.contains("\"path\":\"/c/body\""),
        "{second_response}"
    );
    assert_eq!(
        backend.hits(),
        1,
        "nothing but the first miss reached the origin"
    );
}

/// Reads one HTTP/1.1 response framed by Content-Length.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::new();
    let deadline = Instant::now() + patient(Duration::from_secs(5));
    loop {
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "no complete response: {text}");
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(patient(Duration::from_secs(5)), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed early: {text}");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_stats_inspect_and_delete() {
    let (backend, proxy) = setup("key = \"{path}\"", TIERS).await;
    get(&proxy, "/c/a?sk=t1").await;
    get(&proxy, "/c/a").await;
    get(&proxy, "/c/b").await;
    let http = client();
    let stats: serde_json::Value = http
        .get(format!("{}/cache/stats", proxy.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total_items"], 2);
    assert_eq!(stats["levels"]["L3"]["sets"], 2);
    assert_eq!(stats["levels"]["L3"]["hits"], 1);
    assert_eq!(stats["hits"], 1);
    assert_eq!(stats["misses"], 2);
    let report = proxy.admin_get("/admin/cache?key=/c/a").await;
    assert_eq!(report["tier"], "L3");
    assert_eq!(report["hits"], 1);
    assert_eq!(report["ttl_source"], "default_ttl");
    assert_eq!(report["tags"], serde_json::json!(["t1"]));
    let missing = http
        .get(format!("{}/admin/cache?key=/nope", proxy.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let (status, deleted) = proxy.admin_delete("/admin/cache?tag=t1").await;
    assert_eq!((status, &deleted["removed"]), (200, &json!(1)), "{deleted}");
    assert_eq!(proxy.admin_delete("/admin/cache").await.0, 400);
    assert_eq!(get(&proxy, "/c/a").await.x_cache, "MISS");
    assert_eq!(backend.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_survive_a_reload_unless_the_key_template_changes() {
    let backend = TestBackend::start("origin");
    let first = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .cache(TIERS, 2)
        .cached_route("c", "/c", "g", "key = \"{path}\"");
    let proxy = TestProxy::start(&first).await;
    for path in ["/c/1", "/c/2", "/c/3"] {
        get(&proxy, path).await;
    }
    // Same template, smaller last tier: what fits stays.
    let resized = TestConfig::same_ports(&first)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .cache(&[("L1", 100), ("L2", 100), ("L3", 2)], 2)
        .cached_route("c", "/c", "g", "key = \"{path}\"");
    proxy.write_config(&resized.render());
    let (status, _) = proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200);
    // The store follows the new config at the next request or admin call.
    let stats = proxy.admin_get("/cache/stats").await;
    assert_eq!(stats["levels"]["L3"]["items"], 2, "{stats}");
    assert_eq!(stats["levels"]["L3"]["max_entries"], 2, "{stats}");
    let mut hits = 0;
    for path in ["/c/1", "/c/2", "/c/3"] {
        let report = proxy.admin_get(&format!("/admin/cache?key={path}")).await;
        hits += usize::from(report["tier"] == "L3");
    }
    assert_eq!(hits, 2);

    // A new key template: the old objects are dropped.
    let retemplated = TestConfig::same_ports(&first)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .cache(&[("L1", 100), ("L2", 100), ("L3", 100)], 2)
        .cached_route("c", "/c", "g", "key = \"v2:{path}\"");
    proxy.write_config(&retemplated.render());
    let (status, _) = proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200);
    assert_eq!(get(&proxy, "/c/2").await.x_cache, "MISS");
    let stats = proxy.admin_get("/cache/stats").await;
    assert_eq!(stats["total_items"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_ttl_of_u64_max_is_capped_and_the_sweeper_keeps_running() {
    // A stale window makes the sweeper add it to the TTL: with the TTL uncapped, that sum
    // overflowed and the panic ended the sweeper.
    let (backend, proxy) = setup("key = \"{path}\", stale_if_error = \"1s\"", TIERS).await;
    let forever = "/c/forever?cache_ttl=18446744073709551615";
    let first = get(&proxy, forever).await;
    assert_eq!((first.status, first.x_cache.as_str()), (200, "MISS"));
    assert_eq!(
        first.cache_status,
        "scalelab; fwd=miss; stored; ttl=31536000"
    );
    let report = proxy.admin_get("/admin/cache?key=/c/forever").await;
    assert_eq!(report["ttl_seconds"], 31_536_000.0, "{report}");

    // An object stored after it still expires through the sweeper (nobody asks for it again),
    // and the long-lived one is still served.
    assert_eq!(get(&proxy, "/c/short?cc=max-age=1").await.x_cache, "MISS");
    eventually(
        Duration::from_secs(10),
        "the sweeper to expire /c/short",
        || async {
            let report = proxy.admin_get("/admin/cache?key=/c/short").await;
            (report["error"] == "not cached").then_some(())
        },
    )
    .await;
    let stats = proxy.admin_get("/cache/stats").await;
    assert_eq!(stats["levels"]["L3"]["expirations"], 1, "{stats}");
    assert_eq!(stats["total_items"], 1, "{stats}");
    let again = get(&proxy, forever).await;
    assert_eq!((again.status, again.x_cache.as_str()), (200, "HIT"));
    assert_eq!(backend.hits(), 2);
}

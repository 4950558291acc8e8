//! Several real proxies sharing a Redis tier (a real redis-server started here): what one proxy
//! stores the others hit, a purge on one reaches all, a cold key is fetched once for the fleet,
//! and Redis going away fails no request.

use crate::harness::*;
use scalelab_test_support::RedisServer;
use serde_json::{json, Value};
use std::time::Duration;

/// A proxy in front of `origin` with memory tiers L1 and L2 and the shared tier L3 in `redis`.
async fn fleet_proxy(origin: &TestBackend, redis: &RedisServer, promotion_hits: u32) -> TestProxy {
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[origin], &[1]))
        .shared_cache(
            &[("L1", 100), ("L2", 100)],
            "L3",
            &redis.url(),
            promotion_hits,
        )
        .cached_route("c", "/c", "g", "key = \"{path}\", default_ttl = \"60s\"")
        .route("inv", "/cache/invalidate", "g");
    TestProxy::start(&config).await
}

async fn get(proxy: &TestProxy, path: &str) -> (u16, String, Option<String>) {
    get_with(proxy, path, &[]).await
}

/// `get` with these request headers.
async fn get_with(
    proxy: &TestProxy,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let mut request = client().get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let (cache, tier) = (
        header("x-cache").unwrap_or_default(),
        header("x-cache-tier"),
    );
    (response.status().as_u16(), cache, tier)
}

async fn stats(proxy: &TestProxy) -> Value {
    proxy.admin_get("/cache/stats").await
}

#[tokio::test]
async fn what_one_proxy_stores_the_other_hits_and_a_purge_reaches_both() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let origin = TestBackend::start("origin");
    let first = fleet_proxy(&origin, &redis, 2).await;
    let second = fleet_proxy(&origin, &redis, 2).await;

    assert_eq!(get(&first, "/c/a").await, (200, "MISS".into(), None));
    assert_eq!(origin.hits(), 1);
    // The store into Redis runs beside the response.
    eventually(
        patient(Duration::from_secs(5)),
        "the object to reach redis",
        || async { (stats(&first).await["levels"]["L3"]["sets"] == 1).then_some(()) },
    )
    .await;

    // The other proxy finds it in the shared tier; at the second hit there (promotion.hits = 2)
    // it copies the object into its last memory tier, where the next request hits.
    assert_eq!(
        get(&second, "/c/a").await,
        (200, "HIT".into(), Some("L3".into()))
    );
    assert_eq!(
        second.admin_get("/cache/stats").await["levels"]["L2"]["items"],
        0
    );
    assert_eq!(
        get(&second, "/c/a").await,
        (200, "HIT".into(), Some("L3".into()))
    );
    assert_eq!(
        get(&second, "/c/a").await,
        (200, "HIT".into(), Some("L2".into()))
    );
    assert_eq!(
        origin.hits(),
        1,
        "the origin was asked once for both proxies"
    );
    assert_eq!(
        second.admin_get("/admin/cache?key=/c/a").await["tier"],
        "L2"
    );

    // A purge on the first proxy empties Redis and, within a second, the second proxy's memory.
    let purged: Value = client()
        .post(first.url("/cache/invalidate"))
        .json(&json!({ "key": "/c/a" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(purged["removed"], 1, "{purged}");
    assert_eq!(purged["shared_removed"], 1, "{purged}");
    forgotten(&second, "/c/a").await;
    assert_eq!(get(&second, "/c/a").await, (200, "MISS".into(), None));
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn a_varying_response_in_redis_is_found_by_a_proxy_that_never_saw_it_vary() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let origin = TestBackend::start("origin");
    let first = fleet_proxy(&origin, &redis, 2).await;
    let second = fleet_proxy(&origin, &redis, 2).await;
    let path = "/c/v?vary=Accept-Language";
    let french = [("accept-language", "fr")];

    assert_eq!(
        get_with(&first, path, &french).await,
        (200, "MISS".into(), None)
    );
    eventually(
        patient(Duration::from_secs(5)),
        "the variant to reach redis",
        || async { (stats(&first).await["levels"]["L3"]["sets"] == 1).then_some(()) },
    )
    .await;
    // The second proxy has never fetched the key, so it does not know the key varies: its
    // lookup under the plain key finds the variants marker and then the French variant.
    assert_eq!(
        get_with(&second, path, &french).await,
        (200, "HIT".into(), Some("L3".into()))
    );
    assert_eq!(origin.hits(), 1);
    // Another language is another variant, which nobody stored yet.
    assert_eq!(
        get_with(&second, path, &[("accept-language", "de")]).await,
        (200, "MISS".into(), None)
    );
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn a_cold_key_is_fetched_once_for_the_whole_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let origin = TestBackend::start("origin");
    // Slow enough that every request arrives while the first fetch is still running.
    origin.set_latency(500);
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(fleet_proxy(&origin, &redis, 2).await);
    }
    let before = origin.hits();
    let mut requests = Vec::new();
    for proxy in &proxies {
        for _ in 0..20 {
            let url = proxy.url("/c/cold");
            requests.push(tokio::spawn(async move {
                client().get(url).send().await.unwrap().status().as_u16()
            }));
        }
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(
        origin.hits() - before,
        1,
        "3 proxies x 20 requests, one origin fetch"
    );
}

#[tokio::test]
async fn redis_going_away_fails_no_request_and_its_return_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(dir.path());
    let origin = TestBackend::start("origin");
    let proxy = fleet_proxy(&origin, &redis, 1).await;
    assert_eq!(get(&proxy, "/c/warm").await.0, 200);

    // Four clients keep asking for cached and uncached keys while Redis dies.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for client_index in 0..4 {
        let (stop, base) = (stop.clone(), proxy.base.clone());
        load.push(tokio::spawn(async move {
            let (mut answered, mut failed) = (0_u32, Vec::new());
            let http = client();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let path = if answered % 2 == 0 {
                    "/c/warm".to_owned()
                } else {
                    format!("/c/new-{client_index}-{answered}")
                };
                match http.get(format!("{base}{path}")).send().await {
                    Ok(response) if response.status() == 200 => {}
                    Ok(response) => failed.push(format!("{path}: {}", response.status())),
                    Err(error) => failed.push(format!("{path}: {error}")),
                }
                answered += 1;
            }
            (answered, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        let (answered, failed) = task.await.unwrap();
        assert!(answered > 10, "the load ran: {answered}");
        assert!(
            failed.is_empty(),
            "no request fails because of Redis: {failed:?}"
        );
    }
    let metrics = scrape(&proxy).await;
    assert_eq!(
        sample(&metrics, "scalelab_cache_redis_breaker_open"),
        Some(1.0)
    );

    redis.restart();
    let sets_before = stats(&proxy).await["levels"]["L3"]["sets"]
        .as_u64()
        .unwrap();
    let attempt = std::sync::atomic::AtomicU32::new(0);
    eventually(
        patient(Duration::from_secs(5)),
        "the redis tier to be used again",
        || async {
            let key = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            get(&proxy, &format!("/c/after{key}")).await;
            let sets = stats(&proxy).await["levels"]["L3"]["sets"].as_u64()?;
            (sets > sets_before).then_some(())
        },
    )
    .await;
}

/// Waits (a second at most) until `proxy`'s memory no longer holds `key`.
pub async fn forgotten(proxy: &TestProxy, key: &str) {
    eventually(
        patient(Duration::from_secs(1)),
        "the purge to reach the proxy's memory",
        || async {
            let report = client()
                .get(format!("{}/admin/cache?key={key}", proxy.admin))
                .send()
                .await
                .ok()?;
            (report.status() == 404).then_some(())
        },
    )
    .await;
}

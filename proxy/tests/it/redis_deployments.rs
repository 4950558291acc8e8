//! The shared tier on the Redis deployments besides one plain server: TLS (`rediss://` with a
//! private CA, a real redis-server speaking only TLS) and Redis Cluster (three real primaries):
//! what one proxy stores the other hits, purges reach Redis and the other proxy, and a shared
//! rate limit is one budget.

use crate::harness::*;
use crate::limits::shared::{fleet_proxy_in, share_one_budget};
use crate::shared_cache::forgotten;
use scalelab_test_support::{RedisCluster, RedisServer};
use serde_json::{json, Value};
use std::time::Duration;

/// A proxy in front of `origin` with memory tiers L1 and L2 and the shared tier L3 on the Redis
/// the `[redis]` lines describe.
async fn fleet_proxy(origin: &TestBackend, redis: &str) -> TestProxy {
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[origin], &[1]))
        .shared_cache_in(&[("L1", 100), ("L2", 100)], "L3", redis, "", 2)
        .cached_route("c", "/c", "g", "key = \"{path}\", default_ttl = \"60s\"")
        .route("inv", "/cache/invalidate", "g");
    TestProxy::start(&config).await
}

async fn get(proxy: &TestProxy, path: &str) -> (String, Option<String>) {
    let response = client().get(proxy.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    (
        header("x-cache").unwrap_or_default(),
        header("x-cache-tier"),
    )
}

async fn redis_sets(proxy: &TestProxy) -> Value {
    proxy.admin_get("/cache/stats").await["levels"]["L3"]["sets"].clone()
}

async fn invalidate(proxy: &TestProxy, body: Value) -> Value {
    client()
        .post(proxy.url("/cache/invalidate"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn hit(tier: &str) -> (String, Option<String>) {
    ("HIT".into(), Some(tier.into()))
}

fn miss() -> (String, Option<String>) {
    ("MISS".into(), None)
}

#[tokio::test]
async fn a_tls_redis_with_a_private_ca_is_shared_and_its_certificate_checked() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_tls(dir.path());
    assert!(redis.url().starts_with("rediss://"));
    let origin = TestBackend::start("origin");
    let trusting = format!(
        "url = \"{}\"\nca = \"{}\"\n",
        redis.url(),
        redis.ca().display()
    );
    let first = fleet_proxy(&origin, &trusting).await;
    let second = fleet_proxy(&origin, &trusting).await;

    assert_eq!(get(&first, "/c/a").await, miss());
    eventually(
        patient(Duration::from_secs(5)),
        "the object to reach redis over TLS",
        || async { (redis_sets(&first).await == 1).then_some(()) },
    )
    .await;
    assert_eq!(get(&second, "/c/a").await, hit("L3"));
    assert_eq!(origin.hits(), 1);

    // Without the CA, the system's roots do not know the server's issuer: no TLS session, so
    // the tier is never used (and the request is still served, from the origin).
    let distrusting = format!("url = \"{}\"\n", redis.url());
    let third = fleet_proxy(&origin, &distrusting).await;
    assert_eq!(get(&third, "/c/a").await, miss());
    assert_eq!(origin.hits(), 2);
    let stats = third.admin_get("/cache/stats").await;
    assert_eq!(stats["levels"]["L3"]["hits"], 0, "{stats}");
}

#[tokio::test]
async fn a_redis_cluster_holds_the_shared_tier_across_its_primaries() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RedisCluster::start(dir.path());
    let origin = TestBackend::start("origin");
    let redis = format!("url = {}\n", cluster.toml_urls());
    let first = fleet_proxy(&origin, &redis).await;
    let second = fleet_proxy(&origin, &redis).await;

    // Ten keys, each stored by the first proxy ...
    let paths: Vec<String> = (0..10).map(|i| format!("/c/k{i}")).collect();
    for path in &paths {
        assert_eq!(get(&first, path).await, miss(), "{path}");
    }
    eventually(
        patient(Duration::from_secs(5)),
        "the objects to reach the cluster",
        || async { (redis_sets(&first).await == 10).then_some(()) },
    )
    .await;
    // ... land on more than one primary (each key's records in its own slot) ...
    let counts = cluster.key_counts();
    assert!(
        counts.iter().filter(|&&count| count > 0).count() >= 2,
        "keys per primary: {counts:?}"
    );
    // ... and the second proxy hits every one in the cluster, then in its memory once hot.
    for path in &paths {
        assert_eq!(get(&second, path).await, hit("L3"), "{path}");
    }
    assert_eq!(get(&second, "/c/k0").await, hit("L3"));
    assert_eq!(get(&second, "/c/k0").await, hit("L2"));
    assert_eq!(origin.hits(), 10);

    // A purge by key on the first proxy removes the object from the cluster and, within a
    // second, from the second proxy's memory.
    let purged = invalidate(&first, json!({ "key": "/c/k0" })).await;
    assert_eq!(purged["shared_removed"], 1, "{purged}");
    forgotten(&second, "/c/k0").await;
    assert_eq!(get(&second, "/c/k0").await, miss());
    assert_eq!(origin.hits(), 11);

    // A purge by prefix on the second proxy finds the keys on every primary, and reaches the
    // first proxy's memory.
    let purged = invalidate(&second, json!({ "prefix": "/c/k" })).await;
    assert_eq!(purged["shared_removed"], 10, "{purged}");
    forgotten(&first, "/c/k5").await;
    assert_eq!(get(&first, "/c/k5").await, miss());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_on_a_redis_cluster_is_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RedisCluster::start(dir.path());
    let backend = TestBackend::start("a");
    let urls = cluster.toml_urls();
    let proxies = [
        fleet_proxy_in(&backend, &urls).await,
        fleet_proxy_in(&backend, &urls).await,
    ];
    share_one_budget(&proxies).await;
}

//! The Redis tier's `max_bytes` against a real redis-server: once the server's used memory is
//! over it, new objects are not stored there (a metric and a log line say so), and once it is
//! under again (here: a reload raises it), they are.

use crate::harness::*;
use scalelab_test_support::RedisServer;
use std::time::Duration;

/// Each object carries this many bytes of padding (its query string, echoed in the body).
const PAD: usize = 8 * 1024;

async fn fetch_new(proxy: &TestProxy, index: usize) {
    let path = format!("/c/fill{index}?pad={}", "x".repeat(PAD));
    let response = client().get(proxy.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "MISS");
}

/// One memory tier and the Redis tier, whose `max_bytes` is `max_bytes`.
fn config_with(redis: &RedisServer, origin: &TestBackend, max_bytes: u64) -> TestConfig {
    TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[origin], &[1]))
        .shared_cache_in(
            &[("L1", 100)],
            "L3",
            &format!("url = \"{}\"\n", redis.url()),
            &format!("max_bytes = {max_bytes}\n"),
            2,
        )
        .cached_route("c", "/c", "g", "key = \"{path}\", default_ttl = \"60s\"")
}

async fn series(proxy: &TestProxy, name: &str) -> f64 {
    sample(&scrape(proxy).await, name).unwrap_or(-1.0)
}

#[tokio::test]
async fn past_max_bytes_nothing_new_is_stored_in_redis_until_it_has_room_again() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let origin = TestBackend::start("origin");
    // Room for about 30 objects above what the empty server already uses.
    let max_bytes = redis.used_memory() + 256 * 1024;
    let proxy = TestProxy::start(&config_with(&redis, &origin, max_bytes)).await;
    eventually(
        patient(Duration::from_secs(5)),
        "the first usage sample",
        || async {
            let stats = proxy.admin_get("/cache/stats").await;
            (stats["levels"]["L3"]["bytes"].as_u64().unwrap_or(0) > 0).then_some(())
        },
    )
    .await;
    assert_eq!(series(&proxy, "scalelab_cache_redis_full").await, 0.0);

    // Fill until the sampler sees the server over max_bytes.
    let mut index = 0;
    eventually(
        patient(Duration::from_secs(30)),
        "the tier to be reported full",
        || {
            index += 1;
            let proxy = &proxy;
            let this = index;
            async move {
                fetch_new(proxy, this).await;
                (series(proxy, "scalelab_cache_redis_full").await == 1.0).then_some(())
            }
        },
    )
    .await;
    let stats = proxy.admin_get("/cache/stats").await;
    let used = stats["levels"]["L3"]["bytes"].as_u64().unwrap();
    assert!(used > max_bytes, "{used} bytes used, max {max_bytes}");
    let sets = stats["levels"]["L3"]["sets"].as_u64().unwrap();
    assert!(sets >= 20, "{sets} objects stored before it was full");

    // Full: five new objects are served, none stored in Redis.
    let refused = series(&proxy, "scalelab_cache_redis_refused_total").await;
    for extra in 1..=5 {
        fetch_new(&proxy, index + extra).await;
    }
    eventually(patient(Duration::from_secs(5)), "five refusals", || async {
        (series(&proxy, "scalelab_cache_redis_refused_total").await == refused + 5.0).then_some(())
    })
    .await;
    let stats = proxy.admin_get("/cache/stats").await;
    assert_eq!(stats["levels"]["L3"]["sets"].as_u64().unwrap(), sets);
    assert!(
        !object_key(&redis, 1).is_empty(),
        "the first object is in redis"
    );
    assert_eq!(object_key(&redis, index + 1), "", "a refused object is not");

    // Given more room (a reload raises max_bytes), the tier stores again: the next new object
    // goes to Redis.
    proxy.write_config(&config_with(&redis, &origin, used + 1024 * 1024).render());
    eventually(
        patient(Duration::from_secs(10)),
        "the tier to be reported under max_bytes",
        || async { (series(&proxy, "scalelab_cache_redis_full").await == 0.0).then_some(()) },
    )
    .await;
    fetch_new(&proxy, index + 6).await;
    eventually(
        patient(Duration::from_secs(5)),
        "the next object to be stored",
        || async {
            let stats = proxy.admin_get("/cache/stats").await;
            (stats["levels"]["L3"]["sets"].as_u64() == Some(sets + 1)).then_some(())
        },
    )
    .await;
    let log = proxy.log();
    assert!(log.contains("the redis tier is over max_bytes"), "{log}");
    assert!(
        log.contains("the redis tier is under max_bytes again"),
        "{log}"
    );
}

/// The Redis key of the object fetched as `fetch_new(index)`, found by its path.
fn object_key(redis: &RedisServer, index: usize) -> String {
    let pattern = format!("scalelab:cache:*:obj:/c/fill{index}");
    redis.cli(&["KEYS", &pattern]).trim().to_owned()
}

//! A rate limit shared by several proxies through a real redis-server (`store = "redis"`): one
//! budget for the fleet, and `on_store_error` deciding while Redis is gone.

use crate::harness::*;
use scalelab_test_support::RedisServer;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMITS: &str = r#"rate_limits = [{ name = "fleet", rate = "10/s", burst = 5, key = "route", store = "redis" }]"#;
const STRICT: &str = r#"rate_limits = [{ name = "strict", rate = "1000/s", burst = 1000, key = "route", store = "redis", on_store_error = "deny" }]"#;

async fn fleet_proxy(backend: &TestBackend, redis: &RedisServer) -> TestProxy {
    fleet_proxy_in(backend, &format!("\"{}\"", redis.url())).await
}

/// A proxy with the two limits on the Redis at `url` (a TOML value: one URL or a cluster's list).
pub async fn fleet_proxy_in(backend: &TestBackend, url: &str) -> TestProxy {
    let config = TestConfig::new()
        .tables(&format!(
            "[redis]\nurl = {url}\ncommand_timeout = \"{}ms\"\n",
            patient(Duration::from_millis(200)).as_millis()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[backend], &[1]))
        .route_with("data", "/data", "g", LIMITS)
        .route_with("strict", "/strict", "g", STRICT);
    let proxy = TestProxy::start(&config).await;
    eventually(
        patient(Duration::from_secs(5)),
        "the server to be healthy",
        || async { (proxy.server_healthy(backend.addr).await == Some(true)).then_some(()) },
    )
    .await;
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_share_one_budget_and_on_store_error_decides_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(dir.path());
    let backend = TestBackend::start("a");
    let proxies = [
        fleet_proxy(&backend, &redis).await,
        fleet_proxy(&backend, &redis).await,
    ];

    share_one_budget(&proxies).await;

    // Without Redis, "allow" (the default) lets requests through and "deny" refuses them.
    redis.kill();
    for _ in 0..10 {
        let data = client().get(proxies[0].url("/data")).send().await.unwrap();
        assert_eq!(data.status(), 200);
        let strict = client()
            .get(proxies[0].url("/strict"))
            .send()
            .await
            .unwrap();
        assert_eq!(strict.status(), 429);
    }
    let metrics = scrape(&proxies[0]).await;
    let errors = |limit: &str| {
        sample(
            &metrics,
            &format!(
                "scalelab_rate_limit_store_errors_total{{limit=\"{limit}\",route=\"{limit_route}\"}}",
                limit_route = if limit == "fleet" { "data" } else { "strict" }
            ),
        )
    };
    assert_eq!(errors("fleet"), Some(10.0));
    assert_eq!(errors("strict"), Some(10.0));
}

/// Two clients per proxy send to `/data` as fast as they can against 10/s with a burst of 5,
/// until the proxies together allowed `ALLOWED` and each refused some (each pressed against
/// the budget it sees). GCRA allows at most the burst plus the rate over the time its
/// decisions spanned, and every decision falls between the start and the end measured here:
/// one shared budget stays under 5 + 10 per second of that span, where two budgets, both
/// pressed, would allow about twice as much. The stop is an event, not a wall-clock window,
/// and the bound grows with the time taken, so a slow machine only makes the run longer.
pub async fn share_one_budget(proxies: &[TestProxy; 2]) {
    const ALLOWED: u32 = 25;
    let stop = Arc::new(AtomicBool::new(false));
    let allowed: [Arc<AtomicU32>; 2] = Default::default();
    let refused: [Arc<AtomicU32>; 2] = Default::default();
    let started = Instant::now();
    let mut clients = Vec::new();
    for (index, proxy) in proxies.iter().enumerate() {
        for _ in 0..2 {
            let (stop, allowed, refused) =
                (stop.clone(), allowed[index].clone(), refused[index].clone());
            let url = proxy.url("/data");
            clients.push(tokio::spawn(async move {
                let http = client();
                while !stop.load(Ordering::Relaxed) {
                    match http.get(&url).send().await.map(|r| r.status().as_u16()) {
                        Ok(200) => allowed.fetch_add(1, Ordering::Relaxed),
                        Ok(429) => refused.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected answer {other:?}"),
                    };
                }
            }));
        }
    }
    let count =
        |counters: &[Arc<AtomicU32>; 2]| counters.each_ref().map(|c| c.load(Ordering::Relaxed));
    eventually(
        Duration::from_secs(30),
        "the budget spent and refusals at both proxies",
        || {
            let (allowed, refused) = (count(&allowed), count(&refused));
            async move {
                (allowed[0] + allowed[1] >= ALLOWED && refused.iter().all(|&r| r > 0)).then_some(())
            }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let [first, second] = count(&allowed);
    let bound = 5.0 + 10.0 * elapsed;
    let total = f64::from(first + second);
    assert!(
        total <= bound + 1.0,
        "{first} + {second} allowed in {elapsed:.2} s; one shared budget allows at most {bound:.1}"
    );
    assert!(first > 0 && second > 0, "both proxies draw on the budget");
}

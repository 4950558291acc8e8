//! The latency-aware strategies (p2c, ewma), consistent hashing (ring, Maglev) and sticky
//! sessions, against the real binary: where requests go, the explain header, the sticky
//! cookie, and the EWMA in `/admin/upstreams` across a reload (issue 28).

use crate::harness::*;
use reqwest::header::HeaderMap;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Group `g` over `backends` with `strategy` and the extra `lines` (TOML keys of the group),
/// an active check every 200 ms, routed at `/`.
fn group_config(backends: &[&TestBackend], strategy: &str, lines: &str) -> TestConfig {
    let servers: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{}\" }}", b.addr))
        .collect();
    TestConfig::new()
        .tables(&format!(
            "[upstreams.g]\nstrategy = \"{strategy}\"\nservers = [{}]\nconnect_timeout = \"500ms\"\n\
             read_timeout = \"10s\"\nretries = 2\n{lines}\n\
             [upstreams.g.health_check]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\n\
             healthy_threshold = 1\nunhealthy_threshold = 1\n",
            servers.join(", ")
        ))
        .route("all", "/", "g")
}

async fn start(backends: &[&TestBackend], config: &TestConfig) -> TestProxy {
    let proxy = TestProxy::start(config).await;
    for backend in backends {
        wait_health(&proxy, backend, true).await;
    }
    proxy
}

async fn wait_health(proxy: &TestProxy, backend: &TestBackend, healthy: bool) {
    eventually(
        patient(Duration::from_secs(5)),
        &format!("{} healthy = {healthy}", backend.addr),
        || async { (proxy.server_healthy(backend.addr).await == Some(healthy)).then_some(()) },
    )
    .await;
}

/// One GET with `headers`; returns the server that answered and the response headers.
async fn get(proxy: &TestProxy, path: &str, headers: &[(&str, &str)]) -> (String, HeaderMap) {
    let mut request = client().get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let server = response.headers()["x-upstream-server"]
        .to_str()
        .unwrap()
        .to_string();
    (server, response.headers().clone())
}

/// `clients` concurrent clients sending `each` requests to `path`; every answer must be 200.
async fn load(proxy: &TestProxy, path: &str, clients: usize, each: usize) {
    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let http = http.clone();
        let url = proxy.url(path);
        tasks.push(tokio::spawn(async move {
            for _ in 0..each {
                assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

async fn ewma_ms(proxy: &TestProxy, backend: &TestBackend) -> f64 {
    proxy.server_report(backend.addr).await.unwrap()["ewma_ms"]
        .as_f64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewma_starves_a_slow_server_shows_its_ewma_and_keeps_it_across_a_reload() {
    let backends = ["a", "b", "slow"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let config = group_config(&refs, "ewma", "");
    let proxy = start(&refs, &config).await;
    backends[0].set_latency(5);
    backends[1].set_latency(5);
    // 400 ms: far above any hiccup of a fast server on a loaded machine, so the estimates'
    // order below is the servers' real order.
    backends[2].set_latency(400);
    load(&proxy, "/e", 6, 15).await;
    let hits = backends.each_ref().map(TestBackend::hits);
    eprintln!("ewma: hits {hits:?}");
    assert_eq!(hits.iter().sum::<usize>(), 90);
    // Round robin would send it 30. Peak EWMA sends it a request while it is unmeasured and
    // idle, then prices it at 400 ms x (in flight + 1), above any fast server's cost.
    assert!(
        hits[2] <= 9,
        "the slow server got {} of 90: {hits:?}",
        hits[2]
    );

    let slow = ewma_ms(&proxy, &backends[2]).await;
    let fast = ewma_ms(&proxy, &backends[0])
        .await
        .max(ewma_ms(&proxy, &backends[1]).await);
    eprintln!("ewma_ms: slow {slow}, fast {fast}");
    assert!(
        slow > fast && fast > 0.0,
        "ewma_ms: slow {slow}, fast {fast}"
    );

    // The explain header names the two servers drawn and why the winner won.
    let (winner, headers) = get(&proxy, "/e", &[("X-Scalelab-Explain", "1")]).await;
    let explain = headers["x-scalelab-explain"].to_str().unwrap();
    assert!(
        explain.starts_with("strategy=ewma; candidates="),
        "{explain}"
    );
    assert!(explain.contains(",ewma_us="), "{explain}");
    let reason = explain
        .split_once(&format!("; winner={winner} (power of two choices by peak EWMA us x (in flight + 1) / weight: {winner} load="))
        .unwrap_or_else(|| panic!("{explain}"))
        .1;
    let other = reason
        .split(" beat ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        other != winner && refs.iter().any(|b| b.addr.to_string() == other),
        "{explain}"
    );

    // A reload that changes the decay keeps each unchanged server's estimate.
    let generation = proxy.reloads().await.len();
    proxy.write_config(&group_config(&refs, "ewma", "ewma_decay = \"60s\"").render());
    eventually(patient(Duration::from_secs(10)), "the reload", || async {
        let journal = proxy.reloads().await;
        (journal.len() > generation && journal[0]["result"] == "applied").then_some(())
    })
    .await;
    let kept = ewma_ms(&proxy, &backends[2]).await;
    assert!(
        kept > fast,
        "the slow server's estimate after the reload: {kept}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_sends_less_to_a_slow_server_and_explains_both_candidates() {
    let backends = ["a", "b", "slow"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let proxy = start(&refs, &group_config(&refs, "p2c", "")).await;
    backends[2].set_latency(200);
    load(&proxy, "/p", 6, 15).await;
    let hits = backends.each_ref().map(TestBackend::hits);
    eprintln!("p2c: hits {hits:?}");
    assert_eq!(hits.iter().sum::<usize>(), 90);
    // It wins a draw only against a server with more in flight, which fast servers rarely
    // have: far below round robin's 30.
    assert!(
        hits[2] <= 18,
        "the slow server got {} of 90: {hits:?}",
        hits[2]
    );
    let (winner, headers) = get(&proxy, "/p", &[("X-Scalelab-Explain", "1")]).await;
    let explain = headers["x-scalelab-explain"].to_str().unwrap();
    assert!(
        explain.contains(&format!(
            "; winner={winner} (power of two choices by in flight / weight: {winner} load="
        )) && explain.contains(" beat "),
        "{explain}"
    );
    assert_eq!(headers["x-strategy"], "p2c");
}

/// The server each of `users` lands on (asked twice, which must agree).
async fn owners(proxy: &TestProxy, users: &[String]) -> HashMap<String, String> {
    let mut owners = HashMap::new();
    for user in users {
        let (first, _) = get(proxy, "/h", &[("X-User", user)]).await;
        let (second, _) = get(proxy, "/h", &[("X-User", user)]).await;
        assert_eq!(first, second, "user {user} moved between two requests");
        owners.insert(user.clone(), first);
    }
    owners
}

async fn hash_follows_health(algorithm: &str) {
    let backends = ["a", "b", "c"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines = format!("hash = {{ key = \"header.X-User\", algorithm = \"{algorithm}\" }}");
    let proxy = start(&refs, &group_config(&refs, "hash", &lines)).await;
    let users: Vec<String> = (0..30).map(|i| format!("user-{i}")).collect();
    let before = owners(&proxy, &users).await;
    let used: HashSet<&String> = before.values().collect();
    assert_eq!(
        used.len(),
        3,
        "{algorithm}: 30 users spread over all 3 servers: {before:?}"
    );

    // The owner of user-0 fails its check: its users move, and only those on the ring.
    let down = before["user-0"].clone();
    let victim = backends
        .iter()
        .find(|b| b.addr.to_string() == down)
        .unwrap();
    victim.set_failing_health(true);
    wait_health(&proxy, victim, false).await;
    let during = owners(&proxy, &users).await;
    for user in &users {
        if before[user] == down {
            assert_ne!(
                during[user], down,
                "{algorithm}: {user} stayed on the down server"
            );
        } else if algorithm == "ring" {
            assert_eq!(
                during[user], before[user],
                "{algorithm}: {user} moved needlessly"
            );
        }
    }
    let (_, headers) = get(
        &proxy,
        "/h",
        &[("X-User", "user-0"), ("X-Scalelab-Explain", "1")],
    )
    .await;
    let explain = headers["x-scalelab-explain"].to_str().unwrap();
    assert!(explain.contains("(owner of the key's hash)"), "{explain}");

    // Recovery brings every key back to its owner.
    victim.set_failing_health(false);
    wait_health(&proxy, victim, true).await;
    assert_eq!(
        owners(&proxy, &users).await,
        before,
        "{algorithm}: keys came back"
    );

    // No key: round robin over the three, and the explain header says so.
    let mut keyless = HashSet::new();
    for _ in 0..3 {
        let (server, headers) = get(&proxy, "/h", &[("X-Scalelab-Explain", "1")]).await;
        let explain = headers["x-scalelab-explain"].to_str().unwrap();
        assert!(
            explain.contains("(no hash key in the request; round robin)"),
            "{explain}"
        );
        keyless.insert(server);
    }
    assert_eq!(keyless.len(), 3, "{algorithm}: keyless requests rotate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_keeps_keys_moves_a_down_servers_keys_and_brings_them_back() {
    hash_follows_health("ring").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_hash_keeps_keys_moves_a_down_servers_keys_and_brings_them_back() {
    hash_follows_health("maglev").await;
}

fn sticky_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("srv="))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .trim_start_matches("srv=")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_pins_a_client_and_is_replaced_when_its_server_goes_down() {
    let backends = ["a", "b", "c"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines = "sticky = { cookie = \"srv\", ttl = \"30m\", secure = true, http_only = true }";
    let proxy = start(&refs, &group_config(&refs, "round_robin", lines)).await;

    let (first, headers) = get(&proxy, "/s", &[]).await;
    let set = sticky_cookie(&headers).expect("the first answer sets the cookie");
    assert!(
        set.ends_with("; Path=/; Max-Age=1800; SameSite=Lax; Secure; HttpOnly"),
        "{set}"
    );
    let token = cookie_value(&set);
    assert_eq!(token.len(), 32, "{set}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{set}");
    let port = first.rsplit(':').next().unwrap();
    assert!(
        !token.contains(port) && !set.contains("127.0.0.1"),
        "opaque: {set}"
    );

    // Round robin would rotate; the cookie pins every request, and is not set again.
    let cookie = format!("other=1; srv={token}");
    for _ in 0..6 {
        let (server, headers) = get(&proxy, "/s", &[("Cookie", &cookie)]).await;
        assert_eq!(server, first);
        assert_eq!(sticky_cookie(&headers), None);
    }

    // Its server goes down: re-balanced elsewhere, and the cookie replaced by the new one's.
    let pinned = backends
        .iter()
        .find(|b| b.addr.to_string() == first)
        .unwrap();
    pinned.set_failing_health(true);
    wait_health(&proxy, pinned, false).await;
    let (moved, headers) = get(
        &proxy,
        "/s",
        &[("Cookie", &cookie), ("X-Scalelab-Explain", "1")],
    )
    .await;
    assert_ne!(moved, first);
    let replaced = cookie_value(&sticky_cookie(&headers).expect("a replacement cookie"));
    assert_ne!(replaced, token);
    let explain = headers["x-scalelab-explain"].to_str().unwrap();
    assert!(
        explain.contains("sticky cookie names no available server, re-balanced"),
        "{explain}"
    );
    for _ in 0..4 {
        let (server, _) = get(&proxy, "/s", &[("Cookie", &format!("srv={replaced}"))]).await;
        assert_eq!(server, moved);
    }

    // A forged or stale value names no server: re-balanced and replaced too.
    let (_, headers) = get(
        &proxy,
        "/s",
        &[("Cookie", "srv=00000000000000000000000000000000")],
    )
    .await;
    assert!(sticky_cookie(&headers).is_some());
}

/// `n` sequential GETs; returns how many answered 500.
async fn errors_in(proxy: &TestProxy, n: usize) -> usize {
    let http = client();
    let mut errors = 0;
    for _ in 0..n {
        let status = http.get(proxy.url("/o")).send().await.unwrap().status();
        assert!(status == 200 || status == 500, "{status}");
        errors += usize::from(status == 500);
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_server_whose_health_passes_but_requests_fail() {
    let backends = ["a", "b", "c"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines =
        "outlier = { consecutive_5xx = 3, base_ejection = \"60s\", max_ejection = \"50%\" }";
    let proxy = start(&refs, &group_config(&refs, "round_robin", lines)).await;
    backends[0].set_failing_requests(true);
    // Round robin: a's third 500 comes within 9 requests, then it is out.
    assert_eq!(errors_in(&proxy, 9).await, 3);
    assert_eq!(backends[0].hits(), 3);
    let report = proxy.server_report(backends[0].addr).await.unwrap();
    assert_eq!(
        (
            report["ejected"].as_bool(),
            report["ejections"].as_u64(),
            report["healthy"].as_bool()
        ),
        (Some(true), Some(1), Some(false)),
        "{report}"
    );
    // Its health check still passes, and it still gets nothing.
    assert_eq!(errors_in(&proxy, 12).await, 0);
    assert_eq!(backends[0].hits(), 3);
    assert_eq!(report["last_check"]["ok"], true, "{report}");

    // b breaks too, but ejecting it would take out 2 of 3 (> 50%): it stays, and errs.
    backends[1].set_failing_requests(true);
    assert_eq!(errors_in(&proxy, 12).await, 6);
    let b = proxy.server_report(backends[1].addr).await.unwrap();
    assert_eq!(
        (b["ejected"].as_bool(), b["ejections"].as_u64()),
        (Some(false), Some(0)),
        "{b}"
    );

    // One metric increment and one log line per ejection, by rule.
    let metrics = scrape(&proxy).await;
    let series = |addr: std::net::SocketAddr| {
        format!(
            "scalelab_outlier_ejections_total{{reason=\"consecutive_5xx\",server=\"{addr}\",upstream=\"g\"}}"
        )
    };
    assert!(
        metrics.contains(&format!("{} 1\n", series(backends[0].addr))),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("{} 0\n", series(backends[1].addr))),
        "{metrics}"
    );
    eventually(
        patient(Duration::from_secs(5)),
        "the ejection's log line",
        || async {
            let log = proxy.log();
            (log.matches("server ejected by outlier detection").count() == 1).then_some(())
        },
    )
    .await;
    // A reload (a new base_ejection) keeps the ejection and its count: the state is the server's.
    let journal = proxy.reloads().await.len();
    let relaxed =
        "outlier = { consecutive_5xx = 3, base_ejection = \"90s\", max_ejection = \"50%\" }";
    proxy.write_config(&group_config(&refs, "round_robin", relaxed).render());
    eventually(patient(Duration::from_secs(10)), "the reload", || async {
        let entries = proxy.reloads().await;
        (entries.len() > journal && entries[0]["result"] == "applied").then_some(())
    })
    .await;
    let report = proxy.server_report(backends[0].addr).await.unwrap();
    assert_eq!(
        (report["ejected"].as_bool(), report["ejections"].as_u64()),
        (Some(true), Some(1)),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_error_rate_ejects_by_the_share_of_failures_in_its_window() {
    let backends = ["a", "b", "c"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines = "outlier = { consecutive_5xx = 0, consecutive_gateway_errors = 0, \
                 error_rate = { threshold = \"50%\", min_requests = 4, window = \"60s\" } }";
    let proxy = start(&refs, &group_config(&refs, "round_robin", lines)).await;
    backends[0].set_failing_requests(true);
    // The consecutive rules are off; the rate rule needs 4 answers in its window.
    assert_eq!(errors_in(&proxy, 12).await, 4);
    assert_eq!(backends[0].hits(), 4);
    assert_eq!(errors_in(&proxy, 6).await, 0);
    assert_eq!(backends[0].hits(), 4);
    let metrics = scrape(&proxy).await;
    let addr = backends[0].addr;
    assert!(
        metrics.contains(&format!(
            "scalelab_outlier_ejections_total{{reason=\"error_rate\",server=\"{addr}\",upstream=\"g\"}} 1\n"
        )),
        "{metrics}"
    );
}

async fn queue_length(proxy: &TestProxy) -> Option<u64> {
    scrape(proxy)
        .await
        .lines()
        .find(|line| line.starts_with("scalelab_upstream_queue_length{upstream=\"g\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_caps_the_group_lets_max_pending_wait_and_refuses_the_rest_at_once() {
    let backends = ["a", "b", "c"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines = "circuit = { max_requests = 2, max_pending = 1 }";
    let proxy = start(&refs, &group_config(&refs, "round_robin", lines)).await;
    let slow = proxy.url(&format!(
        "/c?sleep_ms={}",
        patient(Duration::from_millis(1500)).as_millis()
    ));
    let http = client();
    let mut held = Vec::new();
    for _ in 0..2 {
        let (http, slow) = (http.clone(), slow.clone());
        held.push(tokio::spawn(async move {
            http.get(&slow).send().await.unwrap().status()
        }));
    }
    proxy
        .wait_in_flight(2, patient(Duration::from_secs(5)))
        .await;
    let groups = proxy.upstreams().await;
    assert_eq!(
        groups["upstreams"][0]["circuit"],
        serde_json::json!({"max_requests": 2, "max_pending": 1, "in_flight": 2, "open": true})
    );
    // Three servers with one idle, but the group has its two: the third request waits.
    let pending = {
        let (http, url) = (http.clone(), proxy.url("/c"));
        tokio::spawn(async move { http.get(&url).send().await.unwrap().status() })
    };
    eventually(
        patient(Duration::from_secs(5)),
        "one request pending",
        || async { (queue_length(&proxy).await == Some(1)).then_some(()) },
    )
    .await;
    // The fourth finds the circuit full and its one pending place taken: 503 at once.
    let response = http.get(proxy.url("/c")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "circuit_open", "{body}");
    assert_eq!(backends.iter().map(TestBackend::hits).sum::<usize>(), 2);
    // The held requests end; the pending one is served.
    for task in held {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(pending.await.unwrap(), 200);
    assert_eq!(backends.iter().map(TestBackend::hits).sum::<usize>(), 3);
    let metrics = scrape(&proxy).await;
    assert!(
        metrics.contains(
            "scalelab_upstream_refused_requests_total{reason=\"circuit_open\",upstream=\"g\"} 1\n"
        ),
        "{metrics}"
    );
    proxy
        .wait_in_flight(0, patient(Duration::from_secs(5)))
        .await;
}

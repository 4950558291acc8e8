//! The latency-aware strategies (p2c, ewma), consistent hashing (ring, Maglev) and sticky
//! sessions, against the real binary: where requests go, the explain header, the sticky
//! cookie, and the EWMA in `/admin/upstreams` across a reload (issue 28).

use crate::harness::*;
use reqwest::header::HeaderMap;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Group `g` over `backends` with `strategy` and the extra `lines` (TOML keys of the group),
/// an active check every 200 ms, routed at `/`.
pub(crate) fn group_config(backends: &[&TestBackend], strategy: &str, lines: &str) -> TestConfig {
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

pub(crate) async fn start(backends: &[&TestBackend], config: &TestConfig) -> TestProxy {
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

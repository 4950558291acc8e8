//! Basic auth: bcrypt and argon2 users, the 401 challenge, `Authorization` kept from the
//! upstream unless `forward_credentials`; and a flood of wrong passwords that must not starve
//! a plain route of the same proxy.

use super::refused;
use crate::harness::*;
use base64::Engine;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn argon2_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"a test salt 1234").unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// An htpasswd file with `alice` (bcrypt `$2y$` at `cost`) and `carol` (argon2id).
fn users_file(dir: &std::path::Path, cost: u32) -> String {
    let alice = bcrypt::hash_with_result("wonderland", cost)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let path = dir.join("users.htpasswd");
    std::fs::write(
        &path,
        format!("alice:{alice}\ncarol:{}\n", argon2_hash("carol's secret")),
    )
    .unwrap();
    path.display().to_string()
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn basic_auth(client: Client) {
    let backend = TestBackend::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path(), 4);
    let config = TestConfig::new()
        .client(client)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route_with(
            "private",
            "/private",
            "g",
            &format!("auth = \"basic\"\nbasic = {{ users_file = {users:?}, realm = \"lab\" }}"),
        )
        .route_with(
            "passing",
            "/passing",
            "g",
            &format!(
                "auth = \"basic\"\nbasic = {{ users_file = {users:?} }}\nforward_credentials = true"
            ),
        );
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let before = refused(&proxy, "basic").await;
    let hits = backend.hits();
    for authorization in [
        None,
        Some(basic("alice", "wrong")),
        Some(basic("mallory", "wonderland")),
        Some("Basic not-base64!".to_string()),
        Some("Bearer x".to_string()),
    ] {
        let mut request = http.get(proxy.url("/private/x"));
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.version(), client.version());
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"lab\", charset=\"UTF-8\""
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    assert_eq!(
        backend.hits(),
        hits,
        "no refused request reached the server"
    );
    assert_eq!(refused(&proxy, "basic").await - before, 5.0);
    for (user, password) in [("alice", "wonderland"), ("carol", "carol's secret")] {
        // Twice: the second answer comes from the verified-credentials cache.
        for _ in 0..2 {
            let response = http
                .get(proxy.url("/private/x"))
                .header("Authorization", basic(user, password))
                .header("X-Auth-Subject", "forged")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{user}");
            assert_eq!(backend.last_header("authorization"), None, "not forwarded");
            assert_eq!(backend.last_header("x-auth-subject").as_deref(), Some(user));
        }
    }
    let response = http
        .get(proxy.url("/passing/x"))
        .header("Authorization", basic("alice", "wonderland"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        backend.last_header("authorization"),
        Some(basic("alice", "wonderland"))
    );
    let response = http.get(proxy.url("/passing/x")).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"scalelab\", charset=\"UTF-8\""
    );
}

over_each_client!(basic_auth);

/// 200 requests with wrong passwords (bcrypt at cost 8, distinct passwords so the cache
/// cannot answer them) while a plain route is asked one request after another: every plain
/// request is answered, many of them while the flood is still being verified (the event that
/// would not happen if hashes ran on the request threads: each of those threads would be
/// stuck behind ~100 hashes), and none takes longer than a generous multiple of the plain
/// route's own baseline. Measured here (2 cores shared): 200 hashes in about 7 s at cost 8,
/// 2,311 plain requests answered meanwhile, the slowest in 64 ms against a 5 ms baseline p90.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_does_not_starve_a_plain_route() {
    let backend = TestBackend::start("origin");
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path(), 8);
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("plain", "/plain", "g")
        .route_with(
            "private",
            "/private",
            "g",
            &format!("auth = \"basic\"\nbasic = {{ users_file = {users:?} }}"),
        );
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let mut baseline = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let response = http.get(proxy.url("/plain")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        baseline.push(started.elapsed());
    }
    baseline.sort();
    let baseline_p90 = baseline[17];

    let done = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..200)
        .map(|i| {
            // The flood queues for the verification pool: its requests may wait long.
            let http = scalelab_test_support::client(Duration::from_secs(120));
            let url = proxy.url("/private/x");
            let done = done.clone();
            tokio::spawn(async move {
                let status = http
                    .get(url)
                    .header("Authorization", basic("alice", &format!("guess-{i}")))
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                done.fetch_add(1, Ordering::SeqCst);
                status
            })
        })
        .collect();
    let mut during_flood = 0;
    let mut slowest = Duration::ZERO;
    let mut plain = 0;
    while done.load(Ordering::SeqCst) < 200 {
        let started = Instant::now();
        let response = http.get(proxy.url("/plain")).send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "the plain route answers every request"
        );
        slowest = slowest.max(started.elapsed());
        plain += 1;
        if done.load(Ordering::SeqCst) < 200 {
            during_flood += 1;
        }
    }
    println!(
        "flood: {plain} plain requests, {during_flood} during the flood, slowest {slowest:?}, baseline p90 {baseline_p90:?}"
    );
    for request in flood {
        assert_eq!(request.await.unwrap().unwrap(), 401);
    }
    assert!(
        during_flood >= 20,
        "only {during_flood} of {plain} plain requests were answered during the flood"
    );
    // Generous: run inline, the hashes held a plain request for seconds (it timed out at 10 s
    // when this was tried); off the request threads the slowest took 187 ms here.
    let bound = baseline_p90 * 20 + patient(Duration::from_secs(1));
    assert!(
        slowest <= bound,
        "slowest plain request {slowest:?} under the flood; baseline p90 {baseline_p90:?}, bound {bound:?}"
    );
}

//! Canary splits and mirroring against the real binary (issue 28 sections 4 and 5): where a
//! split route's requests go (by weight, pinned by a header or a cookie, sticky by a key), the
//! explain header, the per-group series, a rollout by reloads (5 -> 25 -> 100) in the journal,
//! and copies to a shadow group that never hold up the client.

use crate::harness::*;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One clear-text group per backend, named after it, checked every 200 ms.
fn groups(backends: &[&TestBackend]) -> String {
    backends
        .iter()
        .map(|b| {
            format!(
                "[upstreams.{name}]\nservers = [{{ addr = \"{addr}\" }}]\nretries = 0\n\
                 [upstreams.{name}.health_check]\npath = \"/health\"\ninterval = \"200ms\"\n\
                 healthy_threshold = 1\nunhealthy_threshold = 1\n",
                name = b.state.name,
                addr = b.addr
            )
        })
        .collect()
}

async fn healthy(proxy: &TestProxy, backends: &[&TestBackend]) {
    for backend in backends {
        eventually(
            patient(Duration::from_secs(5)),
            &format!("{} healthy", backend.addr),
            || async { (proxy.server_healthy(backend.addr).await == Some(true)).then_some(()) },
        )
        .await;
    }
}

/// The group that answered one GET with `headers`, and the explain header.
async fn side(proxy: &TestProxy, headers: &[(&str, &str)]) -> (String, String) {
    let mut request = client()
        .get(proxy.url("/c"))
        .header("x-scalelab-explain", "1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let explain = response.headers()["x-scalelab-explain"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    (body["server"].as_str().unwrap().to_string(), explain)
}

fn split_route(weights: (u32, u32), extra: &str) -> String {
    format!(
        "[[routes]]\nname = \"c\"\npath = \"/c\"\nupstream = [{{ group = \"stable\", weight = {} }}, \
         {{ group = \"canary\", weight = {}, match = {{ header.\"X-Canary\" = \"1\" }} }}, \
         {{ group = \"beta\", weight = 0, match = {{ cookie.beta = \"yes\" }} }}]\n{extra}\n",
        weights.0, weights.1
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_divides_by_weight_pins_by_header_or_cookie_and_explains_the_group() {
    let backends = ["stable", "canary", "beta"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let config = TestConfig::new()
        .tables(&groups(&refs))
        .raw_route(&split_route((80, 20), ""));
    let proxy = TestProxy::start(&config).await;
    healthy(&proxy, &refs).await;

    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..400 {
        let (group, explain) = side(&proxy, &[]).await;
        let weight = if group == "stable" { 80 } else { 20 };
        assert!(
            explain.starts_with(&format!(
                "split={group} (weight {weight} of 100 per request); "
            )),
            "{explain}"
        );
        *counts.entry(group).or_default() += 1;
    }
    eprintln!("split 80/20 over 400 requests: {counts:?}");
    // 20% of 400 is 80, with a standard deviation of 8: 48..=112 is four of them either way.
    let canary = counts.get("canary").copied().unwrap_or(0);
    assert!((48..=112).contains(&canary), "{counts:?}");
    assert_eq!(
        counts.get("beta"),
        None,
        "weight 0 takes only pinned requests"
    );

    for _ in 0..10 {
        let (group, explain) = side(&proxy, &[("X-Canary", "1")]).await;
        assert_eq!(group, "canary");
        assert!(
            explain.starts_with("split=canary (its match rule); "),
            "{explain}"
        );
        let (group, _) = side(&proxy, &[("cookie", "a=b; beta=yes")]).await;
        assert_eq!(group, "beta");
        // A value other than the rule's is not a pin.
        let (group, explain) = side(&proxy, &[("X-Canary", "0"), ("cookie", "beta=no")]).await;
        assert!(explain.contains("per request"), "{group}: {explain}");
        assert_ne!(group, "beta");
    }

    let metrics = scrape(&proxy).await;
    let count = |group: &str, reason: &str| {
        sample(
            &metrics,
            &format!(
                "scalelab_split_requests_total{{group=\"{group}\",reason=\"{reason}\",route=\"c\"}}"
            ),
        )
    };
    assert_eq!(count("canary", "match"), Some(10.0));
    assert_eq!(count("beta", "match"), Some(10.0));
    assert_eq!(count("beta", "weight"), Some(0.0), "{metrics}");
    let by_weight = count("stable", "weight").unwrap() + count("canary", "weight").unwrap();
    assert_eq!(by_weight, 410.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_rollout_by_reloads_keeps_users_on_their_side_and_is_journaled() {
    let backends = ["stable", "canary", "beta"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let config = |weights| {
        TestConfig::new()
            .tables(&groups(&refs))
            .raw_route(&split_route(weights, "split_key = \"header.X-User\""))
    };
    let first = config((95, 5));
    let proxy = TestProxy::start(&first).await;
    healthy(&proxy, &refs).await;

    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    // Each user's side, asked twice: a key decides, so both answers agree.
    let sides = |proxy: &TestProxy, users: Vec<String>| {
        let proxy_url = proxy.url("/c");
        async move {
            let mut on_canary = HashSet::new();
            for user in &users {
                let mut seen = HashSet::new();
                for _ in 0..2 {
                    let response = client()
                        .get(&proxy_url)
                        .header("x-user", user)
                        .header("x-scalelab-explain", "1")
                        .send()
                        .await
                        .unwrap();
                    let explain = response.headers()["x-scalelab-explain"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    assert!(explain.contains(" by header.x-user)"), "{explain}");
                    let body: serde_json::Value = response.json().await.unwrap();
                    seen.insert(body["server"].as_str().unwrap().to_string());
                }
                assert_eq!(seen.len(), 1, "{user} was sent to {seen:?}");
                if seen.contains("canary") {
                    on_canary.insert(user.clone());
                }
            }
            on_canary
        }
    };
    let at_5 = sides(&proxy, users.clone()).await;
    let mut previous = at_5.clone();
    let mut generation = proxy.reloads().await.len();
    for (weights, range) in [((75, 25), 25..=80), ((0, 100), 200..=200)] {
        let next = TestConfig::same_ports(&first)
            .tables(&groups(&refs))
            .raw_route(&split_route(weights, "split_key = \"header.X-User\""));
        proxy.write_config(&next.render());
        eventually(patient(Duration::from_secs(10)), "the reload", || async {
            let journal = proxy.reloads().await;
            (journal.len() > generation && journal[0]["result"] == "applied").then_some(())
        })
        .await;
        let journal = proxy.reloads().await;
        generation = journal.len();
        let changes = journal[0]["changes"].as_array().unwrap();
        let weight_change = changes
            .iter()
            .find(|c| c["path"] == "routes[0].split.targets[1].weight")
            .unwrap_or_else(|| panic!("{changes:?}"));
        assert_eq!(weight_change["new"], weights.1);
        let on_canary = sides(&proxy, users.clone()).await;
        eprintln!(
            "rollout to {weights:?}: {} of 200 users on the canary (were {})",
            on_canary.len(),
            previous.len()
        );
        assert!(range.contains(&on_canary.len()), "{}", on_canary.len());
        // Raising the canary's weight only moves users onto it.
        assert!(previous.is_subset(&on_canary), "a user left the canary");
        previous = on_canary;
    }
    assert!(at_5.len() <= 30, "{} of 200 at 5%", at_5.len());

    // Promoted: the route names the canary alone, and the split's series leave the exposition.
    assert!(scrape(&proxy)
        .await
        .contains("scalelab_split_requests_total{"));
    let promoted = TestConfig::same_ports(&first)
        .tables(&groups(&refs))
        .route("c", "/c", "canary");
    proxy.write_config(&promoted.render());
    eventually(
        patient(Duration::from_secs(10)),
        "the promotion",
        || async {
            let journal = proxy.reloads().await;
            (journal.len() > generation && journal[0]["result"] == "applied").then_some(())
        },
    )
    .await;
    assert_eq!(side(&proxy, &[("X-Canary", "0")]).await.0, "canary");
    let metrics = scrape(&proxy).await;
    assert!(
        !metrics.contains("scalelab_split_requests_total{"),
        "{metrics}"
    );
}

/// The requests a shadow received: each head (lower-cased) and body.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A shadow server that records each request (head and body) and answers 202 only when
/// `release` gives it a permit: until then it hangs, as a broken shadow deployment would.
struct Shadow {
    server: ServerRuntime,
    seen: Seen,
    release: Arc<tokio::sync::Semaphore>,
}

fn shadow() -> Shadow {
    let seen: Seen = Arc::default();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (record, gate) = (seen.clone(), release.clone());
    let server = ServerRuntime::serve(move |mut tcp| {
        let (record, gate) = (record.clone(), gate.clone());
        async move {
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            };
            let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while data.len() < head_end + length {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            }
            record
                .lock()
                .unwrap()
                .push((head, data[head_end..head_end + length].to_vec()));
            let Ok(_permit) = gate.acquire().await else {
                return;
            };
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    Shadow {
        server,
        seen,
        release,
    }
}

fn mirror_config(stable: &TestBackend, shadow: std::net::SocketAddr, mirror: &str) -> TestConfig {
    TestConfig::new()
        .tables(&format!(
            "{}[upstreams.shadow]\nservers = [{{ addr = \"{shadow}\" }}]\nread_timeout = \"60s\"\n",
            groups(&[stable])
        ))
        .raw_route(&format!(
            "[[routes]]\nname = \"m\"\npath = \"/m\"\nupstream = \"stable\"\nstrip_prefix = true\n\
             mirror = {mirror}\n"
        ))
}

fn mirrored(metrics: &str, status: &str) -> Option<f64> {
    sample(
        metrics,
        &format!(
            "scalelab_mirror_requests_total{{group=\"shadow\",route=\"m\",status=\"{status}\"}}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_shadow_never_holds_up_the_client_and_each_copy_is_counted() {
    let stable = TestBackend::start("stable");
    let shadow = shadow();
    let config = mirror_config(
        &stable,
        shadow.server.addr,
        "{ group = \"shadow\", percent = 100 }",
    );
    let proxy = TestProxy::start(&config).await;
    healthy(&proxy, &[&stable]).await;

    let body = vec![b'x'; 3000];
    for i in 0..3 {
        let response = client()
            .post(proxy.url(&format!("/m/orders?n={i}")))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        // Answered by the stable group while every copy so far is still held by the shadow.
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["server"], "stable");
        assert_eq!(answer["body_len"], 3000);
    }
    eventually(
        patient(Duration::from_secs(5)),
        "three copies at the shadow",
        || async { (shadow.seen.lock().unwrap().len() == 3).then_some(()) },
    )
    .await;
    {
        let seen = shadow.seen.lock().unwrap();
        for (i, (head, copied)) in seen.iter().enumerate() {
            // The copy is the request as sent upstream: after strip_prefix, with its body.
            assert!(head.starts_with("post /orders?n="), "{head}");
            assert!(head.contains("x-scalelab-mirror: 1"), "{head}");
            assert!(head.contains("x-request-id: "), "{head}");
            assert_eq!(copied.len(), 3000, "copy {i}");
        }
    }
    // Nothing is counted while the shadow hangs: a copy counts when it ends.
    assert_eq!(mirrored(&scrape(&proxy).await, "202"), None);
    shadow.release.add_permits(3);
    eventually(
        patient(Duration::from_secs(5)),
        "three copies counted",
        || async { (mirrored(&scrape(&proxy).await, "202") == Some(3.0)).then_some(()) },
    )
    .await;
    assert_eq!(stable.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_is_not_mirrored_and_a_dead_shadow_is_counted() {
    let stable = TestBackend::start("stable");
    let shadow = shadow();
    shadow.release.add_permits(100);
    let config = mirror_config(
        &stable,
        shadow.server.addr,
        "{ group = \"shadow\", percent = 100, max_body = \"1KiB\" }",
    );
    let proxy = TestProxy::start(&config).await;
    healthy(&proxy, &[&stable]).await;
    let post = |size: usize| {
        let url = proxy.url("/m/x");
        async move {
            let response = client()
                .post(url)
                .body(vec![b'y'; size])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    post(1024).await;
    post(1025).await;
    // A body without a Content-Length is measured as it streams.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b'z'; 700]), Ok(vec![b'z'; 700])];
    let response = client()
        .post(proxy.url("/m/x"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually(
        patient(Duration::from_secs(5)),
        "the copies counted",
        || async {
            let metrics = scrape(&proxy).await;
            (mirrored(&metrics, "202") == Some(1.0) && mirrored(&metrics, "too_large") == Some(2.0))
                .then_some(())
        },
    )
    .await;
    assert_eq!(shadow.seen.lock().unwrap().len(), 1);
    assert_eq!(shadow.seen.lock().unwrap()[0].1.len(), 1024);

    // A shadow that is gone: the client is still served, the copy counted as a connect error.
    let port = shadow.server.addr;
    drop(shadow);
    eventually(
        patient(Duration::from_secs(5)),
        "the shadow's port closed",
        || async {
            tokio::net::TcpStream::connect(port)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    post(10).await;
    eventually(
        patient(Duration::from_secs(5)),
        "the failed copy counted",
        || async { (mirrored(&scrape(&proxy).await, "connect_error") == Some(1.0)).then_some(()) },
    )
    .await;
}

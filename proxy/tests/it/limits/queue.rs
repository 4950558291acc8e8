//! `max_connections` and the group's queue: a server never holds more than its limit, queued
//! requests are served in arrival order, the ones beyond `queue.max` are refused at once, a
//! wait past `queue.timeout` is refused, and a client that goes away while queued leaks
//! nothing.

use crate::harness::*;
use axum::extract::{Query, State};
use axum::routing::get;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// A server that takes 500 ms per request, records the order requests arrive in and the most
/// it ever held at once, and holds every request at a gate until the test opens it.
struct Slow {
    arrivals: Mutex<Vec<usize>>,
    current: AtomicUsize,
    most: AtomicUsize,
    gate: Semaphore,
}

async fn handle_slow(
    State(slow): State<Arc<Slow>>,
    Query(query): Query<HashMap<String, String>>,
) -> &'static str {
    let id = query
        .get("id")
        .and_then(|id| id.parse().ok())
        .unwrap_or(usize::MAX);
    slow.arrivals.lock().unwrap().push(id);
    let now = slow.current.fetch_add(1, Ordering::SeqCst) + 1;
    slow.most.fetch_max(now, Ordering::SeqCst);
    // A request whose connection the proxy drops (its client left) is cancelled here: it stops
    // counting as in flight then too.
    let _in_flight = InFlight(&slow.current);
    // Each request uses up a permit, so the test can let them through one by one.
    slow.gate.acquire().await.unwrap().forget();
    tokio::time::sleep(Duration::from_millis(500)).await;
    "done"
}

/// Counts a request out of the server's in-flight count when it ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn start_slow() -> (Arc<Slow>, SocketAddr) {
    let slow = Arc::new(Slow {
        arrivals: Mutex::new(Vec::new()),
        current: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        gate: Semaphore::new(0),
    });
    let router = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(get(handle_slow))
        .with_state(slow.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (slow, addr)
}

/// The slow server behind a proxy with `max_connections = 2` and the given queue, and the
/// patience of every wait.
async fn slow_behind_proxy(queue: &str) -> (Arc<Slow>, TestProxy, Duration) {
    let (slow, addr) = start_slow().await;
    let proxy = limited_proxy(addr, queue).await;
    (slow, proxy, patient(Duration::from_secs(10)))
}

/// A proxy in front of `addr` with `max_connections = 2` and the given queue.
async fn limited_proxy(addr: SocketAddr, queue: &str) -> TestProxy {
    let config = TestConfig::new()
        .tables(&format!(
            "[upstreams.g]\nservers = [{{ addr = \"{addr}\", max_connections = 2 }}]\nretries = 0\nqueue = {{ {queue} }}\n"
        ))
        .route("all", "/", "g");
    TestProxy::start(&config).await
}

async fn queue_length(proxy: &TestProxy) -> f64 {
    sample(
        &scrape(proxy).await,
        "scalelab_upstream_queue_length{upstream=\"g\"}",
    )
    .unwrap_or(0.0)
}

/// Sends request `id` in the background.
fn send(
    proxy: &TestProxy,
    id: usize,
) -> tokio::task::JoinHandle<(u16, serde_json::Value, Option<String>)> {
    let url = proxy.url(&format!("/work?id={id}"));
    tokio::spawn(async move {
        let response = client_builder()
            .timeout(patient(Duration::from_secs(60)))
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body, retry_after)
    })
}

/// Sends requests 0 and 1, and returns once the server holds both (its two slots).
async fn fill_slots(
    proxy: &TestProxy,
    slow: &Slow,
    wait: Duration,
) -> Vec<tokio::task::JoinHandle<(u16, serde_json::Value, Option<String>)>> {
    let held = (0..2).map(|id| send(proxy, id)).collect();
    eventually(wait, "two requests at the server", || async {
        (slow.current.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    held
}

/// Sends request `id` and returns once it waits in the queue as the only one.
async fn queue_one(
    proxy: &TestProxy,
    id: usize,
    wait: Duration,
) -> tokio::task::JoinHandle<(u16, serde_json::Value, Option<String>)> {
    let task = send(proxy, id);
    eventually(wait, "one queued", || async {
        (queue_length(proxy).await == 1.0).then_some(())
    })
    .await;
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_two_slots_ten_queued_in_order_the_rest_refused_at_once() {
    let (slow, proxy, wait) = slow_behind_proxy("max = 10, timeout = \"60s\"").await;
    // Two go straight to the server, where the closed gate holds them.
    let mut tasks = fill_slots(&proxy, &slow, wait).await;
    // Ten queue, one at a time so their arrival order is known.
    for id in 2..12 {
        tasks.push(send(&proxy, id));
        let expected = (id - 1) as f64;
        eventually(wait, &format!("{expected} queued"), || async {
            (queue_length(&proxy).await == expected).then_some(())
        })
        .await;
    }
    // The rest are refused while the gate is still closed: at once, not after any wait.
    let overflow: Vec<_> = (12..20).map(|id| send(&proxy, id)).collect();
    for task in overflow {
        let (status, body, retry_after) = task.await.unwrap();
        assert_eq!(status, 503);
        assert_eq!(
            body,
            serde_json::json!({"error": "upstream busy", "upstream": "g", "reason": "queue_full", "retry_after_s": 1})
        );
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    assert_eq!(
        slow.arrivals.lock().unwrap().len(),
        2,
        "nothing else reached the server"
    );
    // One request at a time leaves the gate, and the next permit waits until the slot it
    // freed has brought the queue's head to the server: no two slots ever come free together,
    // so the order the queue hands them out in is the order requests reach the server, however
    // fast the machine is.
    for arrived in 3..=12 {
        slow.gate.add_permits(1);
        eventually(
            wait,
            &format!("{arrived} requests at the server"),
            || async { (slow.arrivals.lock().unwrap().len() == arrived).then_some(()) },
        )
        .await;
    }
    slow.gate.add_permits(1000);
    for task in tasks {
        let (status, _, _) = task.await.unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(
        slow.most.load(Ordering::SeqCst),
        2,
        "never more than max_connections"
    );
    let arrivals = slow.arrivals.lock().unwrap().clone();
    let mut first_two = arrivals[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, [0, 1]);
    assert_eq!(
        arrivals[2..],
        (2..12).collect::<Vec<_>>()[..],
        "the queue drains in order"
    );
    let metrics = scrape(&proxy).await;
    let refused = "scalelab_upstream_refused_requests_total{reason=\"queue_full\",upstream=\"g\"}";
    assert_eq!(sample(&metrics, refused), Some(8.0));
    assert_eq!(
        sample(
            &metrics,
            "scalelab_upstream_queue_wait_seconds_count{upstream=\"g\"}"
        ),
        Some(10.0)
    );
    assert_eq!(queue_length(&proxy).await, 0.0);
    proxy.wait_in_flight(0, wait).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_past_the_timeout_is_refused() {
    let (slow, proxy, wait) = slow_behind_proxy("max = 5, timeout = \"300ms\"").await;
    let held = fill_slots(&proxy, &slow, wait).await;
    let (status, body, retry_after) = send(&proxy, 2).await.unwrap();
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("queue_timeout"))
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    let metrics = scrape(&proxy).await;
    let timeouts =
        "scalelab_upstream_refused_requests_total{reason=\"queue_timeout\",upstream=\"g\"}";
    assert_eq!(sample(&metrics, timeouts), Some(1.0), "{metrics}");
    assert_eq!(queue_length(&proxy).await, 0.0);
    slow.gate.add_permits(1000);
    for task in held {
        assert_eq!(task.await.unwrap().0, 200);
    }
    assert_eq!(
        slow.arrivals.lock().unwrap().len(),
        2,
        "the refused one never arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_while_queued_leaks_no_slot_when_its_turn_comes() {
    let (slow, proxy, wait) = slow_behind_proxy("max = 5, timeout = \"60s\"").await;
    let held = fill_slots(&proxy, &slow, wait).await;
    let gone = queue_one(&proxy, 2, wait).await;
    gone.abort();
    // Its turn comes after the client left: whatever the proxy does with it, every slot is
    // given back and the queue is empty.
    slow.gate.add_permits(1000);
    for task in held {
        assert_eq!(task.await.unwrap().0, 200);
    }
    eventually(wait, "the queue to empty", || async {
        (queue_length(&proxy).await == 0.0).then_some(())
    })
    .await;
    proxy.wait_in_flight(0, wait).await;
    // The server drops a cancelled request when it notices the closed connection, which may
    // be a moment after the proxy gave its slot back.
    eventually(wait, "the server to be idle", || async {
        (slow.current.load(Ordering::SeqCst) == 0).then_some(())
    })
    .await;
    let again: Vec<_> = (3..5).map(|id| send(&proxy, id)).collect();
    for task in again {
        assert_eq!(task.await.unwrap().0, 200);
    }
    assert_eq!(slow.most.load(Ordering::SeqCst), 2);
    proxy.wait_in_flight(0, wait).await;
}

//! Slow and greedy clients: trickled heads are cut at `client_header_timeout` while other
//! clients are served, connections beyond `max_connections` are closed and counted, and bodies
//! over `max_body_bytes` get 413.

use crate::attack::{self, Recorder};
use crate::harness::{client, patient, sample, scrape, TestProxy};
use crate::smuggling::{proxy_in_front_of, recording_config};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a head one byte every `pace` until the proxy closes the connection; returns how long
/// the connection lived, or `None` if it outlived `give_up`.
async fn trickle(port: u16, pace: Duration, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let head = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Padding: "
        .iter()
        .copied();
    let mut bytes = head.chain(std::iter::repeat(b'a'));
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                // A 408 answer or the close itself: either way the proxy ended it.
                let _ = read;
                return Some(started.elapsed());
            }
            () = tokio::time::sleep(pace) => {
                if started.elapsed() > give_up {
                    return None;
                }
                let byte = [bytes.next().unwrap_or(b'a')];
                if stream.write_all(&byte).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
}

#[tokio::test]
async fn slow_headers_are_cut_at_the_header_timeout_while_others_are_served() {
    const SLOW: usize = 500;
    let recorder = Recorder::start().await;
    let (proxy, addr) = proxy_in_front_of(&recorder, "client_header_timeout = \"1s\"").await;
    let port = addr.port();
    let give_up = patient(Duration::from_secs(15));
    let slow: Vec<_> = (0..SLOW)
        .map(|_| tokio::spawn(trickle(port, Duration::from_millis(300), give_up)))
        .collect();

    // A normal client keeps asking while the slow ones hold their connections.
    let http = client();
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let started = Instant::now();
        let response = http
            .get(proxy.url("/normal"))
            .send()
            .await
            .expect("normal request");
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
        answered += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lifetimes = Vec::new();
    for task in slow {
        lifetimes.push(task.await.expect("trickle task"));
    }
    let cut: Vec<Duration> = lifetimes.iter().flatten().copied().collect();
    assert_eq!(
        cut.len(),
        SLOW,
        "slow connections left open after {give_up:?}"
    );
    let longest = cut.iter().max().copied().unwrap_or_default();
    // The whole head had 1 s; one pace of slack for the write that notices the close.
    assert!(
        longest >= Duration::from_secs(1)
            && longest <= Duration::from_secs(1) + patient(Duration::from_secs(2)),
        "longest slow connection lived {longest:?}"
    );
    assert!(answered > 0);
    println!("{SLOW} slow heads cut after at most {longest:?}; {answered} normal requests, slowest {slowest:?}");
    let metrics = scrape(&proxy).await;
    let timeouts = sample(
        &metrics,
        "scalelab_requests_refused_total{reason=\"header_timeout\"}",
    );
    assert_eq!(timeouts, Some(SLOW as f64), "{metrics}");
    // Nothing of a trickled head reached the upstream.
    assert!(!String::from_utf8_lossy(&recorder.received()).contains("/slow"));
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_counted() {
    let recorder = Recorder::start().await;
    let (proxy, addr) = proxy_in_front_of(&recorder, "max_connections = 2").await;
    let port = addr.port();
    let started = Instant::now();
    // Two keep-alive connections take both slots. Each is proven held by a request answered on
    // it, since a connection of the harness's readiness probe may still hold a slot briefly.
    let mut held = Vec::new();
    while held.len() < 2 {
        if let Some(stream) = held_connection(addr).await {
            held.push(stream);
        }
        assert!(held.len() == 2 || Instant::now() < started + patient(Duration::from_secs(10)));
    }
    let series = format!("scalelab_connections_refused_total{{listener=\"127.0.0.1:{port}\"}}");
    let before = sample(&scrape(&proxy).await, &series).unwrap_or(0.0);
    // The third is closed before anything is read from it.
    let seen = attack::exchange(
        addr,
        attack::CANARY,
        1,
        Duration::from_millis(50),
        patient(Duration::from_secs(5)),
    )
    .await;
    assert!(seen.statuses.is_empty(), "{seen:?}");
    let metrics = scrape(&proxy).await;
    assert_eq!(sample(&metrics, &series), Some(before + 1.0), "{metrics}");
}

/// A connection on which one request was answered, kept open (keep-alive).
async fn held_connection(addr: std::net::SocketAddr) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(attack::CANARY).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(patient(Duration::from_secs(5)), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf[..n].starts_with(b"HTTP/1.1 200").then_some(stream)
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_on_the_proxy_and_per_route() {
    let recorder = Recorder::start().await;
    let config = recording_config(&recorder, "max_body_bytes = 10").raw_route(
        "[[routes]]\nname = \"big\"\npath = \"/big\"\nupstream = \"rec\"\nmax_body_bytes = 100\n",
    );
    let proxy = TestProxy::start(&config).await;
    let http = client();
    let post = |path: &str, size: usize| http.post(proxy.url(path)).body(vec![b'a'; size]).send();
    let over = post("/small", 11).await.expect("post");
    assert_eq!(over.status(), 413);
    let body: serde_json::Value = over.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"error": "request body too large", "limit": 10})
    );
    assert_eq!(post("/big", 50).await.expect("post").status(), 200);
    assert_eq!(post("/big", 101).await.expect("post").status(), 413);
    // A chunked body is counted as it streams.
    let chunked = b"POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n";
    let seen = attack::exchange(
        crate::smuggling::listener(&proxy),
        chunked,
        1,
        Duration::from_millis(50),
        patient(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(seen.statuses, [413]);
}

/// An idle HTTP/1.1 keep-alive connection: a request that comes after a pause is served on it
/// (the proxy waits for the next request's first bytes before building its session), and one
/// left idle is closed after `keepalive_timeout`, not before.
#[tokio::test]
async fn an_idle_keep_alive_connection_serves_its_next_request_then_closes_on_time() {
    use crate::harness::{TestBackend, TestConfig, UpstreamSpec};
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting("keepalive_timeout = \"1s\"")
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let _proxy = TestProxy::start(&config).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", config.proxy_port))
        .await
        .unwrap();
    let request = b"GET /api HTTP/1.1\r\nHost: t\r\n\r\n";
    for pause in [Duration::ZERO, Duration::from_millis(400)] {
        tokio::time::sleep(pause).await;
        tcp.write_all(request).await.unwrap();
        let head = read_response(&mut tcp).await;
        assert!(head.starts_with("HTTP/1.1 200"), "after {pause:?}: {head}");
    }
    let idle = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(patient(Duration::from_secs(10)), tcp.read(&mut byte))
        .await
        .expect("the idle connection was not closed");
    assert_eq!(read.unwrap_or(0), 0, "nothing but the close");
    assert!(idle.elapsed() >= Duration::from_millis(900));
}

/// Reads one response with a `Content-Length` body; returns its head.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(patient(Duration::from_secs(10)), tcp.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "closed before the response ended");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return head.to_string();
            }
        }
    }
}

//! Protocol upgrades through the proxy: a WebSocket is relayed once the server answers 101 and
//! echoes until closed, holding its server's slot and the route's gauge while open; a server
//! that declines answers an ordinary response; `h2c` is removed unless configured; a route
//! with `upgrades = false` refuses with 400 JSON; the cache never answers an upgrade.

use crate::harness::*;
use scalelab_test_support::WsClient;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `ws://` for the proxy's `path`.
pub fn ws_url(proxy: &TestProxy, path: &str) -> String {
    proxy.url(path).replacen("http://", "ws://", 1)
}

/// The open upgraded connections the admin API reports for `addr` (`None` when not listed).
pub async fn upgraded_open(proxy: &TestProxy, addr: SocketAddr) -> Option<u64> {
    proxy.server_report(addr).await?["upgraded_open"].as_u64()
}

/// `scalelab_upgrades_total` of `route` and `outcome` in a scrape.
fn upgrades_total(metrics: &str, route: &str, outcome: &str) -> Option<f64> {
    let series = format!(r#"scalelab_upgrades_total{{outcome="{outcome}",route="{route}"}}"#);
    sample(metrics, &series)
}

/// Sends `head` (a whole request head) on a new connection and returns the response's status
/// line and header section, lowercased, read up to the blank line.
async fn raw_head(proxy: &TestProxy, head: &str) -> String {
    let addr = proxy.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "connection closed before a response head");
            received.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(patient(Duration::from_secs(5)), read)
        .await
        .expect("response head in time");
    String::from_utf8_lossy(&received).to_ascii_lowercase()
}

#[tokio::test]
async fn a_websocket_passes_through_and_holds_its_slot_while_open() {
    let ([a], proxy) = backends_behind_proxy(["a"], "least_connections", &[1]).await;
    let mut first = WsClient::connect(&ws_url(&proxy, "/ws"), &[])
        .await
        .unwrap();
    let mut second = WsClient::connect(&ws_url(&proxy, "/ws"), &[])
        .await
        .unwrap();
    assert_eq!(first.header("x-upstream-server"), Some(a.addr.to_string()));
    assert!(first.header("x-request-id").is_some());
    for i in 0..5 {
        let text = format!("message {i}");
        assert_eq!(first.echo(&text).await.unwrap(), text);
        assert_eq!(second.echo(&text).await.unwrap(), text);
    }
    // Both tunnels hold an in-flight slot and count as upgraded, on the server and the route.
    assert_eq!(upgraded_open(&proxy, a.addr).await, Some(2));
    assert_eq!(proxy.total_in_flight().await, 2);
    let metrics = scrape(&proxy).await;
    assert_eq!(
        sample(
            &metrics,
            r#"scalelab_upgraded_connections_open{route="all"}"#
        ),
        Some(2.0)
    );
    assert_eq!(upgrades_total(&metrics, "all", "switched"), Some(2.0));

    // The client closing one ends that tunnel only; then the other.
    first.close().await;
    eventually(Duration::from_secs(5), "one tunnel to close", || async {
        (upgraded_open(&proxy, a.addr).await == Some(1)).then_some(())
    })
    .await;
    assert_eq!(second.echo("still open").await.unwrap(), "still open");
    second.close().await;
    proxy.wait_in_flight(0, Duration::from_secs(5)).await;
    assert_eq!(upgraded_open(&proxy, a.addr).await, Some(0));
    let metrics = scrape(&proxy).await;
    assert_eq!(
        sample(
            &metrics,
            r#"scalelab_upgraded_connections_open{route="all"}"#
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_server_that_declines_gives_an_ordinary_response() {
    let ([a], proxy) = backends_behind_proxy(["a"], "round_robin", &[1]).await;
    // The counting handler answers 200 to anything but `/ws`: the upgrade is declined.
    let head = raw_head(
        &proxy,
        "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(a.last_header("upgrade").as_deref(), Some("websocket"));
    // Other protocols reach the server too, with the client's connection-specific fields gone.
    let head = raw_head(
        &proxy,
        "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, X-Secret\r\nUpgrade: foo/2, bar\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(a.last_header("upgrade").as_deref(), Some("foo/2, bar"));
    assert_eq!(a.last_header("connection").as_deref(), Some("Upgrade"));
    assert_eq!(a.last_header("x-secret"), None);
    assert_eq!(a.last_header("keep-alive"), None);
    assert_eq!(a.last_header("x-kept").as_deref(), Some("yes"));
    let metrics = scrape(&proxy).await;
    assert_eq!(upgrades_total(&metrics, "all", "declined"), Some(2.0));
    assert_eq!(upgraded_open(&proxy, a.addr).await, Some(0));
    proxy.wait_in_flight(0, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn h2c_is_stripped_unless_configured() {
    let a = TestBackend::start("a");
    let request = "GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&a], &[1]))
        .route("all", "/", "g");
    let proxy = TestProxy::start(&config).await;
    let head = raw_head(&proxy, request).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(a.hits(), 1);
    assert_eq!(a.last_header("upgrade"), None);
    assert_eq!(a.last_header("http2-settings"), None);
    let metrics = scrape(&proxy).await;
    assert_eq!(upgrades_total(&metrics, "all", "stripped"), Some(1.0));
    drop(proxy);

    let forwarding = TestConfig::new()
        .proxy_setting("forward_h2c_upgrade = true")
        .upstream(UpstreamSpec::new("g", "round_robin", &[&a], &[1]))
        .route("all", "/", "g");
    let proxy = TestProxy::start(&forwarding).await;
    let head = raw_head(&proxy, request).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        a.last_header("upgrade").as_deref(),
        Some("h2c"),
        "{head} hits {}",
        a.hits()
    );
    assert!(a.last_header("http2-settings").is_some());
}

#[tokio::test]
async fn a_route_with_upgrades_off_refuses_them_with_json() {
    let a = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&a], &[1]))
        .route_with("closed", "/", "g", "upgrades = false");
    let proxy = TestProxy::start(&config).await;
    let refused = match WsClient::connect(&ws_url(&proxy, "/ws"), &[]).await {
        Ok(_) => panic!("the upgrade went through"),
        Err(refused) => refused,
    };
    assert_eq!(refused.status, 400, "{refused:?}");
    let body: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "protocol upgrade not allowed on this route", "route": "closed"})
    );
    // Ordinary requests on the route still pass.
    let response = client().get(proxy.url("/plain")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let metrics = scrape(&proxy).await;
    assert_eq!(upgrades_total(&metrics, "closed", "refused"), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            r#"scalelab_requests_refused_total{reason="upgrade_refused"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_cache_never_answers_an_upgrade() {
    let a = TestBackend::start("a");
    let config = TestConfig::new()
        .cache(&[("hot", 100)], 2)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&a], &[1]))
        .cached_route("cached", "/", "g", "");
    let proxy = TestProxy::start(&config).await;
    let path = "/page?cc=max-age=600";
    for _ in 0..2 {
        let response = client().get(proxy.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(a.hits(), 1, "the second GET is a cache hit");
    let head = raw_head(
        &proxy,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(a.hits(), 2, "the upgrade request went to the server");
    assert!(!head.contains("x-cache: hit"), "{head}");
    // And a WebSocket on a cached route works like anywhere else.
    let mut socket = WsClient::connect(&ws_url(&proxy, "/ws"), &[])
        .await
        .unwrap();
    assert_eq!(socket.echo("cached route").await.unwrap(), "cached route");
}

#[tokio::test]
async fn a_quiet_tunnel_outlives_the_read_timeouts_but_not_the_tunnel_timeout() {
    let a = TestBackend::start("a");
    let mut spec = UpstreamSpec::new("g", "round_robin", &[&a], &[1]);
    spec.read_timeout = "1s";
    let config = TestConfig::new()
        .proxy_setting("client_body_timeout = \"1s\"")
        .proxy_setting("tunnel_timeout = \"4s\"")
        .upstream(spec)
        .route("all", "/", "g");
    let proxy = TestProxy::start(&config).await;
    let connecting = std::time::Instant::now();
    let mut socket = WsClient::connect(&ws_url(&proxy, "/ws"), &[])
        .await
        .unwrap();
    // The proxy's part of the handshake (request to 101) lies inside this.
    let handshake = connecting.elapsed();
    assert_eq!(socket.echo("before").await.unwrap(), "before");
    // Quiet for twice the client and upstream read timeouts: the tunnel stays.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(socket.echo("after").await.unwrap(), "after");
    // Quiet for longer than the tunnel timeout: the proxy closes it.
    let quiet = std::time::Instant::now();
    assert!(socket.ended_within(Duration::from_secs(10)).await);
    assert!(
        quiet.elapsed() >= Duration::from_secs(3),
        "{:?}",
        quiet.elapsed()
    );
    proxy.wait_in_flight(0, Duration::from_secs(5)).await;
    // The route's latency counts the tunnel until the 101, not its six seconds of life: no
    // more than the client's handshake took, however slow the machine.
    let metrics = eventually(Duration::from_secs(5), "the request recorded", || async {
        let metrics = scrape(&proxy).await;
        metrics
            .lines()
            .any(|line| line.starts_with("scalelab_http_request_duration_seconds_sum{"))
            .then_some(metrics)
    })
    .await;
    let latency: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("scalelab_http_request_duration_seconds_sum{"))
        .filter(|line| line.contains(r#"route="all""#))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        latency > 0.0 && latency <= handshake.as_secs_f64(),
        "{latency} s (the handshake took {handshake:?}) in\n{metrics}"
    );
}

#[tokio::test]
async fn an_open_tunnel_holds_its_servers_max_connections_slot() {
    let a = TestBackend::start("a");
    let config = TestConfig::new()
        .tables(&format!(
            "[upstreams.g]\nservers = [{{ addr = \"{}\", max_connections = 1 }}]\nqueue = {{ max = 10, timeout = \"300ms\" }}\n",
            a.addr
        ))
        .route("all", "/", "g");
    let proxy = TestProxy::start(&config).await;
    let mut first = WsClient::connect(&ws_url(&proxy, "/ws"), &[])
        .await
        .unwrap();
    assert_eq!(first.echo("holding").await.unwrap(), "holding");
    // The only slot is the tunnel's: a second one waits in the queue and is refused.
    let refused = match WsClient::connect(&ws_url(&proxy, "/ws"), &[]).await {
        Ok(_) => panic!("a second tunnel got the server's only slot"),
        Err(refused) => refused,
    };
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(first.echo("still holding").await.unwrap(), "still holding");
    // Closing the tunnel gives the slot back.
    first.close().await;
    let mut next = eventually(Duration::from_secs(5), "the slot to come back", || async {
        WsClient::connect(&ws_url(&proxy, "/ws"), &[]).await.ok()
    })
    .await;
    assert_eq!(next.echo("mine now").await.unwrap(), "mine now");
}

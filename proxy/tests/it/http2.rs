//! HTTP/2 to the proxy: with `[proxy] h2c = true` the plain listener serves HTTP/2 with prior
//! knowledge beside HTTP/1.1 on the same port, counts each request under its protocol and logs
//! it as `HTTP/2.0`; without it, an HTTP/2 client is refused. (The main forwarding, auth and
//! cache cases run over both protocols in their own modules, through `over_each_client!`.)

use crate::harness::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_and_http1_share_the_listener_and_are_counted_and_logged_by_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let backends = [TestBackend::start("a"), TestBackend::start("b")];
    let config = TestConfig::new()
        .proxy_setting(&format!(
            "access_log = {{ path = {:?} }}",
            log.display().to_string()
        ))
        .upstream(UpstreamSpec::new(
            "g",
            "round_robin",
            &[&backends[0], &backends[1]],
            &[1, 1],
        ))
        .route("api", "/api", "g")
        .client(Client::H2c);
    let proxy = TestProxy::start(&config).await;
    let (h1, h2) = (Client::Http1.build(), Client::H2c.build());

    let old = h1.get(proxy.url("/api/x")).send().await.unwrap();
    assert_eq!(
        (old.status().as_u16(), old.version()),
        (200, reqwest::Version::HTTP_11)
    );
    // Round robin over the two servers, with the explain header, over one h2 connection.
    let mut servers = Vec::new();
    for _ in 0..2 {
        let response = h2
            .get(proxy.url("/api/x"))
            .header("X-Request-Id", "h2-probe")
            .header("X-Scalelab-Explain", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (response.status().as_u16(), response.version()),
            (200, reqwest::Version::HTTP_2)
        );
        assert_eq!(response.headers()["x-request-id"], "h2-probe");
        assert_eq!(response.headers()["x-strategy"], "round_robin");
        let explain = response.headers()["x-scalelab-explain"].to_str().unwrap();
        assert!(explain.contains("round_robin"), "{explain}");
        servers.push(response.headers()["x-upstream-server"].clone());
    }
    assert_ne!(servers[0], servers[1], "round robin over h2");
    // The backend (HTTP/1.1) got the request with a Host made from the h2 authority.
    let host = backends.iter().find_map(|b| b.last_header("host")).unwrap();
    assert_eq!(host, format!("127.0.0.1:{}", config.proxy_port));

    let missing = h2.get(proxy.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"error": "no route", "path": "/nowhere"})
    );

    let count = |text: &str, protocol: &str, code: &str, route: &str| {
        sample(
            text,
            &format!(
                "scalelab_http_requests_total{{code=\"{code}\",method=\"GET\",protocol=\"{protocol}\",route=\"{route}\"}}"
            ),
        )
    };
    let text = eventually(Duration::from_secs(5), "the requests counted", || async {
        let text = scrape(&proxy).await;
        (count(&text, "h2", "404", "none") == Some(1.0)).then_some(text)
    })
    .await;
    assert_eq!(count(&text, "h2", "200", "api"), Some(2.0), "{text}");
    assert_eq!(count(&text, "http/1.1", "200", "api"), Some(1.0), "{text}");

    let lines = eventually(Duration::from_secs(5), "the h2 lines logged", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|line| line.contains("request_id=\"h2-probe\""))
            .map(str::to_string)
            .collect();
        (lines.len() == 2).then_some(lines)
    })
    .await;
    for line in lines {
        assert!(line.contains("\"GET /api/x HTTP/2.0\" 200"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_h2c_an_http2_client_is_refused_and_http1_still_served() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let proxy = TestProxy::start(&config).await;
    assert!(Client::H2c
        .build()
        .get(proxy.url("/api"))
        .send()
        .await
        .is_err());
    let response = Client::Http1
        .build()
        .get(proxy.url("/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(backend.hits(), 1);
}

/// An idle HTTP/2 connection is closed after `keepalive_timeout`, as an idle HTTP/1.1 one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2c_connection_is_closed_after_the_keepalive_timeout() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting("keepalive_timeout = \"1s\"")
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g")
        .client(Client::H2c);
    let _proxy = TestProxy::start(&config).await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", config.proxy_port))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .uri(format!("http://127.0.0.1:{}/api", config.proxy_port))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let started = std::time::Instant::now();
    // The server ends the connection (GOAWAY, then close); the client's driver then returns.
    tokio::time::timeout(patient(Duration::from_secs(10)), connection)
        .await
        .expect("the idle connection was not closed")
        .unwrap()
        .ok();
    // Not before the timeout: a lower bound a slow machine cannot break.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// The body limit holds over HTTP/2: a declared length over it gets 413 before anything goes
/// upstream, and a body streamed in DATA frames without a length gets 413 once it passes the
/// limit (as a chunked HTTP/1.1 body does: its head may already be upstream by then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_bodies_over_the_limit_get_413() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting("max_body_bytes = 100")
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g")
        .client(Client::H2c);
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let declared = http
        .post(proxy.url("/api"))
        .body(vec![b'a'; 101])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (declared.status().as_u16(), declared.version()),
        (413, reqwest::Version::HTTP_2)
    );
    assert_eq!(
        declared.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"error": "request body too large", "limit": 100})
    );
    assert_eq!(backend.hits(), 0);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..4).map(|_| Ok(vec![b'b'; 40])).collect();
    let streamed = http
        .post(proxy.url("/api"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    let within = http
        .post(proxy.url("/api"))
        .body(vec![b'c'; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(within.status(), 200);
    assert_eq!(
        backend.last_header("content-length").as_deref(),
        Some("100")
    );
}

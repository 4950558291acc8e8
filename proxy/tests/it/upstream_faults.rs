//! Upstream misbehaviour is contained: a response with both Content-Length and
//! Transfer-Encoding, an invalid status line, a 1 MiB response head, or a connection closed
//! mid-head gives the client 502 JSON; a body cut short cuts the client's connection; the
//! server's errors are counted; and the pooled connections used afterwards never mix answers
//! up (every answer names its own request).

use crate::harness::{client, patient, scrape, TestConfig, TestProxy, UpstreamSpec};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A keep-alive upstream that answers `/fault/NAME` with that fault and any other path with
/// `200` and the path as its body.
async fn faulty_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

async fn serve(mut stream: TcpStream) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => pending.extend_from_slice(&chunk[..n]),
                _ => return,
            }
            continue;
        };
        let head = String::from_utf8_lossy(&pending[..end]).to_string();
        pending.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let (answer, close): (Vec<u8>, bool) = match path.as_str() {
            "/fault/cl-te" => (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled!".to_vec(),
                false,
            ),
            "/fault/status-line" => (b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(), false),
            "/fault/huge-head" => {
                let mut head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
                head.extend(std::iter::repeat_n(b'a', 1024 * 1024));
                head.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
                (head, false)
            }
            "/fault/truncated" => (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it".to_vec(),
                true,
            ),
            "/fault/mid-head" => (b"HTTP/1.1 200 OK\r\nContent-Le".to_vec(), true),
            _ => {
                let body = path.as_bytes();
                let mut answer =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                answer.extend_from_slice(body);
                (answer, false)
            }
        };
        if stream.write_all(&answer).await.is_err() || close {
            return;
        }
    }
}

#[tokio::test]
async fn upstream_faults_give_502_json_and_never_desync_the_pool() {
    let upstream = faulty_upstream().await;
    let config = TestConfig::new()
        .upstream(UpstreamSpec {
            name: "faulty",
            strategy: "round_robin",
            servers: vec![(upstream, 1)],
            retries: 0,
            read_timeout: "5s",
            health: None,
        })
        .route("all", "/", "faulty");
    let proxy = TestProxy::start(&config).await;
    let http = client();
    // Warm the pool with keep-alive connections first, so the faults hit pooled connections.
    for i in 0..4 {
        let body = http
            .get(proxy.url(&format!("/warm/{i}")))
            .send()
            .await
            .expect("warm")
            .text()
            .await
            .expect("body");
        assert_eq!(body, format!("/warm/{i}"));
    }
    for fault in ["cl-te", "status-line", "huge-head", "mid-head"] {
        let response = http
            .get(proxy.url(&format!("/fault/{fault}")))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), 502, "{fault}");
        let body: serde_json::Value = response.json().await.expect("json body");
        assert_eq!(
            body["error"], "upstream connection failed",
            "{fault}: {body}"
        );
    }
    // The body had started: the client's response is cut, not completed or replaced.
    let truncated = http
        .get(proxy.url("/fault/truncated"))
        .send()
        .await
        .expect("head");
    assert_eq!(truncated.status(), 200);
    assert!(
        truncated.bytes().await.is_err(),
        "a cut body must not look complete"
    );

    // Every answer afterwards belongs to its own request, on a pool that saw all the faults.
    let answers = futures::future::join_all((0..40).map(|i| {
        let http = http.clone();
        let url = proxy.url(&format!("/after/{i}"));
        async move {
            let body = http
                .get(url)
                .send()
                .await
                .expect("after")
                .text()
                .await
                .expect("body");
            (i, body)
        }
    }))
    .await;
    for (i, body) in answers {
        assert_eq!(body, format!("/after/{i}"));
    }
    // A raw keep-alive connection sees exactly its own two answers, nothing smuggled.
    let seen = crate::attack::exchange(
        crate::smuggling::listener(&proxy),
        b"GET /fault/cl-te HTTP/1.1\r\nHost: t\r\n\r\nGET /after/raw HTTP/1.1\r\nHost: t\r\n\r\n",
        1,
        Duration::from_millis(300),
        patient(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(seen.statuses, [502]);

    // The server's failures were counted.
    let metrics = scrape(&proxy).await;
    let errors: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("scalelab_upstream_errors_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        errors >= 5.0,
        "upstream errors counted: {errors}\n{metrics}"
    );
}

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers one connection with `response` after reading the request head, and
/// hands back what it read.
async fn answer_once(response: &'static str) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.expect("read");
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        stream.write_all(response.as_bytes()).await.expect("write");
        let _ = stream.shutdown().await;
        String::from_utf8_lossy(&head).into_owned()
    });
    (addr, task)
}

#[tokio::test]
async fn returns_the_status_after_reading_a_chunked_body_and_sends_host_and_close() {
    let (addr, server) = answer_once(
        "HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let mut headers = HeaderMap::new();
    headers.insert("x-probe", HeaderValue::from_static("1"));
    let status = get(addr, "/health?deep=1", headers, Duration::from_secs(5)).await;
    assert_eq!(status.expect("an answer"), StatusCode::SERVICE_UNAVAILABLE);
    let head = server.await.expect("server").to_ascii_lowercase();
    assert!(
        head.starts_with("get /health?deep=1 http/1.1\r\n"),
        "{head}"
    );
    for field in [
        format!("host: {addr}"),
        "connection: close".into(),
        "x-probe: 1".into(),
    ] {
        assert!(head.contains(&field), "{field} in {head}");
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _server = tokio::spawn(async move {
        let accepted = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(accepted);
    });
    let error = get(addr, "/", HeaderMap::new(), Duration::from_millis(200))
        .await
        .expect_err("no answer");
    assert!(matches!(error, Error::Timeout(_)), "{error}");
    assert_eq!(error.to_string(), "timed out after 200ms");
}

#[tokio::test]
async fn a_body_cut_short_and_a_refused_connection_are_errors() {
    let (addr, _server) =
        answer_once("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this").await;
    let error = get(addr, "/", HeaderMap::new(), Duration::from_secs(5))
        .await
        .expect_err("a truncated body");
    assert!(matches!(error, Error::Http(_)), "{error}");

    let unused = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = unused.local_addr().expect("addr");
    drop(unused);
    let error = get(addr, "/", HeaderMap::new(), Duration::from_secs(5))
        .await
        .expect_err("refused");
    assert!(error.to_string().starts_with("connect: "), "{error}");
}

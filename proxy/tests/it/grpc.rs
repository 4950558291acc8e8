//! gRPC through the proxy: a gRPC-shaped call (HTTP/2, `application/grpc`, a length-prefixed
//! message, the status in trailers) from an h2c client, through the proxy, to an h2c echo
//! server on a `protocol = "h2c"` group, arrives whole both ways with its trailers, and is never
//! answered from the cache even on a cached route.

use crate::harness::*;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An h2c server echoing each request's body back as a gRPC response ending in trailers
/// (`grpc-status: 0`), which also says `cache-control: public` to tempt the cache, and
/// `x-seen-te` with the request's `te`.
struct EchoServer {
    server: ServerRuntime,
    calls: Arc<AtomicUsize>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let server = ServerRuntime::serve(move |tcp| {
            let calls = counted.clone();
            async move {
                let Ok(mut connection) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = connection.accept().await {
                    calls.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(echo(request, respond));
                }
            }
        });
        EchoServer { server, calls }
    }
}

async fn echo(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let content_type = request.headers().get("content-type").cloned();
    // gRPC servers may insist on `te: trailers`; say whether it arrived.
    let te = request.headers().get("te").cloned();
    let message = read_all(request.into_body()).await?;
    let mut response = http::Response::builder()
        .status(200)
        .header("cache-control", "public, max-age=60")
        .body(())
        .unwrap();
    if let Some(content_type) = content_type {
        response.headers_mut().insert("content-type", content_type);
    }
    if let Some(te) = te {
        response.headers_mut().insert("x-seen-te", te);
    }
    let mut stream = respond.send_response(response, false)?;
    stream.send_data(message, false)?;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers.insert("grpc-message", "echoed".parse().unwrap());
    stream.send_trailers(trailers)
}

/// Reads a body to its end, giving the flow-control window back as it goes.
async fn read_all(mut body: h2::RecvStream) -> Result<Bytes, h2::Error> {
    let mut all = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(all))
}

/// A gRPC message frame: not compressed, a 4-byte big-endian length, the message.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    Bytes::from(frame)
}

/// One unary call over a fresh h2c connection to `port`: the response head, body and trailers.
async fn call(
    port: u16,
    path: &str,
    frame: Bytes,
) -> (http::response::Parts, Bytes, Option<http::HeaderMap>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(frame, true).unwrap();
    let (parts, mut body) = response.await.unwrap().into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    (parts, Bytes::from(data), trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_passes_through_with_its_trailers_and_is_never_cached() {
    let server = EchoServer::start();
    let config = TestConfig::new()
        .tables(&format!(
            "[upstreams.grpc]\nprotocol = \"h2c\"\nservers = [ {{ addr = \"{}\" }} ]\n",
            server.server.addr
        ))
        .cache(&[("L1", 100)], 2)
        .cached_route("echo", "/echo.Echo", "grpc", "key = \"{path}\"")
        .client(Client::H2c);
    let _proxy = TestProxy::start(&config).await;
    let message: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    for n in 1..=2 {
        let (head, body, trailers) =
            call(config.proxy_port, "/echo.Echo/Say", grpc_frame(&message)).await;
        assert_eq!(head.status, 200);
        assert_eq!(head.version, http::Version::HTTP_2);
        assert_eq!(head.headers["content-type"], "application/grpc");
        assert_eq!(head.headers["x-seen-te"], "trailers");
        assert!(
            head.headers.get("x-cache").is_none_or(|v| v != "HIT"),
            "call {n} answered from the cache: {:?}",
            head.headers
        );
        assert_eq!(body, grpc_frame(&message), "call {n}: the echoed frame");
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers["grpc-status"], "0", "call {n}");
        assert_eq!(trailers["grpc-message"], "echoed", "call {n}");
        assert_eq!(server.calls.load(Ordering::Relaxed), n);
    }
}

//! The compression tests' upstream (`Origin`, answering `body_of(size)` with the response
//! controls the tests need) and client side (`fetch`: one request, its body decoded with the
//! real gzip, brotli and zstd decoders).

use crate::harness::*;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A deterministic JSON-like text of exactly `size` bytes.
pub fn body_of(size: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(size + 64);
    let mut i = 0u64;
    while text.len() < size {
        text.extend_from_slice(
            format!("{{\"id\":{i},\"name\":\"item {}\",\"ok\":true}},", i % 89).as_bytes(),
        );
        i += 1;
    }
    text.truncate(size);
    text
}

/// The upstream of these tests: `GET /...?size=N` answers `body_of(N)` (64 KiB by default),
/// with `ct=` (Content-Type, `application/json` by default), `ce=` (Content-Encoding, the body
/// unchanged), `cc=` (Cache-Control), `etag=`, `status=`, `range=1` (a 206 with its
/// Content-Range), `chunked=1` (the body streamed in 16 KiB pieces, length unknown) and
/// `hold=1` (two events, `EVENTS`, the second sent only after `release`). It counts requests
/// and keeps the last `Accept-Encoding` it was sent.
pub struct Origin {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    pub accept_encoding: Arc<Mutex<Option<String>>>,
    /// Lets a `hold=1` response send its second event.
    pub release: Arc<tokio::sync::Notify>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The two events of a `hold=1` response.
pub const EVENTS: [&str; 2] = ["data: first\n\n", "data: second\n\n"];

impl Origin {
    pub fn start() -> Origin {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let accept_encoding = Arc::new(Mutex::new(None));
        let release = Arc::new(tokio::sync::Notify::new());
        let (counted, seen, held) = (hits.clone(), accept_encoding.clone(), release.clone());
        let router = axum::Router::new().fallback(move |request: Request| {
            let (hits, seen, held) = (counted.clone(), seen.clone(), held.clone());
            async move { answer(request, &hits, &seen, held) }
        });
        let listener = {
            let _context = runtime.enter();
            let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            std.set_nonblocking(true).unwrap();
            tokio::net::TcpListener::from_std(std).unwrap()
        };
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Origin {
            addr,
            hits,
            accept_encoding,
            release,
            runtime: Some(runtime),
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        // Dropped inside the test's runtime, where a blocking shutdown would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn answer(
    request: Request,
    hits: &AtomicUsize,
    seen: &Mutex<Option<String>>,
    release: Arc<tokio::sync::Notify>,
) -> Response {
    if request.uri().path() == "/health" {
        return Response::new(Body::from("ok"));
    }
    hits.fetch_add(1, Ordering::SeqCst);
    *seen.lock().unwrap() = request
        .headers()
        .get("accept-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .map(|v| {
                v.replace("%20", " ")
                    .replace("%2F", "/")
                    .replace("%2C", ",")
            })
    };
    let size = param("size").map_or(64 * 1024, |s| s.parse().unwrap());
    let body = body_of(size);
    let mut builder = Response::builder()
        .status(param("status").map_or(200, |s| s.parse::<u16>().unwrap()))
        .header(
            "content-type",
            param("ct").unwrap_or_else(|| "application/json".to_string()),
        );
    for (name, header) in [("ce", "content-encoding"), ("cc", "cache-control")] {
        if let Some(value) = param(name) {
            builder = builder.header(header, value);
        }
    }
    if let Some(etag) = param("etag") {
        builder = builder.header("etag", format!("\"{etag}\""));
    }
    if param("range").is_some() {
        builder = builder.status(206).header(
            "content-range",
            format!("bytes 0-{}/{}", size - 1, size * 2),
        );
    }
    if param("hold").is_some() {
        use futures::StreamExt as _;
        let first = futures::stream::iter([Ok::<_, std::convert::Infallible>(EVENTS[0])]);
        let second = futures::stream::once(async move {
            release.notified().await;
            Ok(EVENTS[1])
        });
        return builder
            .body(Body::from_stream(first.chain(second)))
            .unwrap();
    }
    if param("chunked").is_some() {
        let pieces: Vec<Result<Vec<u8>, std::convert::Infallible>> =
            body.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
        return builder
            .body(Body::from_stream(futures::stream::iter(pieces)))
            .unwrap();
    }
    builder.body(Body::from(body)).unwrap()
}

pub fn decode(encoding: Option<&str>, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        None => out = bytes.to_vec(),
        Some("gzip") => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::decode_all(bytes).unwrap(),
        // An encoding the proxy passed through: the bytes as they came.
        Some(_) => out = bytes.to_vec(),
    }
    out
}

/// The `origin` group, the test's upstream its one server.
pub fn spec(origin: &Origin) -> UpstreamSpec<'static> {
    let mut spec = UpstreamSpec::new("origin", "round_robin", &[], &[]);
    spec.servers = vec![(origin.addr, 1)];
    spec
}

/// What one request got: status, `Content-Encoding`, the decoded body, and the head.
pub struct Got {
    pub status: u16,
    pub encoding: Option<String>,
    pub body: Vec<u8>,
    pub raw_len: usize,
    pub headers: reqwest::header::HeaderMap,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn fetch(
    http: &reqwest::Client,
    client: Client,
    url: String,
    accept: Option<&str>,
    method: reqwest::Method,
) -> Got {
    let mut request = http.request(method, url).header("X-Scalelab-Explain", "1");
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.version(), client.version());
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let encoding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    let raw = response.bytes().await.unwrap();
    Got {
        status,
        body: decode(encoding.as_deref(), &raw),
        raw_len: raw.len(),
        encoding,
        headers,
    }
}

pub fn explains(got: &Got, word: &str) -> bool {
    got.headers
        .get_all("x-scalelab-explain")
        .iter()
        .any(|v| v.to_str().unwrap().contains(&format!("compress: {word}")))
}

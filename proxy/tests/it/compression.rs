//! Issue 24 section 5 against the real binary: responses compressed by the client's
//! `Accept-Encoding` over HTTP/1.1 and h2, each body decoded by the test with the real gzip,
//! brotli and zstd decoders and compared byte for byte; the responses never compressed; one
//! cached object served to gzip, br, zstd and identity clients in turn from one upstream
//! fetch; the byte counters; a reload that changes the encodings; config mistakes by path.

use crate::harness::*;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A deterministic JSON-like text of exactly `size` bytes.
fn body_of(size: usize) -> Vec<u8> {
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
/// Content-Range) and `chunked=1` (the body streamed in 16 KiB pieces, length unknown). It
/// counts requests and keeps the last `Accept-Encoding` it was sent.
struct Origin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    accept_encoding: Arc<Mutex<Option<String>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Origin {
    fn start() -> Origin {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let accept_encoding = Arc::new(Mutex::new(None));
        let (counted, seen) = (hits.clone(), accept_encoding.clone());
        let router = axum::Router::new().fallback(move |request: Request| {
            let (hits, seen) = (counted.clone(), seen.clone());
            async move { answer(request, &hits, &seen) }
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
            runtime: Some(runtime),
        }
    }

    fn hits(&self) -> usize {
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

fn answer(request: Request, hits: &AtomicUsize, seen: &Mutex<Option<String>>) -> Response {
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
    if param("chunked").is_some() {
        let pieces: Vec<Result<Vec<u8>, std::convert::Infallible>> =
            body.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
        return builder
            .body(Body::from_stream(futures::stream::iter(pieces)))
            .unwrap();
    }
    builder.body(Body::from(body)).unwrap()
}

fn decode(encoding: Option<&str>, bytes: &[u8]) -> Vec<u8> {
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
fn spec(origin: &Origin) -> UpstreamSpec<'static> {
    let mut spec = UpstreamSpec::new("origin", "round_robin", &[], &[]);
    spec.servers = vec![(origin.addr, 1)];
    spec
}

/// What one request got: status, `Content-Encoding`, the decoded body, and the head.
struct Got {
    status: u16,
    encoding: Option<String>,
    body: Vec<u8>,
    raw_len: usize,
    headers: reqwest::header::HeaderMap,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn fetch(
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

fn explains(got: &Got, word: &str) -> bool {
    got.headers
        .get_all("x-scalelab-explain")
        .iter()
        .any(|v| v.to_str().unwrap().contains(&format!("compress: {word}")))
}

async fn negotiated_and_decoded(client: Client) {
    let origin = Origin::start();
    let config = TestConfig::new()
        .client(client)
        .upstream(spec(&origin))
        .route_with("data", "/data", "origin", "compress = {}")
        .route("plain", "/plain", "origin");
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let expected = body_of(64 * 1024);
    for (accept, encoding) in [
        (Some("gzip"), Some("gzip")),
        (Some("br"), Some("br")),
        (Some("zstd"), Some("zstd")),
        (Some("gzip, deflate, br, zstd"), Some("zstd")),
        (Some("zstd;q=0.2, br;q=0.5, gzip"), Some("gzip")),
        (Some("gzip;q=0, br;q=0"), None),
        (Some("identity"), None),
        (Some("deflate"), None),
        (None, None),
    ] {
        let got = fetch(
            &http,
            client,
            proxy.url("/data/items"),
            accept,
            reqwest::Method::GET,
        )
        .await;
        assert_eq!(got.status, 200, "{accept:?}");
        assert_eq!(got.encoding.as_deref(), encoding, "{accept:?}");
        assert!(got.body == expected, "{accept:?}: the decoded body differs");
        assert_eq!(got.header("vary"), Some("Accept-Encoding"), "{accept:?}");
        // The upstream of a compressing route is asked for identity.
        assert_eq!(*origin.accept_encoding.lock().unwrap(), None, "{accept:?}");
        match encoding {
            Some(word) => {
                assert_eq!(got.header("content-length"), None, "{accept:?}");
                assert!(
                    got.raw_len < expected.len() / 4,
                    "{accept:?}: {}",
                    got.raw_len
                );
                assert!(explains(&got, word), "{accept:?}");
            }
            None => {
                assert_eq!(
                    got.header("content-length"),
                    Some(expected.len().to_string().as_str())
                );
                assert!(explains(&got, "identity (not-accepted)"), "{accept:?}");
            }
        }
    }
    // A route without `compress` forwards Accept-Encoding and never encodes.
    let got = fetch(
        &http,
        client,
        proxy.url("/plain"),
        Some("gzip"),
        reqwest::Method::GET,
    )
    .await;
    assert_eq!(got.encoding, None);
    assert_eq!(got.header("vary"), None);
    assert_eq!(
        origin.accept_encoding.lock().unwrap().as_deref(),
        Some("gzip")
    );

    // A streamed body of unknown length, 4 MiB in 16 KiB pieces, is encoded as it comes; an
    // existing Vary is merged; a strong ETag becomes weak.
    let streamed = body_of(4 * 1024 * 1024);
    for encoding in ["gzip", "br", "zstd"] {
        let got = fetch(
            &http,
            client,
            proxy.url(&format!(
                "/data/stream?chunked=1&size={}&etag=v7&cc=max-age=60",
                streamed.len()
            )),
            Some(encoding),
            reqwest::Method::GET,
        )
        .await;
        assert_eq!(got.encoding.as_deref(), Some(encoding));
        assert!(
            got.body == streamed,
            "{encoding}: the decoded stream differs"
        );
        assert_eq!(got.header("etag"), Some("W/\"v7\""));
    }

    // The counters: every byte of the first gzip response went in, fewer came out.
    let text = scrape(&proxy).await;
    let series = |direction: &str, encoding: &str| {
        sample(
            &text,
            &format!(
                "scalelab_compression_bytes_total{{direction=\"{direction}\",encoding=\"{encoding}\"}}"
            ),
        )
        .unwrap_or_else(|| panic!("{direction} {encoding} in\n{text}"))
    };
    let gzip_in = (2 * expected.len() + streamed.len()) as f64;
    assert_eq!(series("in", "gzip"), gzip_in);
    assert!(series("out", "gzip") > 0.0 && series("out", "gzip") < gzip_in / 4.0);
    assert_eq!(series("in", "br"), (expected.len() + streamed.len()) as f64);
    assert_eq!(
        series("in", "zstd"),
        (2 * expected.len() + streamed.len()) as f64
    );
}

async fn never_compressed(client: Client) {
    let origin = Origin::start();
    let config = TestConfig::new()
        .client(client)
        .upstream(spec(&origin))
        .route_with(
            "data",
            "/data",
            "origin",
            "compress = { min_bytes = 2000, types = [\"application/json\", \"text/*\"] }",
        );
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let accept = Some("gzip, br, zstd");
    // (query, reason, varies): each response comes back as the upstream sent it.
    for (query, reason, varies) in [
        ("size=1999", "small", false),
        ("ce=x-test", "already-encoded", false),
        ("cc=public,%20no-transform", "no-transform", false),
        ("range=1", "range", false),
        ("ct=image/png", "type", false),
        ("ct=application/octet-stream", "type", false),
    ] {
        let got = fetch(
            &http,
            client,
            proxy.url(&format!("/data/x?{query}")),
            accept,
            reqwest::Method::GET,
        )
        .await;
        let passed = (query == "ce=x-test").then_some("x-test");
        assert_eq!(got.header("content-encoding"), passed, "{query}");
        let size = if query == "size=1999" {
            1999
        } else {
            64 * 1024
        };
        assert!(got.body == body_of(size), "{query}");
        assert_eq!(got.header("vary").is_some(), varies, "{query}");
        assert!(
            explains(&got, &format!("identity ({reason})")),
            "{query}: {:?}",
            got.headers
        );
    }
    // HEAD: no body, never a Content-Encoding, but the GET would vary.
    let got = fetch(
        &http,
        client,
        proxy.url("/data/h"),
        accept,
        reqwest::Method::HEAD,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.encoding, None);
    assert_eq!(got.header("vary"), Some("Accept-Encoding"));
    assert_eq!(got.raw_len, 0);
    // 204 and 304 carry no body.
    for status in [204, 304] {
        let got = fetch(
            &http,
            client,
            proxy.url(&format!("/data/s?status={status}")),
            accept,
            reqwest::Method::GET,
        )
        .await;
        assert_eq!(got.status, status);
        assert_eq!(got.encoding, None, "{status}");
        assert_eq!(got.header("vary"), None, "{status}");
    }
}

/// One upstream fetch; the cached identity bytes are encoded for each client in turn.
async fn cached_for_every_encoding(client: Client) {
    let origin = Origin::start();
    let config = TestConfig::new()
        .client(client)
        .upstream(spec(&origin))
        .tables(
            "[cache]\nmax_object_bytes = \"1MiB\"\n[[cache.tiers]]\nname = \"hot\"\nmax_entries = 10\nmax_bytes = \"4MiB\"\nttl = \"600s\"\n",
        )
        .raw_route(
            "[[routes]]\nname = \"data\"\npath = \"/data\"\nupstream = \"origin\"\ncache = { default_ttl = \"60s\" }\ncompress = { encodings = [\"zstd\", \"br\", \"gzip\"] }\n",
        );
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let size = 200 * 1024;
    let url = proxy.url(&format!("/data/cached?size={size}&etag=e1"));
    let expected = body_of(size);
    let first = fetch(
        &http,
        client,
        url.clone(),
        Some("gzip"),
        reqwest::Method::GET,
    )
    .await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.encoding.as_deref(), Some("gzip"));
    assert!(first.body == expected);
    for (accept, encoding) in [
        (Some("br"), Some("br")),
        (Some("zstd"), Some("zstd")),
        (None, None),
        (Some("identity, gzip;q=0"), None),
        (Some("gzip"), Some("gzip")),
        (Some("br;q=0.5, gzip"), Some("gzip")),
    ] {
        let got = fetch(&http, client, url.clone(), accept, reqwest::Method::GET).await;
        assert_eq!(got.header("x-cache"), Some("HIT"), "{accept:?}");
        assert_eq!(got.encoding.as_deref(), encoding, "{accept:?}");
        assert!(got.body == expected, "{accept:?}: the decoded body differs");
        assert_eq!(got.header("vary"), Some("Accept-Encoding"), "{accept:?}");
        match encoding {
            Some(word) => {
                assert_eq!(got.header("etag"), Some("W/\"e1\""), "{accept:?}");
                assert_eq!(got.header("content-length"), None, "{accept:?}");
                assert!(explains(&got, word), "{accept:?}");
            }
            None => {
                assert_eq!(got.header("etag"), Some("\"e1\""), "{accept:?}");
                assert_eq!(got.raw_len, size, "{accept:?}");
            }
        }
    }
    assert_eq!(origin.hits(), 1, "one upstream fetch for every encoding");
    // A client revalidating the weak ETag it was given gets a 304 from the cache, with the
    // same weak ETag and Vary.
    let response = http
        .get(url.clone())
        .header("accept-encoding", "gzip")
        .header("if-none-match", "W/\"e1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], "W/\"e1\"");
    assert_eq!(response.headers()["vary"], "Accept-Encoding");
    assert_eq!(origin.hits(), 1);
}

over_each_client!(
    negotiated_and_decoded,
    never_compressed,
    cached_for_every_encoding
);

/// A reload that changes a route's encodings applies to the next request (the client keeps
/// its connection; the request takes the new snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_encodings_apply_to_the_next_request() {
    let origin = Origin::start();
    let first = TestConfig::new().upstream(spec(&origin)).route_with(
        "data",
        "/data",
        "origin",
        "compress = { encodings = [\"gzip\"] }",
    );
    let proxy = TestProxy::start(&first).await;
    let http = proxy.http();
    let url = proxy.url("/data");
    let get = || {
        fetch(
            &http,
            Client::Http1,
            url.clone(),
            Some("gzip, br"),
            reqwest::Method::GET,
        )
    };
    assert_eq!(get().await.encoding.as_deref(), Some("gzip"));
    let second = TestConfig::same_ports(&first)
        .upstream(spec(&origin))
        .route_with(
            "data",
            "/data",
            "origin",
            "compress = { encodings = [\"br\", \"gzip\"] }",
        );
    proxy.write_config(&second.render());
    eventually(Duration::from_secs(10), "the reload to apply", || async {
        let got = get().await;
        assert!(got.body == body_of(64 * 1024));
        (got.encoding.as_deref() == Some("br")).then_some(())
    })
    .await;
}

#[test]
fn config_mistakes_are_reported_with_their_paths() {
    let (code, stderr) = check_text(
        "[proxy]\ncompress = { encodings = [\"lz4\"] }\n\
         [upstreams.g]\nservers = [{ addr = \"127.0.0.1:5000\" }]\n\
         [[routes]]\npath = \"/\"\nupstream = \"g\"\ncompress = { level = { gzip = 0 }, types = [\"*\"] }\n",
    );
    assert_ne!(code, Some(0), "{stderr}");
    for expected in [
        "proxy.compress.encodings[0]: unknown encoding \"lz4\"; valid: \"zstd\", \"br\", \"gzip\"",
        "routes[0].compress.types[0]: \"*\" is not a media type",
        "routes[0].compress.level.gzip: 0 is outside gzip's levels 1..=9",
    ] {
        assert!(stderr.contains(expected), "{expected}\nin\n{stderr}");
    }
}

//! Issue 24 section 5 against the real binary: responses compressed by the client's
//! `Accept-Encoding` over HTTP/1.1 and h2, each body decoded by the test with the real gzip,
//! brotli and zstd decoders and compared byte for byte; the responses never compressed; one
//! cached object served to gzip, br, zstd and identity clients in turn from one upstream
//! fetch; the byte counters; a reload that changes the encodings; config mistakes by path.

mod origin;

use crate::harness::*;
use origin::{body_of, explains, fetch, spec, Origin, EVENTS};
use std::time::Duration;

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

/// An HTTP/1.0 client has no chunked framing for a body of unknown length: it gets identity
/// (with `Vary`, since an HTTP/1.1 client would get gzip), with its `Content-Length`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_clients_get_identity() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start();
    let config = TestConfig::new().upstream(spec(&origin)).route_with(
        "data",
        "/data",
        "origin",
        "compress = {}",
    );
    let proxy = TestProxy::start(&config).await;
    let address = proxy.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(b"GET /data HTTP/1.0\r\nHost: example\r\nAccept-Encoding: gzip\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(patient(Duration::from_secs(10)), tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"),
        "{head}"
    );
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", 64 * 1024)),
        "{head}"
    );
    assert!(raw[split + 4..] == body_of(64 * 1024));
}

/// An event stream is flushed event by event: the client decodes the first event while the
/// upstream still holds the second (other responses are flushed only as the encoder's blocks
/// fill; `compression::tests` covers that policy).
#[tokio::test]
async fn each_event_of_a_compressed_event_stream_reaches_the_client_at_once() {
    let origin = Origin::start();
    let config = TestConfig::new().upstream(spec(&origin)).route_with(
        "events",
        "/events",
        "origin",
        "compress = { encodings = [\"gzip\"], types = [\"text/event-stream\"] }",
    );
    let proxy = TestProxy::start(&config).await;
    let mut response = proxy
        .http()
        .get(proxy.url("/events?hold=1&ct=text/event-stream"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut raw = Vec::new();
    let deadline = tokio::time::Instant::now() + patient(Duration::from_secs(5));
    while decoder.get_ref().as_slice() != EVENTS[0].as_bytes() {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await;
        let Ok(chunk) = chunk else {
            panic!(
                "the first event did not arrive while the upstream held the second: {} bytes, \
                 decoded {:?}",
                raw.len(),
                String::from_utf8_lossy(decoder.get_ref())
            );
        };
        let chunk = chunk.unwrap().expect("the stream ended early");
        raw.extend_from_slice(&chunk);
        std::io::Write::write_all(&mut decoder, &chunk).unwrap();
        // The decoder hands what it decoded to its writer on a flush.
        std::io::Write::flush(&mut decoder).unwrap();
    }
    origin.release.notify_one();
    while let Some(chunk) = response.chunk().await.unwrap() {
        std::io::Write::write_all(&mut decoder, &chunk).unwrap();
    }
    let all = decoder.finish().unwrap();
    assert_eq!(String::from_utf8(all).unwrap(), EVENTS.concat());
}

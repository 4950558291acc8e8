//! How the proxy reaches a group's servers: `protocol = "h2c"` (HTTP/2 in clear text with prior
//! knowledge) and `tls = { sni, ca, verify }` to a server whose certificate a test CA issued,
//! with health probes over the same transport; a certificate the configured CA did not issue
//! is a 502 in JSON and a counted `tls` error, fails the probe, and a reload that names the
//! right CA takes effect for the next request.

use crate::harness::*;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// A CA and a server certificate it issued for `localhost` and 127.0.0.1.
pub struct TestPki {
    pub ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: Vec<u8>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca = scalelab_test_support::Ca::new();
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
        TestPki {
            ca_pem: ca.pem(),
            chain: vec![leaf.der.into()],
            key: leaf.key_der,
        }
    }

    /// Writes the CA certificate to `dir/name` and returns the file's absolute path.
    pub fn write_ca(&self, dir: &std::path::Path, name: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, &self.ca_pem).unwrap();
        path.display().to_string()
    }

    /// A rustls server config with this certificate, offering `h2` then `http/1.1` by ALPN.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                self.chain.clone(),
                rustls::pki_types::PrivateKeyDer::Pkcs8(self.key.clone().into()),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// An HTTPS server answering every path with `{"server", "version", "path"}` over HTTP/1.1 or
/// h2 (whichever ALPN chose), on a runtime of its own.
pub struct TlsBackend {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    _server: ServerRuntime,
}

impl TlsBackend {
    pub fn start(name: &str, pki: &TestPki) -> TlsBackend {
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
        let hits = Arc::new(AtomicUsize::new(0));
        let (name, counted) = (name.to_string(), hits.clone());
        let server = ServerRuntime::serve(move |tcp| {
            let (acceptor, name, hits) = (acceptor.clone(), name.clone(), counted.clone());
            async move {
                // A handshake the client refuses (an unknown CA) just ends here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = hyper::service::service_fn(move |request| {
                    let (name, hits) = (name.clone(), hits.clone());
                    async move { Ok::<_, std::convert::Infallible>(answer(&name, &hits, request)) }
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            }
        });
        TlsBackend {
            addr: server.addr,
            hits,
            _server: server,
        }
    }

    /// Requests other than health probes.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

fn answer(
    name: &str,
    hits: &AtomicUsize,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<String> {
    if request.uri().path() != "/health" {
        hits.fetch_add(1, Ordering::Relaxed);
    }
    let body = serde_json::json!({
        "server": name,
        "version": format!("{:?}", request.version()),
        "path": request.uri().path(),
    });
    let mut response = hyper::Response::new(body.to_string());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The report of `addr` in group `group` from the admin API.
async fn server_in(proxy: &TestProxy, group: &str, addr: SocketAddr) -> Option<serde_json::Value> {
    let upstreams = proxy.upstreams().await;
    upstreams["upstreams"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == group)?["servers"]
        .as_array()?
        .iter()
        .find(|s| s["addr"] == addr.to_string())
        .cloned()
}

async fn wait_healthy(proxy: &TestProxy, group: &str, addr: SocketAddr) {
    eventually(
        Duration::from_secs(10),
        "the server to be healthy",
        || async {
            let report = server_in(proxy, group, addr).await?;
            (report["healthy"] == true).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_group_gets_http2_from_both_client_protocols_and_is_probed_over_h2c() {
    let backend = TestBackend::start("h2c");
    let config = TestConfig::new()
        .tables(&format!(
            "[upstreams.g]\nprotocol = \"h2c\"\nservers = [ {{ addr = \"{}\" }} ]\n\
             [upstreams.g.health_check]\ninterval = \"200ms\"\nhealthy_threshold = 1\n",
            backend.addr
        ))
        .route("api", "/api", "g")
        .client(Client::H2c);
    let proxy = TestProxy::start(&config).await;
    wait_healthy(&proxy, "g", backend.addr).await;
    for client in [Client::Http1, Client::H2c] {
        let response = client
            .build()
            .get(proxy.url("/api/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{client:?}");
        assert_eq!(response.version(), client.version());
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["server"], "h2c");
        assert_eq!(body["path"], "/api/x");
        assert_eq!(
            backend.last_version(),
            Some(axum::http::Version::HTTP_2),
            "{client:?}"
        );
    }
    // The probe spoke h2c too: its report says the check passed.
    let report = server_in(&proxy, "g", backend.addr).await.unwrap();
    assert_eq!(report["healthy"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_upstreams_are_verified_against_the_configured_ca() {
    let (pki, stranger) = (TestPki::new(), TestPki::new());
    let backend = TlsBackend::start("secure", &pki);
    let dir = tempfile::tempdir().unwrap();
    let right = pki.write_ca(dir.path(), "ca.pem");
    let wrong = stranger.write_ca(dir.path(), "other-ca.pem");
    let addr = backend.addr;
    let config = TestConfig::new()
        .tables(&format!(
            "[upstreams.good]\nservers = [ {{ addr = \"{addr}\" }} ]\n\
             tls = {{ enabled = true, sni = \"localhost\", ca = {right:?}, verify = true }}\n\
             [upstreams.good.health_check]\ninterval = \"200ms\"\nhealthy_threshold = 1\n\
             [upstreams.h2]\nprotocol = \"h2\"\nservers = [ {{ addr = \"{addr}\" }} ]\n\
             tls = {{ sni = \"localhost\", ca = {right:?} }}\n\
             [upstreams.h2.health_check]\ninterval = \"200ms\"\nhealthy_threshold = 1\n\
             [upstreams.wrong]\nretries = 0\nfail_timeout = \"500ms\"\nservers = [ {{ addr = \"{addr}\" }} ]\n\
             tls = {{ sni = \"localhost\", ca = {wrong:?} }}\n\
             [upstreams.probed]\nservers = [ {{ addr = \"{addr}\" }} ]\n\
             tls = {{ sni = \"localhost\", ca = {wrong:?} }}\n\
             [upstreams.probed.health_check]\ninterval = \"200ms\"\nunhealthy_threshold = 1\n"
        ))
        .route("good", "/good", "good")
        .route("h2", "/h2", "h2")
        .route("wrong", "/wrong", "wrong")
        .route("probed", "/probed", "probed");
    let proxy = TestProxy::start(&config).await;
    wait_healthy(&proxy, "good", addr).await;
    wait_healthy(&proxy, "h2", addr).await;
    let http = proxy.http();

    let response = http.get(proxy.url("/good/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (body["server"].as_str(), body["version"].as_str()),
        (Some("secure"), Some("HTTP/1.1"))
    );
    // protocol = "h2" negotiates HTTP/2 by ALPN.
    let body = get_json(&http, proxy.url("/h2/x")).await;
    assert_eq!(body["version"], "HTTP/2.0");
    assert_eq!(backend.hits(), 2);

    let refused = http.get(proxy.url("/wrong/x")).send().await.unwrap();
    assert_eq!(refused.status(), 502);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "upstream connection failed", "{body}");
    assert_eq!(body["upstream"], "wrong", "{body}");
    assert_eq!(body["detail"], "TLSHandshakeFailure", "{body}");
    assert_eq!(
        backend.hits(),
        2,
        "no request crossed an unverified handshake"
    );
    let series = format!(
        "scalelab_upstream_errors_total{{kind=\"tls\",server=\"{addr}\",upstream=\"wrong\"}}"
    );
    let text = eventually(Duration::from_secs(5), "the TLS error counted", || async {
        let text = scrape(&proxy).await;
        (sample(&text, &series) == Some(1.0)).then_some(text)
    })
    .await;
    assert_eq!(
        sample(
            &text,
            &format!("scalelab_upstream_errors_total{{kind=\"tls\",server=\"{addr}\",upstream=\"good\"}}")
        ),
        // Every server's error series exist from its start, at 0 (issue 31).
        Some(0.0),
        "{text}"
    );

    // The probe verifies as requests do: against the wrong CA the server fails its check, with
    // the handshake's failure as the reason, and the group answers 503.
    let report = eventually(Duration::from_secs(10), "a failed TLS probe", || async {
        let report = server_in(&proxy, "probed", addr).await?;
        (report["last_check"]["ok"] == false).then_some(report)
    })
    .await;
    assert_eq!(report["healthy"], false, "{report}");
    let detail = report["last_check"]["detail"].as_str().unwrap();
    assert!(detail.contains("TLSHandshakeFailure"), "{report}");
    assert_eq!(
        http.get(proxy.url("/probed/x"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(backend.hits(), 2);

    // A reload that names the right CA applies to the next request: TLS settings are live.
    proxy.write_config(&config.render().replace(&wrong, &right));
    eventually(
        Duration::from_secs(10),
        "the reloaded CA to verify",
        || async {
            let response = http.get(proxy.url("/wrong/x")).send().await.ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;
    assert_eq!(backend.hits(), 3);
}

//! The HTTPS lab of the TLS tests: a backend behind a proxy with a TLS listener, the test CA
//! and the certificates it made.

use super::clients::{client, Offer};
use crate::harness::{sample, TestBackend, TestConfig, TestProxy, UpstreamSpec};
use scalelab_test_support::{eventually, free_port, Ca};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A backend behind a proxy with an HTTPS listener, its certificates in `certs`.
pub struct TlsLab {
    pub backend: TestBackend,
    pub proxy: TestProxy,
    pub ca: Ca,
    pub certs: tempfile::TempDir,
    pub tls_port: u16,
    /// The config file's text, to reload it with changes.
    pub config_text: String,
}

impl TlsLab {
    /// `certificates`: (file stem, server names, names the leaf certificate holds); the first
    /// is the default.
    pub async fn start(min_version: &str, certificates: &[(&str, &[&str], &[&str])]) -> TlsLab {
        let ca = Ca::new();
        let certs = tempfile::tempdir().unwrap();
        std::fs::write(certs.path().join("ca.pem"), ca.pem()).unwrap();
        let mut tables = format!("[tls]\nmin_version = \"{min_version}\"\n");
        for (stem, server_names, leaf_names) in certificates {
            let (cert, key) = ca.leaf(leaf_names).install(certs.path(), stem);
            let names: Vec<String> = server_names.iter().map(|n| format!("{n:?}")).collect();
            tables.push_str(&format!(
                "[[tls.certificates]]\ncert = {:?}\nkey = {:?}\nserver_names = [{}]\n",
                cert.display().to_string(),
                key.display().to_string(),
                names.join(", ")
            ));
        }
        let backend = TestBackend::start("b1");
        let tls_port = free_port();
        let config = TestConfig::new()
            .proxy_setting(&format!("tls_listen = [\"127.0.0.1:{tls_port}\"]"))
            .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
            .route("all", "/", "g")
            .tables(&tables);
        let proxy = TestProxy::start(&config).await;
        let config_text = config.render();
        eventually(
            Duration::from_secs(5),
            "the server to be healthy",
            || async { (proxy.server_healthy(backend.addr).await == Some(true)).then_some(()) },
        )
        .await;
        TlsLab {
            backend,
            proxy,
            ca,
            certs,
            tls_port,
            config_text,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls_port))
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.tls_port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.certs.path().join("ca.pem")
    }

    pub fn client(&self, offer: Offer, alpn: &[&[u8]]) -> reqwest::Client {
        client(&self.ca.der(), offer, alpn, false, None)
    }

    pub async fn metrics(&self) -> String {
        crate::harness::client()
            .get(format!("{}/metrics", self.proxy.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn handshakes(&self, result: &str, version: &str) -> f64 {
        let series =
            format!("scalelab_tls_handshakes_total{{result=\"{result}\",version=\"{version}\"}}");
        sample(&self.metrics().await, &series).unwrap_or(0.0)
    }
}

pub async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// The newest reload of `trigger` that ended in `result`.
pub async fn newest(proxy: &TestProxy, trigger: &str, result: &str) -> Option<Value> {
    proxy
        .reloads()
        .await
        .into_iter()
        .find(|record| record["trigger"] == trigger && record["result"] == result)
}

//! HTTPS clients for the tests: reqwest on rustls (the proxy's own ring provider) with the
//! test CA as the only root, one TLS version, and the served certificate available; and curl.

use rustls::pki_types::CertificateDer;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Which protocol versions a client offers.
#[derive(Debug, Clone, Copy)]
pub enum Offer {
    Only12,
    Only13,
}

fn versions(offer: Offer) -> &'static [&'static SupportedProtocolVersion] {
    static ONLY_12: [&SupportedProtocolVersion; 1] = [&TLS12];
    static ONLY_13: [&SupportedProtocolVersion; 1] = [&TLS13];
    match offer {
        Offer::Only12 => &ONLY_12,
        Offer::Only13 => &ONLY_13,
    }
}

/// A client trusting only `ca_der`, offering `offer`, with ALPN `alpn`; every request opens a
/// new connection (so a new handshake) when `fresh`, and `resolve` sends a name to `addr`.
pub fn client(
    ca_der: &[u8],
    offer: Offer,
    alpn: &[&[u8]],
    fresh: bool,
    resolve: Option<(&str, SocketAddr)>,
) -> reqwest::Client {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .expect("the test CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(offer))
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Every handshake a full one: a resumed session shows the certificate of the session it
    // resumes, not the one the server serves now.
    config.resumption = rustls::client::Resumption::disabled();
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .tls_info(true)
        .timeout(scalelab_test_support::patient(Duration::from_secs(10)));
    if fresh {
        builder = builder.pool_max_idle_per_host(0);
    }
    if let Some((name, addr)) = resolve {
        builder = builder.resolve(name, addr);
    }
    builder.build().unwrap()
}

/// The DER of the leaf certificate the server sent for `response`.
pub fn served_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info with the peer certificate")
        .to_vec()
}

/// The DNS names of a certificate's subjectAltName.
pub fn dns_names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
            _ => None,
        })
        .collect()
}

/// `curl` with the CA file and `version_args`; returns (exit success, HTTP status, body).
pub fn curl(ca: &Path, url: &str, version_args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new("curl")
        .arg("--silent")
        .arg("--show-error")
        .arg("--cacert")
        .arg(ca)
        .args(version_args)
        .args(["--max-time", "20", "--write-out", "\n%{http_code}"])
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        output.status.success(),
        status.to_string(),
        format!("{body}{}", String::from_utf8_lossy(&output.stderr)),
    )
}

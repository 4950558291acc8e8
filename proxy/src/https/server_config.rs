//! The rustls server config of the HTTPS listeners: the protocol versions from
//! `[tls] min_version`, certificates from the `CertificateStore`, ALPN `h2` then `http/1.1`,
//! and the handshake counters as Pingora callbacks.

use super::handshakes::HandshakeCounter;
use super::CertificateStore;
use crate::config::tls::TlsVersion;
use pingora::listeners::tls::TlsSettings;
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, SupportedProtocolVersion};
use std::sync::Arc;

/// Why the listener's TLS config cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the TLS listener config: {0}")]
pub struct TlsSetupError(#[from] rustls::Error);

/// ALPN, most preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The versions a listener with this minimum offers.
pub fn versions(min: TlsVersion) -> &'static [&'static SupportedProtocolVersion] {
    static FROM_1_2: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];
    static FROM_1_3: [&SupportedProtocolVersion; 1] = [&TLS13];
    match min {
        TlsVersion::Tls12 => &FROM_1_2,
        TlsVersion::Tls13 => &FROM_1_3,
    }
}

/// Pingora's settings for one HTTPS listener serving `store`'s certificates.
///
/// # Errors
/// When rustls refuses the versions with its ring provider (a build problem).
pub fn settings(
    store: Arc<CertificateStore>,
    min: TlsVersion,
) -> Result<TlsSettings, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(min))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsSettings::from_server_config(
        Arc::new(config),
        Some(Box::new(HandshakeCounter)),
    ))
}

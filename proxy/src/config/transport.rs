//! How a group reaches its servers: the HTTP version (`protocol`) and TLS (`tls`). Validated in
//! `validate/transport`; `upstream::peer` turns them into Pingora peer options.

use pingora::utils::tls::WrappedX509;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// `protocol = "http1" | "h2" | "h2c"` of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, over TLS when the group has it.
    #[default]
    Http1,
    /// HTTP/2 over TLS, negotiated by ALPN (gRPC servers behind TLS).
    H2,
    /// HTTP/2 in clear text with prior knowledge: the server must speak it.
    H2c,
}

impl UpstreamProtocol {
    pub const NAMES: [&'static str; 3] = ["http1", "h2", "h2c"];

    pub fn parse(text: &str) -> Option<UpstreamProtocol> {
        match text {
            "http1" => Some(UpstreamProtocol::Http1),
            "h2" => Some(UpstreamProtocol::H2),
            "h2c" => Some(UpstreamProtocol::H2c),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// TLS to a group's servers (`tls = { enabled = true, ... }`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamTls {
    /// The name sent in the handshake and checked against the certificate.
    pub sni: String,
    /// Check the server's certificate (chain and name); off only for a lab's throwaway servers.
    pub verify: bool,
    /// The certificates to trust instead of the system's roots.
    pub ca: Option<CaBundle>,
}

/// A CA file read and parsed at validation, so a request never reads a file and a broken file
/// never reaches a running proxy. Two bundles are equal when their certificates are, so a
/// reload notices a rewritten file under the same name.
#[derive(Clone, Serialize)]
pub struct CaBundle {
    pub path: PathBuf,
    /// SHA-256 of the certificates' DER, shown by `/admin/config` and compared by reloads.
    pub sha256: String,
    #[serde(skip)]
    pub certificates: Arc<[WrappedX509]>,
    /// The first 8 bytes of the digest: the peer's `group_key`, because Pingora's connection
    /// pool does not tell peers apart by CA, and would otherwise hand a connection verified
    /// against one group's CA to another group of the same server and name.
    #[serde(skip)]
    pub pool_key: u64,
}

impl PartialEq for CaBundle {
    fn eq(&self, other: &CaBundle) -> bool {
        self.path == other.path && self.sha256 == other.sha256
    }
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

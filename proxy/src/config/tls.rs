//! The validated `[tls]` table: the lowest protocol version and the certificates, each already
//! read, parsed and checked against its key, so a `Config` that exists can serve every one of
//! them. `load` reads a pair from disk; `names` checks the `server_names` patterns.

mod load;
mod names;

pub use load::{load_pair, LoadedPair, PairError};
pub use names::normalize_server_name;

use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A certificate closer than this to its end is reported by `--check`.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// The `[tls]` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TlsConfig {
    pub min_version: TlsVersion,
    /// The first one is the default: it answers a handshake without SNI or with a name no
    /// certificate has.
    pub certificates: Vec<Certificate>,
}

/// The lowest TLS version the listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// One `[[tls.certificates]]` entry, loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Certificate {
    /// The PEM chain, as resolved from the config file's directory.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Lowercase exact names and `*.domain` wildcards.
    pub server_names: Vec<String>,
    /// Hex sha256 of the leaf certificate, so a reload's diff shows a rotated certificate.
    pub sha256: String,
    /// The leaf's `notAfter`, in Unix seconds.
    pub not_after: i64,
    /// The chain and signing key handed to rustls.
    #[serde(skip)]
    pub certified: Arc<CertifiedKey>,
}

/// Two loads of the same files are equal: the fingerprint stands for the key material.
impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert
            && self.key == other.key
            && self.server_names == other.server_names
            && self.sha256 == other.sha256
            && self.not_after == other.not_after
    }
}

impl Certificate {
    /// The name its metrics and messages use: its first server name, or its file for a default
    /// certificate without names.
    pub fn label(&self) -> String {
        match self.server_names.first() {
            Some(name) => name.clone(),
            None => self.cert.display().to_string(),
        }
    }
}

impl TlsConfig {
    /// One line per certificate for `--check`, with a warning for each that ends within
    /// `EXPIRY_WARNING` of `now_unix` (or has ended).
    pub fn summary(&self, now_unix: i64) -> String {
        let mut out = String::new();
        for (index, certificate) in self.certificates.iter().enumerate() {
            let left = certificate.not_after - now_unix;
            let names = if certificate.server_names.is_empty() {
                "(default, no names)".to_string()
            } else {
                certificate.server_names.join(", ")
            };
            out.push_str(&format!(
                "tls.certificates[{index}]: {names} | expires in {} days\n",
                left.div_euclid(86_400)
            ));
            if left < EXPIRY_WARNING.as_secs() as i64 {
                out.push_str(&format!(
                    "warning: tls.certificates[{index}] ({}) {}\n",
                    certificate.cert.display(),
                    if left <= 0 {
                        "has expired".to_string()
                    } else {
                        format!("expires in under 14 days ({} hours)", left / 3600)
                    }
                ));
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "tls/tests.rs"]
mod tests;

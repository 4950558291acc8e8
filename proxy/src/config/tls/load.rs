//! Reading one certificate/key pair: PEM parsing, the key checked against the leaf
//! certificate, and the facts the rest of the proxy shows (fingerprint, expiry).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A pair ready for rustls.
#[derive(Debug, Clone)]
pub struct LoadedPair {
    pub certified: Arc<CertifiedKey>,
    pub sha256: String,
    pub not_after: i64,
}

/// Why a pair cannot be used; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("{}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
}

impl PairError {
    /// Whether the key file (rather than the certificate) is at fault.
    pub fn is_key(&self) -> bool {
        match self {
            PairError::Key { .. } => true,
            PairError::Certificate { .. } => false,
        }
    }
}

/// Reads and checks the pair: at least one certificate, one private key (PKCS#8, PKCS#1 or
/// SEC1; RSA, ECDSA or Ed25519) of a type rustls can sign with, and the key matching the
/// leaf certificate.
///
/// # Errors
/// The first problem found, naming its file.
pub fn load_pair(cert: &Path, key: &Path) -> Result<LoadedPair, PairError> {
    let bad_cert = |reason: String| PairError::Certificate {
        path: cert.to_path_buf(),
        reason,
    };
    let bad_key = |reason: String| PairError::Key {
        path: key.to_path_buf(),
        reason,
    };
    let cert_bytes =
        std::fs::read(cert).map_err(|error| bad_cert(format!("cannot read it: {error}")))?;
    let key_bytes =
        std::fs::read(key).map_err(|error| bad_key(format!("cannot read it: {error}")))?;
    let chain = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad_cert(format!("not a PEM certificate chain: {error}")))?;
    let Some(leaf) = chain.first() else {
        return Err(bad_cert("no CERTIFICATE block found".to_string()));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|error| bad_cert(format!("not an X.509 certificate: {error}")))?;
    let not_after = parsed.validity().not_after.timestamp();
    let sha256 = format!("{:x}", Sha256::digest(leaf.as_ref()));
    let private = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|error| bad_key(format!("no usable PEM private key: {error}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private)
        .map_err(|error| bad_key(format!("unsupported private key: {error}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|error| {
        bad_key(format!(
            "does not match the certificate {}: {error}",
            cert.display()
        ))
    })?;
    Ok(LoadedPair {
        certified: Arc::new(certified),
        sha256,
        not_after,
    })
}

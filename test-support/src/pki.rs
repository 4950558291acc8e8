//! Certificates made in a test with rcgen (on ring, the workspace's one crypto provider): a CA,
//! leaves it signs, written as PEM files. One place for every suite that needs TLS (the proxy's
//! listener and upstream tests, the Redis TLS deployment).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A test CA.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// The leaf's DER, to compare with what a handshake served.
    pub der: Vec<u8>,
    /// The key as PKCS#8 DER, for a test server's rustls config.
    pub key_der: Vec<u8>,
}

impl Default for Ca {
    fn default() -> Ca {
        Ca::new()
    }
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().expect("a key pair");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "scalelab test CA");
        let cert = params.self_signed(&key).expect("the CA certificate");
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// A leaf for `names` (DNS names or IP addresses), valid for ten years.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_until(names, None)
    }

    /// A leaf that expires `in_` from now (or in ten years).
    pub fn leaf_until(&self, names: &[&str], in_: Option<Duration>) -> Leaf {
        let key = KeyPair::generate().expect("a key pair");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf parameters");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970");
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + (since_epoch - Duration::from_secs(3600));
        params.not_after =
            epoch + since_epoch + in_.unwrap_or(Duration::from_secs(10 * 365 * 86_400));
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("the leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

impl Leaf {
    /// Writes `NAME.pem` and `NAME-key.pem` into `dir` (write, then rename over the old ones,
    /// as a rotation does) and returns their paths.
    pub fn install(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        replace_file(&key, &self.key_pem);
        replace_file(&cert, &self.cert_pem);
        (cert, key)
    }
}

/// Replaces `path` with `text` the way a careful writer does: a new file, then a rename.
pub fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).expect("write the new file");
    std::fs::rename(&temporary, path).expect("rename it into place");
}

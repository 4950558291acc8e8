//! The lab's development CA: on the first `up`, a CA and a certificate for `localhost`
//! (and 127.0.0.1, ::1) signed by it are written under the data directory's `tls/`; later
//! starts reuse them, so a client that trusts `ca.pem` once keeps trusting the lab. The proxy
//! serves the pair through `--tls-cert`/`--tls-key` and reloads it when the files change.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the files are, under the lab's data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCertificates {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the development certificates cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DevCaError {
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("making the development certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

/// How long the localhost certificate is valid (the CA: ten times as long).
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

impl DevCertificates {
    /// The files' places under `data_dir`.
    pub fn under(data_dir: &Path) -> DevCertificates {
        let dir = data_dir.join("tls");
        DevCertificates {
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("localhost.pem"),
            key: dir.join("localhost-key.pem"),
        }
    }

    fn all_exist(&self) -> bool {
        [&self.ca, &self.ca_key, &self.cert, &self.key]
            .iter()
            .all(|path| path.is_file())
    }

    /// Creates the CA and the localhost pair unless all four files exist. Returns whether it
    /// created them.
    ///
    /// # Errors
    /// When a file cannot be written or rcgen fails.
    pub fn ensure(&self) -> Result<bool, DevCaError> {
        if self.all_exist() {
            return Ok(false);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let not_before = epoch + now.saturating_sub(Duration::from_secs(3600));

        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "scalelab development CA");
        ca.not_before = not_before;
        ca.not_after = epoch + now + LEAF_VALIDITY * 10;
        let ca_cert = ca.self_signed(&ca_key)?;

        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.not_before = not_before;
        leaf.not_after = epoch + now + LEAF_VALIDITY;
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;

        // The CA last: the four files exist only when all were written.
        write(&self.key, &key.serialize_pem())?;
        write(&self.cert, &cert.pem())?;
        write(&self.ca_key, &ca_key.serialize_pem())?;
        write(&self.ca, &ca_cert.pem())?;
        Ok(true)
    }
}

/// Writes `text` to a new file beside `path`, then renames it over `path` (the proxy watches
/// these files, and must never read half of one).
fn write(path: &Path, text: &str) -> Result<(), DevCaError> {
    let failed = |source| DevCaError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::DevCertificates;

    #[test]
    fn the_first_start_creates_the_files_and_later_ones_keep_them() {
        let dir = tempfile::tempdir().unwrap();
        let certs = DevCertificates::under(dir.path());
        assert_eq!(certs.ca, dir.path().join("tls/ca.pem"));
        assert!(certs.ensure().unwrap());
        let first = std::fs::read_to_string(&certs.cert).unwrap();
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!certs.ensure().unwrap());
        assert_eq!(std::fs::read_to_string(&certs.cert).unwrap(), first);
        std::fs::remove_file(&certs.key).unwrap();
        assert!(certs.ensure().unwrap(), "a missing file makes a new set");
        assert_ne!(std::fs::read_to_string(&certs.cert).unwrap(), first);
    }
}

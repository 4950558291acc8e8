//! A group's `protocol` and `tls` table: the protocol and TLS must agree (h2 is negotiated over
//! TLS, h2c is clear text), a verified handshake needs a name to check, and the CA file is read
//! and every certificate in it parsed here, so a running proxy never meets a broken one.

use crate::config::file::FileUpstreamTls;
use crate::config::transport::{CaBundle, UpstreamProtocol, UpstreamTls};
use pingora::tls::ServerName;
use pingora::utils::tls::WrappedX509;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use scalelab_common::problem::Problems;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The group's protocol and TLS settings (`None`: clear text), recording every problem.
pub(super) fn validate_transport(
    base: &str,
    protocol: Option<&str>,
    tls: Option<&FileUpstreamTls>,
    dir: &Path,
    problems: &mut Problems,
) -> (UpstreamProtocol, Option<UpstreamTls>) {
    let protocol = match protocol {
        None => UpstreamProtocol::Http1,
        Some(text) => UpstreamProtocol::parse(text).unwrap_or_else(|| {
            problems.push(
                format!("{base}.protocol"),
                format!(
                    "unknown protocol {text:?}; valid: {}",
                    UpstreamProtocol::NAMES.join(", ")
                ),
            );
            UpstreamProtocol::Http1
        }),
    };
    let tls = tls
        .filter(|tls| tls.enabled.unwrap_or(true))
        .map(|tls| validate_tls(&format!("{base}.tls"), tls, dir, problems));
    match (protocol, tls.is_some()) {
        (UpstreamProtocol::H2, false) => problems.push(
            format!("{base}.protocol"),
            "\"h2\" is HTTP/2 over TLS and needs tls = { enabled = true, ... }; \
             use \"h2c\" for HTTP/2 in clear text",
        ),
        (UpstreamProtocol::H2c, true) => problems.push(
            format!("{base}.protocol"),
            "\"h2c\" is HTTP/2 in clear text; use \"h2\" with tls",
        ),
        _ => {}
    }
    (protocol, tls)
}

fn validate_tls(
    base: &str,
    tls: &FileUpstreamTls,
    dir: &Path,
    problems: &mut Problems,
) -> UpstreamTls {
    let verify = tls.verify.unwrap_or(true);
    let sni = tls.sni.clone().unwrap_or_default();
    if sni.is_empty() {
        // Pingora skips every certificate check when the name is empty, so a verified
        // handshake must name the server.
        if verify {
            problems.push(
                format!("{base}.sni"),
                "needed to verify the server's certificate (or set verify = false)",
            );
        }
    } else if ServerName::try_from(sni.as_str()).is_err() {
        problems.push(
            format!("{base}.sni"),
            format!("{sni:?} is not a DNS name or an IP address"),
        );
    }
    let ca = tls.ca.as_deref().and_then(|path| {
        if !verify {
            problems.push(
                format!("{base}.ca"),
                "a CA is only used to verify certificates; remove it or set verify = true",
            );
        }
        read_ca(&dir.join(path))
            .map_err(|message| problems.push(format!("{base}.ca"), message))
            .ok()
    });
    UpstreamTls { sni, verify, ca }
}

/// Reads a PEM file of one or more CA certificates.
fn read_ca(path: &Path) -> Result<CaBundle, String> {
    let pem =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let mut certificates = Vec::new();
    let mut digest = Sha256::new();
    for (i, item) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let der = item.map_err(|error| {
            format!(
                "{}: certificate {}: not PEM: {error}",
                path.display(),
                i + 1
            )
        })?;
        digest.update(der.as_ref());
        // Parsed here with the parser Pingora uses, which panics on what it cannot parse.
        let wrapped = WrappedX509::try_new(der.to_vec(), |raw| {
            x509_parser::parse_x509_certificate(raw).map(|(_, certificate)| certificate)
        })
        .map_err(|error| {
            format!(
                "{}: certificate {}: not X.509: {error}",
                path.display(),
                i + 1
            )
        })?;
        certificates.push(wrapped);
    }
    if certificates.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    let digest = digest.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Ok(CaBundle {
        path: path.to_path_buf(),
        sha256: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
        certificates: certificates.into(),
        pool_key: u64::from_be_bytes(first),
    })
}

#[cfg(test)]
mod tests;

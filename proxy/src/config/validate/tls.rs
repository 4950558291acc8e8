//! `[proxy] tls_listen` and the `[tls]` table: addresses, the lowest version, and every
//! certificate read and checked against its key (so `--check` and a reload catch a bad file
//! exactly as start-up does), with unique server names.

use super::check::Check;
use crate::config::file::{FileConfig, FileTls};
use crate::config::tls::{load_pair, normalize_server_name, Certificate, TlsConfig, TlsVersion};
use scalelab_common::problem::Problems;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

/// `[proxy] tls_listen`: empty when absent (no TLS listener).
pub(super) fn validate_tls_listen(file: &FileConfig, problems: &mut Problems) -> Vec<SocketAddr> {
    file.proxy
        .tls_listen
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| problems.addr(&format!("proxy.tls_listen[{i}]"), text))
        .collect()
}

/// The `[tls]` table; `None` when the file has none. A TLS listener needs a certificate.
pub(super) fn validate_tls(
    file: &FileConfig,
    base: &Path,
    problems: &mut Problems,
) -> Option<TlsConfig> {
    let listens = file
        .proxy
        .tls_listen
        .as_ref()
        .is_some_and(|list| !list.is_empty());
    let has_certificates = file
        .tls
        .as_ref()
        .is_some_and(|tls| !tls.certificates.is_empty());
    if listens && !has_certificates {
        problems.push(
            "proxy.tls_listen",
            "a TLS listener needs at least one [[tls.certificates]] entry",
        );
    }
    file.tls.as_ref().map(|tls| TlsConfig {
        min_version: min_version(tls, problems),
        certificates: certificates(tls, base, problems),
    })
}

fn min_version(tls: &FileTls, problems: &mut Problems) -> TlsVersion {
    match tls.min_version.as_deref() {
        None | Some("1.2") => TlsVersion::Tls12,
        Some("1.3") => TlsVersion::Tls13,
        Some(other) => {
            problems.push(
                "tls.min_version",
                format!("{other:?} is not a TLS version this proxy offers; use \"1.2\" or \"1.3\""),
            );
            TlsVersion::Tls12
        }
    }
}

fn certificates(tls: &FileTls, base: &Path, problems: &mut Problems) -> Vec<Certificate> {
    // Which certificate claimed each name first, to report duplicates against it.
    let mut claimed: HashMap<String, usize> = HashMap::new();
    let mut loaded = Vec::new();
    for (index, entry) in tls.certificates.iter().enumerate() {
        let at = format!("tls.certificates[{index}]");
        let mut server_names = Vec::new();
        if entry.server_names.is_empty() && index > 0 {
            problems.push(
                format!("{at}.server_names"),
                "needs at least one name; only the first certificate (the default) may have none",
            );
        }
        for (n, text) in entry.server_names.iter().enumerate() {
            let path = format!("{at}.server_names[{n}]");
            match normalize_server_name(text) {
                Ok(name) => match claimed.get(&name) {
                    Some(first) => problems.push(
                        path,
                        format!("{name:?} is already a name of tls.certificates[{first}]"),
                    ),
                    None => {
                        claimed.insert(name.clone(), index);
                        server_names.push(name);
                    }
                },
                Err(reason) => problems.push(path, reason),
            }
        }
        let cert = base.join(&entry.cert);
        let key = base.join(&entry.key);
        match load_pair(&cert, &key) {
            Ok(pair) => loaded.push(Certificate {
                cert,
                key,
                server_names,
                sha256: pair.sha256,
                not_after: pair.not_after,
                certified: pair.certified,
            }),
            Err(error) => {
                let field = if error.is_key() { "key" } else { "cert" };
                problems.push(format!("{at}.{field}"), error.to_string());
            }
        }
    }
    loaded
}

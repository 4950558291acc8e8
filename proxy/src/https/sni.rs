//! The SNI table: which certificate answers a handshake for a server name. Exact names win
//! over `*.domain` wildcards, a wildcard covers exactly one more label, and the first
//! certificate is the default for a handshake without SNI or with a name nobody has.

use crate::config::tls::{Certificate, TlsConfig};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// One certificate as the table serves and reports it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub label: String,
    pub not_after: i64,
    pub certified: Arc<CertifiedKey>,
}

/// Immutable: a change builds a new table.
#[derive(Debug, Default)]
pub struct SniTable {
    entries: Vec<Entry>,
    /// Exact name -> index in `entries`.
    exact: HashMap<String, usize>,
    /// The domain of `*.domain` -> index in `entries`.
    wildcard: HashMap<String, usize>,
}

impl SniTable {
    /// The table of a `[tls]` table (empty without one).
    pub fn build(tls: Option<&TlsConfig>) -> SniTable {
        let certificates: &[Certificate] = tls.map_or(&[], |tls| &tls.certificates);
        let mut table = SniTable::default();
        for (index, certificate) in certificates.iter().enumerate() {
            for name in &certificate.server_names {
                let slot = match name.strip_prefix("*.") {
                    Some(domain) => table.wildcard.entry(domain.to_string()),
                    None => table.exact.entry(name.clone()),
                };
                // Validation refuses duplicates; should one slip through, the first wins.
                slot.or_insert(index);
            }
            table.entries.push(Entry {
                label: certificate.label(),
                not_after: certificate.not_after,
                certified: certificate.certified.clone(),
            });
        }
        table
    }

    /// The certificate for a handshake that sent `server_name` (or none).
    pub fn lookup(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let index = pick(&self.exact, &self.wildcard, server_name);
        self.entries.get(index).map(|entry| &entry.certified)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// The index of the certificate for `server_name`: exact match, then a wildcard one label
/// up, then 0 (the default). Case and a trailing dot do not matter.
pub fn pick(
    exact: &HashMap<String, usize>,
    wildcard: &HashMap<String, usize>,
    server_name: Option<&str>,
) -> usize {
    let Some(name) = server_name else {
        return 0;
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(index) = exact.get(&name) {
        return *index;
    }
    match name.split_once('.') {
        Some((first, domain)) if !first.is_empty() => wildcard.get(domain).copied().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
#[path = "sni/tests.rs"]
mod tests;

//! `CertificateStore`: the rustls certificate resolver of every HTTPS listener. A handshake
//! loads the current `SniTable` (one atomic load, no lock) and picks from it; `publish`
//! replaces the whole table, so a handshake sees either the old certificates or the new ones.

use super::sni::SniTable;
use crate::config::tls::TlsConfig;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct CertificateStore {
    table: ArcSwap<SniTable>,
}

impl CertificateStore {
    pub fn new(tls: Option<&TlsConfig>) -> CertificateStore {
        CertificateStore {
            table: ArcSwap::from_pointee(SniTable::build(tls)),
        }
    }

    /// Serves `tls`'s certificates to every later handshake.
    pub fn publish(&self, tls: Option<&TlsConfig>) {
        self.table.store(Arc::new(SniTable::build(tls)));
    }

    /// The table serving now.
    pub fn table(&self) -> Arc<SniTable> {
        self.table.load_full()
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.table.load().lookup(hello.server_name()).cloned()
    }
}

//! HTTPS on the listener: the certificate store rustls asks on every handshake (`resolver`: an
//! `ArcSwap` of an immutable SNI table, replaced whole when a reload or a rotated file brings
//! new certificates), the pure SNI matching (`sni`), the rustls server config of the HTTPS
//! listeners (`server_config`), the handshake counters (`handshakes`) and their series
//! (`exposition`).
//!
//! Certificates are read and checked by `config` (so `--check`, start-up and reloads share one
//! loader); watching their files is `watch`'s job, and every change goes through `reload`.

pub mod exposition;
pub mod handshakes;
mod resolver;
pub mod server_config;
pub mod sni;

pub use resolver::CertificateStore;

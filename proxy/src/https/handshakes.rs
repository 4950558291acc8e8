//! Handshakes by result and protocol version, counted by Pingora's TLS callbacks: a completed
//! handshake through `handshake_complete_callback` (which sees the negotiated version), a
//! failed one through `handshake_failed` (a vendored Pingora patch; the version is unknown
//! then, because nothing was agreed). `metrics` renders the counts at scrape time.

use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Handshakes since start: completed with TLS 1.2, completed with TLS 1.3, failed.
static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// The `(result, version)` label values of each count, in `COUNTS` order.
pub const LABELS: [(&str, &str); 3] = [("ok", "1.2"), ("ok", "1.3"), ("failed", "unknown")];

/// Every count with its labels.
pub fn counts() -> impl Iterator<Item = ((&'static str, &'static str), u64)> {
    LABELS
        .into_iter()
        .zip(COUNTS.iter().map(|count| count.load(Ordering::Relaxed)))
}

/// The slot of a negotiated version as rustls names it (`TLSv1_2`, `TLSv1_3`). The listener
/// offers nothing else, so anything else would be a bug, counted as a failure.
fn slot(version: Option<&str>) -> usize {
    match version {
        Some(name) if name.ends_with("1_2") || name.ends_with("1.2") => 0,
        Some(name) if name.ends_with("1_3") || name.ends_with("1.3") => 1,
        _ => 2,
    }
}

/// The callbacks given to every HTTPS listener.
pub struct HandshakeCounter;

#[async_trait]
impl TlsAccept for HandshakeCounter {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        COUNTS[slot(tls.version())].fetch_add(1, Ordering::Relaxed);
        None
    }

    fn handshake_failed(&self, error: &pingora::Error) {
        tracing::debug!(%error, "TLS handshake failed");
        COUNTS[2].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn versions_land_in_their_slot() {
        assert_eq!(slot(Some("TLSv1_2")), 0);
        assert_eq!(slot(Some("TLSv1_3")), 1);
        assert_eq!(slot(Some("TLSv1.3")), 1);
        assert_eq!(slot(Some("SSLv3")), 2);
        assert_eq!(slot(None), 2);
    }
}

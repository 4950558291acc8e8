//! The TLS series of `/metrics`, built at scrape time: each served certificate's expiry and
//! the handshake counts.

use super::handshakes;
use super::sni::SniTable;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Adds the TLS series to `registry`. Certificates come from the table serving now, so a
/// rotated or removed one is shown as it is served; the handshake series are always present.
///
/// # Errors
/// When a series cannot be registered (a programming error).
pub fn register(registry: &Registry, table: &SniTable) -> prometheus::Result<()> {
    let expiry = IntGaugeVec::new(
        Opts::new(
            "scalelab_tls_certificate_expiry_timestamp_seconds",
            "When each served certificate expires (its notAfter), by its first server name.",
        ),
        &["name"],
    )?;
    registry.register(Box::new(expiry.clone()))?;
    for entry in table.entries() {
        expiry
            .with_label_values(&[entry.label.as_str()])
            .set(entry.not_after);
    }
    let handshakes_total = IntCounterVec::new(
        Opts::new(
            "scalelab_tls_handshakes_total",
            "TLS handshakes on the HTTPS listeners by result (ok, failed) and negotiated version.",
        ),
        &["result", "version"],
    )?;
    registry.register(Box::new(handshakes_total.clone()))?;
    for ((result, version), count) in handshakes::counts() {
        handshakes_total
            .with_label_values(&[result, version])
            .inc_by(count);
    }
    Ok(())
}

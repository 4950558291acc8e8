//! The export's series, built at scrape time from its counters.

use prometheus::{IntCounterVec, Opts, Registry};
use std::sync::atomic::Ordering;

/// `scalelab_tracing_spans_dropped_total{reason}` and `scalelab_tracing_spans_exported_total`.
///
/// # Errors
/// A series cannot be registered (a programming error).
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    let counters = super::counters();
    let dropped = IntCounterVec::new(
        Opts::new(
            "scalelab_tracing_spans_dropped_total",
            "Spans not exported: the export queue was full (queue_full: the collector is slow \
             or gone) or the collector did not accept them (export_failed).",
        ),
        &["reason"],
    )?;
    registry.register(Box::new(dropped.clone()))?;
    dropped
        .with_label_values(&["queue_full"])
        .inc_by(counters.dropped_queue_full.load(Ordering::Relaxed));
    dropped
        .with_label_values(&["export_failed"])
        .inc_by(counters.dropped_export_failed.load(Ordering::Relaxed));
    let exported = IntCounterVec::new(
        Opts::new(
            "scalelab_tracing_spans_exported_total",
            "Spans the OTLP collector accepted.",
        ),
        &[],
    )?;
    registry.register(Box::new(exported.clone()))?;
    exported
        .with_label_values::<&str>(&[])
        .inc_by(counters.exported.load(Ordering::Relaxed));
    Ok(())
}

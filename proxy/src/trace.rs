//! Tracing (issue 29): W3C trace context on every request when `[tracing]` is configured, and
//! the export of sampled requests' spans over OTLP/HTTP.
//!
//! `request` is what one request carries (its trace context and, when it is sampled or shows
//! `Server-Timing`, its `Timeline` of phases and upstream attempts) and the spans made of it at
//! its end; `export_series` is the export's series. The exporter itself (a bounded queue that
//! drops and counts, one export thread) is `scalelab_common::trace::export`, shared with the
//! lab's services. Without `[tracing]` nothing here runs on the request path: the context is
//! `None` and `traceparent` passes through as the client sent it.

pub mod export_series;
pub mod request;
#[cfg(test)]
mod tests;

use crate::config::tracing::TracingSettings;
use arc_swap::ArcSwapOption;
use scalelab_common::trace::export::{Counters, ExportError, ExportSettings, Exporter, SpanRecord};
use std::sync::{Arc, LazyLock, Mutex};

/// The running exporter, swapped whole by a reload that changes the export settings.
static EXPORTER: ArcSwapOption<Exporter> = ArcSwapOption::const_empty();
/// The settings `EXPORTER` was started with (compared on every reload).
static RUNNING: Mutex<Option<ExportSettings>> = Mutex::new(None);
/// The export's counts, kept across exporters so a reload does not reset the series.
static COUNTERS: LazyLock<Arc<Counters>> = LazyLock::new(Arc::default);

/// Starts, replaces or stops the exporter to match `settings` (start-up and every reload); the
/// running one is kept when its settings did not change. A replaced exporter sends what it
/// queued on its own thread, so a reload never waits for a collector.
///
/// # Errors
/// The new exporter cannot be built (the running one is kept).
pub fn reconfigure(settings: Option<&TracingSettings>) -> Result<(), ExportError> {
    let wanted = settings.and_then(TracingSettings::export);
    let mut running = scalelab_common::sync::lock(&RUNNING);
    if *running == wanted {
        return Ok(());
    }
    let exporter = match &wanted {
        Some(export) => Some(Arc::new(Exporter::start(export, Arc::clone(&COUNTERS))?)),
        None => None,
    };
    EXPORTER.store(exporter);
    *running = wanted;
    Ok(())
}

/// Queues finished spans; without an exporter they are discarded.
pub(crate) fn submit(spans: impl IntoIterator<Item = SpanRecord>) {
    let guard = EXPORTER.load();
    if let Some(exporter) = guard.as_ref() {
        for span in spans {
            exporter.submit(span.into_data());
        }
    }
}

/// Stops the export at exit, sending what is queued within `bound` (a dead collector cannot
/// hold the exit longer).
pub fn shutdown(bound: std::time::Duration) {
    if let Some(exporter) = EXPORTER.swap(None) {
        // A request still holding the exporter (none is left at exit) keeps it running instead.
        if let Ok(exporter) = Arc::try_unwrap(exporter) {
            if !exporter.close(bound) {
                tracing::warn!("the trace exporter did not finish within {bound:?}; spans lost");
            }
        }
    }
}

pub(crate) fn counters() -> &'static Counters {
    &COUNTERS
}

//! Sending finished spans to an OTLP/HTTP collector (`http/protobuf`) without ever making the
//! caller wait: `Exporter::submit` puts a span in a bounded queue or, when the queue is full,
//! drops it and counts it. One thread per exporter takes batches from the queue and posts them
//! with `opentelemetry-otlp`'s exporter on a one-thread tokio runtime of its own.
//!
//! Our queue rather than `opentelemetry_sdk`'s `BatchSpanProcessor`: that one also drops when
//! full, but only logs how many at shutdown, and the operators need the count as a series
//! (`scalelab_tracing_spans_dropped_total`). The spans are built as `SpanData` directly
//! (`SpanRecord::into_data`): the proxy knows each phase's start and end only when the request
//! is over, and building a tracer's live spans per phase would cost more on every request.

use super::{SpanId, TraceId};
use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use opentelemetry_sdk::Resource;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use opentelemetry::trace::SpanKind as Kind;
pub use opentelemetry::KeyValue as Attribute;

/// Spans waiting for the export thread; beyond this they are dropped and counted.
pub const QUEUE_SPANS: usize = 4096;
/// At most this many spans in one export request.
const MAX_BATCH: usize = 512;
/// How long a batch may wait for more spans before it is sent (the SDK's default is 5 s; one
/// second keeps the lab's waterfall current).
const BATCH_DELAY: Duration = Duration::from_secs(1);

/// Where and as whom spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// The collector's base URL (`http://127.0.0.1:4318`); spans go to `<base>/v1/traces`
    /// unless the URL already names a path.
    pub endpoint: String,
    /// Extra request headers (a collector's authorization).
    pub headers: Vec<(String, String)>,
    /// The resource's `service.name`.
    pub service_name: String,
    /// How long one export request may take.
    pub timeout: Duration,
}

/// The export's counts, shared by every exporter a process starts (a reload's new exporter
/// keeps counting where the old one stopped).
#[derive(Debug, Default)]
pub struct Counters {
    /// Dropped because the queue was full (the collector is slow or gone).
    pub dropped_queue_full: AtomicU64,
    /// Dropped because the collector refused them or could not be reached.
    pub dropped_export_failed: AtomicU64,
    /// Accepted by the collector.
    pub exported: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("invalid OTLP endpoint \"{0}\": {1}")]
    Endpoint(String, String),
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
    #[error("cannot start the export thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running export: a bounded queue and its thread. Dropping it closes the queue; the thread
/// sends what is left (each request bounded by the timeout) and ends by itself, so a reload or
/// an exit never waits for a dead collector.
#[derive(Debug)]
pub struct Exporter {
    sender: SyncSender<SpanData>,
    counters: Arc<Counters>,
    /// Closed by the export thread when it ends (`close` waits for it); in a mutex only so
    /// that the exporter can be shared between request threads.
    done: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl Exporter {
    /// Builds the OTLP exporter and starts its thread.
    ///
    /// # Errors
    /// The endpoint is not a URL, a header cannot be sent, or the thread cannot start.
    pub fn start(
        settings: &ExportSettings,
        counters: Arc<Counters>,
    ) -> Result<Exporter, ExportError> {
        let url = traces_url(&settings.endpoint)?;
        let client = reqwest::Client::builder()
            // The collector is named by the config; an environment proxy must not redirect it.
            .no_proxy()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| ExportError::Build(e.to_string()))?;
        let headers: HashMap<String, String> = settings.headers.iter().cloned().collect();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(settings.timeout)
            .with_headers(headers)
            .with_http_client(client)
            .build()
            .map_err(|e| ExportError::Build(e.to_string()))?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(settings.service_name.clone())
                .build(),
        );
        let (sender, receiver) = mpsc::sync_channel(QUEUE_SPANS);
        let (finished, done) = mpsc::channel::<()>();
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("otlp-export".to_string())
            .spawn(move || {
                run(exporter, receiver, &thread_counters);
                drop(finished);
            })?;
        Ok(Exporter {
            sender,
            counters,
            done: std::sync::Mutex::new(done),
        })
    }

    /// Closes the queue and waits up to `bound` for the thread to send what is left (an exit:
    /// the last requests' spans are not lost to the batch delay). Returns whether it finished.
    pub fn close(self, bound: Duration) -> bool {
        let Exporter { sender, done, .. } = self;
        drop(sender);
        let done = done
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        matches!(
            done.recv_timeout(bound),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        )
    }

    /// Queues one span; never blocks. A full queue drops the span and counts it.
    pub fn submit(&self, span: SpanData) {
        match self.sender.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `<base>/v1/traces`, or the URL as given when it already has a path (the OTLP convention for
/// a base endpoint versus a signal's endpoint).
fn traces_url(endpoint: &str) -> Result<String, ExportError> {
    let uri: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| {
        ExportError::Endpoint(endpoint.to_string(), e.to_string())
    })?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => {}
        _ => {
            return Err(ExportError::Endpoint(
                endpoint.to_string(),
                "expected http:// or https:// and a host".to_string(),
            ))
        }
    }
    Ok(match uri.path() {
        "" | "/" => format!("{}/v1/traces", endpoint.trim_end_matches('/')),
        _ => endpoint.to_string(),
    })
}

/// The export thread: waits for a first span, gathers more for up to `BATCH_DELAY` (or until
/// `MAX_BATCH`), posts the batch, and ends once the queue is closed and empty.
fn run(
    exporter: opentelemetry_otlp::SpanExporter,
    receiver: mpsc::Receiver<SpanData>,
    counters: &Counters,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("otlp export thread: no runtime ({error}); spans are dropped");
            return;
        }
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = receiver.recv() {
        batch.push(first);
        let deadline = Instant::now() + BATCH_DELAY;
        let mut closed = false;
        while batch.len() < MAX_BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(span) => batch.push(span),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let count = batch.len() as u64;
        let spans = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        match runtime.block_on(exporter.export(spans)) {
            Ok(()) => counters.exported.fetch_add(count, Ordering::Relaxed),
            Err(_) => counters
                .dropped_export_failed
                .fetch_add(count, Ordering::Relaxed),
        };
        if closed {
            break;
        }
    }
}

/// One finished span, in the terms the proxy and the services know; `into_data` makes the
/// SDK's `SpanData` of it.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a trace's root span.
    pub parent: Option<SpanId>,
    /// The parent span is another process's (it came in a `traceparent`).
    pub parent_remote: bool,
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// `Some(description)` marks the span's status as an error.
    pub error: Option<Cow<'static, str>>,
}

impl SpanRecord {
    pub fn into_data(self) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                opentelemetry::trace::TraceId::from_bytes(self.trace_id.0),
                opentelemetry::trace::SpanId::from_bytes(self.span_id.0),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: self
                .parent
                .map_or(opentelemetry::trace::SpanId::INVALID, |p| {
                    opentelemetry::trace::SpanId::from_bytes(p.0)
                }),
            parent_span_is_remote: self.parent_remote,
            span_kind: self.kind,
            name: self.name,
            start_time: self.start,
            end_time: self.end,
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match self.error {
                Some(description) => Status::Error { description },
                None => Status::Unset,
            },
            instrumentation_scope: InstrumentationScope::builder("scalelab").build(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn a_base_endpoint_gets_the_traces_path() {
        let url = |s: &str| traces_url(s).map_err(|e| e.to_string());
        assert_eq!(
            url("http://127.0.0.1:4318"),
            Ok("http://127.0.0.1:4318/v1/traces".to_string())
        );
        assert_eq!(
            url("http://collector:4318/"),
            Ok("http://collector:4318/v1/traces".to_string())
        );
        assert_eq!(
            url("https://x.example/otlp/v1/traces"),
            Ok("https://x.example/otlp/v1/traces".to_string())
        );
        assert!(url("127.0.0.1:4318").is_err());
        assert!(url("ftp://h/").is_err());
    }
}

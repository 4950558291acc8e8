//! The lab services' part in a trace (issue 29): a request that arrives with a sampled W3C
//! `traceparent` gets a server span, and the work it does inside (the gateway's calls to its
//! dependencies, the database's queries) child spans, exported over OTLP/HTTP to the endpoint
//! the binary was given (`--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`; `scalelab up`
//! sets it from `[lab] otlp_endpoint`).
//!
//! The services join traces and start none: a request without a sampled parent (a health
//! check, a load test straight at a gateway) records nothing, so only the proxy's sampling
//! decides what is kept. The current span travels in a tokio task-local, so the gateway's two
//! concurrent calls (`tokio::join!` in one task) are both children of its server span.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use scalelab_common::trace::export::{
    Attribute, Counters, ExportSettings, Exporter, Kind, SpanRecord,
};
use scalelab_common::trace::{self as w3c, SpanId, TraceId};

/// The process's exporter, set once at start when an endpoint is configured.
static EXPORTER: OnceLock<Exporter> = OnceLock::new();

tokio::task_local! {
    /// The span the current request's work belongs to.
    static CURRENT: Current;
}

/// A sampled span in progress: its trace and its own id.
#[derive(Debug, Clone, Copy)]
struct Current {
    trace_id: TraceId,
    span_id: SpanId,
}

/// Starts the exporter for `service` when `endpoint` is given; without it tracing stays off.
///
/// # Errors
/// The endpoint is not an http(s) URL, or the export thread cannot start.
pub fn init(service: &str, endpoint: Option<&str>) -> Result<(), w3c::export::ExportError> {
    let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) else {
        return Ok(());
    };
    let exporter = Exporter::start(
        &ExportSettings {
            endpoint: endpoint.to_string(),
            headers: Vec::new(),
            service_name: service.to_string(),
            timeout: std::time::Duration::from_secs(5),
        },
        Arc::new(Counters::default()),
    )?;
    let _ = EXPORTER.set(exporter);
    Ok(())
}

/// The middleware: a server span around a request that carries a sampled `traceparent`.
pub async fn layer(request: Request, next: Next) -> Response {
    let Some(exporter) = EXPORTER.get() else {
        return next.run(request).await;
    };
    let parent = request
        .headers()
        .get(w3c::TRACEPARENT)
        .and_then(|value| w3c::parse_traceparent(value.as_bytes()))
        .filter(|parent| parent.sampled);
    let Some(parent) = parent else {
        return next.run(request).await;
    };
    let current = Current {
        trace_id: parent.trace_id,
        span_id: SpanId::random(),
    };
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let start = SystemTime::now();
    let response = CURRENT.scope(current, next.run(request)).await;
    let status = response.status().as_u16();
    exporter.submit(
        SpanRecord {
            trace_id: current.trace_id,
            span_id: current.span_id,
            parent: Some(parent.span_id),
            parent_remote: true,
            name: Cow::Owned(format!("{method} {path}")),
            kind: Kind::Server,
            start,
            end: SystemTime::now(),
            attributes: vec![
                Attribute::new("http.request.method", method),
                Attribute::new("url.path", path),
                Attribute::new("http.response.status_code", i64::from(status)),
            ],
            error: (status >= 500).then(|| Cow::Owned(status.to_string())),
        }
        .into_data(),
    );
    response
}

/// Spans begun by a request and ended by later work of this process (a task's queue wait, begun
/// by `POST /tasks` and ended when a worker of this process starts the task), by key. Bounded:
/// past `MAX_PARKED` a new one is not kept (a task run by another worker process never comes
/// back for its span).
static PARKED: std::sync::Mutex<Option<std::collections::HashMap<String, Child>>> =
    std::sync::Mutex::new(None);
const MAX_PARKED: usize = 10_000;

/// Keeps `span` until `unpark(key)`.
pub fn park(key: String, span: Child) {
    let mut parked = scalelab_common::sync::lock(&PARKED);
    let map = parked.get_or_insert_with(Default::default);
    if map.len() < MAX_PARKED {
        map.insert(key, span);
    }
}

/// The span parked under `key`, if any.
pub fn unpark(key: &str) -> Option<Child> {
    scalelab_common::sync::lock(&PARKED)
        .as_mut()
        .and_then(|map| map.remove(key))
}

/// A child span of the current request's span, begun now; `None` when the request is not
/// traced. The caller ends it with `end`.
#[derive(Debug)]
pub struct Child {
    parent: Current,
    span_id: SpanId,
    name: Cow<'static, str>,
    kind: Kind,
    start: SystemTime,
}

impl Child {
    pub fn begin(name: impl Into<Cow<'static, str>>, kind: Kind) -> Option<Child> {
        EXPORTER.get()?;
        let parent = CURRENT.try_with(|current| *current).ok()?;
        Some(Child {
            parent,
            span_id: SpanId::random(),
            name: name.into(),
            kind,
            start: SystemTime::now(),
        })
    }

    /// The `traceparent` to send with an outgoing call, naming this span as the parent.
    pub fn traceparent(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&w3c::format_traceparent(
            self.parent.trace_id,
            self.span_id,
            true,
        ))
        .ok()
    }

    /// Another child of the same parent, begun now (the worker's run after its queue wait).
    pub fn sibling(&self, name: impl Into<Cow<'static, str>>, kind: Kind) -> Child {
        Child {
            parent: self.parent,
            span_id: SpanId::random(),
            name: name.into(),
            kind,
            start: SystemTime::now(),
        }
    }

    /// Moves the start (a sibling that begins exactly where another span ended).
    #[must_use]
    pub fn starting_at(mut self, start: SystemTime) -> Child {
        self.start = start;
        self
    }

    /// Ends the span now with its attributes (`error` marks it failed); returns the end time.
    pub fn end(self, attributes: Vec<Attribute>, error: Option<String>) -> SystemTime {
        let end = SystemTime::now();
        if let Some(exporter) = EXPORTER.get() {
            exporter.submit(
                SpanRecord {
                    trace_id: self.parent.trace_id,
                    span_id: self.span_id,
                    parent: Some(self.parent.span_id),
                    parent_remote: false,
                    name: self.name,
                    kind: self.kind,
                    start: self.start,
                    end,
                    attributes,
                    error: error.map(Cow::Owned),
                }
                .into_data(),
            );
        }
        end
    }
}

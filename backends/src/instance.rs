//! What every backend instance shares: its name (`<kind>-<port>`), its own Prometheus registry, its chaos knobs,
//! and the routes and layers common to all kinds (`/health`, `/metrics`, `/admin/chaos`, JSON 404/405,
//! `X-Processing-Time`, a body limit).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use serde_json::json;

use crate::chaos::{self, Chaos, ChaosSettings};
use crate::error::AppError;

/// The largest request body any backend reads; bigger bodies get a 413 instead of being buffered.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Latency buckets in seconds; the crate default starts at 5 ms, too coarse for loopback calls.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why an [`Instance`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// A chaos knob is out of range.
    #[error("invalid chaos settings: {0}")]
    Chaos(String),
    /// A metric could not be created or registered (a bad name or a duplicate).
    #[error("registering the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// One running backend: identity, metrics registry and chaos knobs.
#[derive(Debug)]
pub struct Instance {
    name: String,
    registry: Registry,
    chaos: Chaos,
    requests: IntCounterVec,
    durations: HistogramVec,
}

impl Instance {
    /// Creates the instance `<kind>-<port>` with a fresh registry holding the HTTP and process metrics.
    ///
    /// # Errors
    /// The chaos settings are out of range or a metric cannot be registered.
    pub fn new(kind: &str, port: u16, chaos: ChaosSettings) -> Result<Arc<Self>, InstanceError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "scalelab_backend_http_requests_total",
                "HTTP requests answered, by route, method and status code",
            ),
            &["route", "method", "code"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "scalelab_backend_http_request_duration_seconds",
                "Time to answer an HTTP request, chaos latency included",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        register_process_metrics(&registry)?;
        Ok(Arc::new(Self {
            name: format!("{kind}-{port}"),
            registry,
            chaos: Chaos::new(chaos).map_err(InstanceError::Chaos)?,
            requests,
            durations,
        }))
    }

    /// The instance name used in logs and bodies, e.g. `gateway-5003`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This process's registry; services register their own metrics here.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The live chaos knobs.
    #[must_use]
    pub fn chaos(&self) -> &Chaos {
        &self.chaos
    }
}

/// Adds the standard `process_*` series (CPU seconds, resident memory, open and maximum file descriptors, virtual
/// memory, threads, start time), read from `/proc` at every scrape, so each backend's own cost shows next to its
/// traffic. Each instance has its own registry, so every one of them gets its own collector.
#[cfg(target_os = "linux")]
fn register_process_metrics(registry: &Registry) -> prometheus::Result<()> {
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))
}

/// The prometheus crate reads process statistics from `/proc` and offers no collector elsewhere, so other systems
/// export no `process_*` series.
#[cfg(not(target_os = "linux"))]
fn register_process_metrics(_registry: &Registry) -> prometheus::Result<()> {
    Ok(())
}

/// Adds the common routes and layers to a service's router.
pub fn wrap(instance: &Arc<Instance>, service: Router) -> Router {
    let common = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/ws", get(crate::websocket::echo))
        .with_state(Arc::clone(instance));
    service
        .merge(common)
        .merge(chaos::router(instance.chaos.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            instance.chaos.clone(),
            chaos::inject,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(instance), record))
        .layer(middleware::from_fn(crate::traced::layer))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn health(State(instance): State<Arc<Instance>>) -> Response {
    if instance.chaos.get().fail_health {
        let body = json!({ "status": "failing", "instance": instance.name });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(json!({ "status": "ok", "instance": instance.name })).into_response()
}

async fn metrics(State(instance): State<Arc<Instance>>) -> Result<Response, AppError> {
    let encoder = TextEncoder::new();
    let mut buffer = Vec::new();
    encoder
        .encode(&instance.registry.gather(), &mut buffer)
        .map_err(AppError::internal)?;
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], buffer).into_response())
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Outermost middleware: times the request (chaos latency included), sets `X-Processing-Time` in seconds like the
/// seed did, but on every response, and counts it.
async fn record(State(instance): State<Arc<Instance>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Label by route pattern, not raw path, so ids in paths cannot blow up the series count.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let mut response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    if let Ok(value) = HeaderValue::from_str(&format!("{elapsed:.6}")) {
        response.headers_mut().insert("x-processing-time", value);
    }
    instance
        .requests
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .inc();
    instance
        .durations
        .with_label_values(&[route.as_str()])
        .observe(elapsed);
    response
}

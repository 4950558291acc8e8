//! The API gateway (ports 5000, 5003, 5006 in the lab): verifies the JWT itself (defense in depth behind the proxy),
//! with `scalelab_auth`, the proxy's own verifier built from the same `[auth]` table, then fans out to the database, the microservice and the worker over pooled HTTP clients with timeouts.
//! A failing dependency answers 502/503/504 JSON naming it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{AppError, UpstreamFailure};
use crate::extract::{Json, Query};
use crate::instance::{self, Instance, LATENCY_BUCKETS};
use crate::local_cache::{self, Item, LocalCache};
use crate::priority_worker::queue::Priority;
use crate::priority_worker::unix_now;
use scalelab_auth::Verifier;

/// `Cache-Control` of `/data`: the seed's default TTL of 300 s.
pub const DATA_CACHE_CONTROL: &str = "public, max-age=300";

/// `Cache-Control` of `/data/complex`: the seed cached it for 60 s.
pub const COMPLEX_CACHE_CONTROL: &str = "public, max-age=60";

/// Base URLs of the gateway's dependencies, without a trailing slash.
#[derive(Debug, Clone)]
pub struct Dependencies {
    /// The database service.
    pub database: String,
    /// The microservice.
    pub microservice: String,
    /// The priority worker.
    pub worker: String,
}

/// A service the gateway calls; its name is the `dependency` label and the one error bodies use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dependency {
    Database,
    Microservice,
    Worker,
}

impl Dependency {
    const ALL: [Self; 3] = [Self::Database, Self::Microservice, Self::Worker];

    const fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Microservice => "microservice",
            Self::Worker => "worker",
        }
    }
}

/// How a call to a dependency ended, as the `outcome` label counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The dependency answered with a usable body and no 5xx status. A 4xx is its verdict on the request (an
    /// unknown item, a refused task), not a failure of the dependency, so it counts here too.
    Ok,
    /// The call timed out, or the dependency itself answered 504.
    Timeout,
    /// Anything else: unreachable, a 5xx, or a body that is not JSON.
    Error,
}

impl Outcome {
    const ALL: [Self; 3] = [Self::Ok, Self::Error, Self::Timeout];

    const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }

    const fn of<T>(result: &Result<T, AppError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(AppError::Upstream {
                failure: UpstreamFailure::Timeout,
                ..
            }) => Self::Timeout,
            Err(_) => Self::Error,
        }
    }
}

/// The gateway's view of its dependencies: `scalelab_gateway_dependency_requests_total{dependency,outcome}` and
/// `scalelab_gateway_dependency_duration_seconds{dependency}`.
#[derive(Debug, Clone)]
struct DependencyMetrics {
    calls: IntCounterVec,
    durations: HistogramVec,
}

impl DependencyMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let calls = IntCounterVec::new(
            Opts::new(
                "scalelab_gateway_dependency_requests_total",
                "Calls from the gateway to a dependency, by dependency and outcome (ok, error, timeout)",
            ),
            &["dependency", "outcome"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "scalelab_gateway_dependency_duration_seconds",
                "Time of one call from the gateway to a dependency, reading the body included",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["dependency"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        // Every series exists from the start, so the first error or timeout shows in rate() (a series that appears
        // already at 1 has no increase) and a dashboard shows 0 rather than no data.
        for dependency in Dependency::ALL {
            for outcome in Outcome::ALL {
                calls.with_label_values(&[dependency.as_str(), outcome.as_str()]);
            }
            durations.with_label_values(&[dependency.as_str()]);
        }
        Ok(Self { calls, durations })
    }

    fn record(&self, dependency: Dependency, outcome: Outcome, elapsed: Duration) {
        self.calls
            .with_label_values(&[dependency.as_str(), outcome.as_str()])
            .inc();
        self.durations
            .with_label_values(&[dependency.as_str()])
            .observe(elapsed.as_secs_f64());
    }
}

/// The gateway's state.
#[derive(Debug, Clone)]
pub struct GatewayState {
    instance: Arc<Instance>,
    /// `None` when the config has no `[auth]` table: the protected routes then fail closed with 503 instead of
    /// serving unauthenticated clients.
    verifier: Option<Arc<Verifier>>,
    dependencies: Arc<Dependencies>,
    client: reqwest::Client,
    metrics: DependencyMetrics,
    /// In front of `/data/complex`'s fan-out; off (0 entries) until resized.
    local_cache: LocalCache,
}

impl GatewayState {
    /// Builds the state with one pooled client whose requests time out after `timeout`. `verifier` is `None` when
    /// authentication is not configured, which makes every protected route answer 503.
    ///
    /// # Errors
    /// The HTTP client cannot be built or the dependency metrics cannot be registered.
    pub fn new(
        instance: Arc<Instance>,
        verifier: Option<Arc<Verifier>>,
        dependencies: Dependencies,
        timeout: Duration,
    ) -> Result<Self, AppError> {
        let client = reqwest::Client::builder()
            // Dependencies are on loopback or a private network; an environment proxy would only get in the way.
            .no_proxy()
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(AppError::internal)?;
        let metrics =
            DependencyMetrics::register(instance.registry()).map_err(AppError::internal)?;
        let local_cache =
            LocalCache::register(instance.registry(), 0).map_err(AppError::internal)?;
        let trim = |url: String| url.trim_end_matches('/').to_owned();
        let dependencies = Dependencies {
            database: trim(dependencies.database),
            microservice: trim(dependencies.microservice),
            worker: trim(dependencies.worker),
        };
        Ok(Self {
            instance,
            verifier,
            dependencies: Arc::new(dependencies),
            client,
            metrics,
            local_cache,
        })
    }

    /// The local item cache, off until resized (`--local-cache`, `POST /admin/local-cache`).
    #[must_use]
    pub fn local_cache(&self) -> &LocalCache {
        &self.local_cache
    }
}

/// The gateway's routes (all but the common ones require a valid JWT) plus the common ones.
pub fn router(state: GatewayState) -> Router {
    let instance = Arc::clone(&state.instance);
    let cache_admin = local_cache::router(state.local_cache.clone());
    let service = Router::new()
        .route("/data", get(data))
        .route("/data/complex", get(complex))
        .route("/longtask", post(longtask))
        .route("/auth/verify", get(verify))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
        .merge(cache_admin);
    instance::wrap(&instance, service)
}

/// The lab's forward auth service (issue 25): the proxy's `auth = "forward"` routes ask it about a request's
/// `Authorization`. A valid token gets 200 with `X-User` (its `sub`); any other request gets the same 401 as every
/// protected route (from `authenticate`), which the proxy passes on to its client.
async fn verify(request: Request) -> Response {
    let user = request
        .extensions()
        .get::<scalelab_auth::Claims>()
        .and_then(|claims| claims.sub.clone())
        .unwrap_or_default();
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&user) {
        response.headers_mut().insert("x-user", value);
    }
    response
}

/// Refuses requests without a valid token: 401, `WWW-Authenticate`, and `{"error","reason"}`, rendered by
/// `scalelab_auth::Rejection` exactly as the proxy renders them.
async fn authenticate(
    State(state): State<GatewayState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(verifier) = &state.verifier else {
        return AppError::Unavailable(
            "authentication is not configured: add an [auth] table to the config file".to_owned(),
        )
        .into_response();
    };
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match verifier.verify_header(header) {
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(rejection) => {
            tracing::info!(
                instance = state.instance.name(),
                reason = rejection.reason(),
                "request refused"
            );
            AppError::Unauthorized(rejection).into_response()
        }
    }
}

impl GatewayState {
    /// Calls a dependency, counting and timing the call; returns its status and JSON body.
    async fn call(
        &self,
        dependency: Dependency,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Value), AppError> {
        let started = Instant::now();
        // A traced request's call is a client span of its own, whose id the dependency sees
        // as its parent.
        let span = crate::traced::Child::begin(
            dependency.as_str(),
            scalelab_common::trace::export::Kind::Client,
        );
        let request = match span.as_ref().and_then(crate::traced::Child::traceparent) {
            Some(traceparent) => request.header(scalelab_common::trace::TRACEPARENT, traceparent),
            None => request,
        };
        let result = attempt(dependency.as_str(), request).await;
        self.metrics
            .record(dependency, Outcome::of(&result), started.elapsed());
        if let Some(span) = span {
            use scalelab_common::trace::export::Attribute;
            let mut attributes = vec![Attribute::new("scalelab.dependency", dependency.as_str())];
            if let Ok((status, _)) = &result {
                attributes.push(Attribute::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
            }
            span.end(attributes, result.as_ref().err().map(ToString::to_string));
        }
        result
    }
}

/// Sends one request to a dependency and classifies the failure; returns its status and JSON body.
async fn attempt(
    dependency: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<(StatusCode, Value), AppError> {
    let fail = |failure, detail: String| AppError::Upstream {
        dependency,
        failure,
        detail,
    };
    let response = request.send().await.map_err(|error| {
        let failure = if error.is_timeout() {
            UpstreamFailure::Timeout
        } else if error.is_connect() {
            UpstreamFailure::Unavailable
        } else {
            UpstreamFailure::BadResponse
        };
        fail(failure, error.to_string())
    })?;
    let status = StatusCode::from_u16(response.status().as_u16())
        .map_err(|error| fail(UpstreamFailure::BadResponse, error.to_string()))?;
    let body = response.json::<Value>().await.map_err(|error| {
        let failure = if error.is_timeout() {
            UpstreamFailure::Timeout
        } else {
            UpstreamFailure::BadResponse
        };
        fail(failure, error.to_string())
    })?;
    if status.is_server_error() {
        // Keep the dependency's own verdict when it says it is unavailable or timed out.
        let failure = match status {
            StatusCode::SERVICE_UNAVAILABLE => UpstreamFailure::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => UpstreamFailure::Timeout,
            _ => UpstreamFailure::BadResponse,
        };
        return Err(fail(failure, format!("answered {status}: {body}")));
    }
    Ok((status, body))
}

fn with_cache_control(body: Value, cache_control: &'static str) -> Response {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        )],
        axum::Json(body),
    )
        .into_response()
}

async fn data(State(state): State<GatewayState>) -> Result<Response, AppError> {
    let url = format!("{}/db", state.dependencies.database);
    let (status, body) = state
        .call(Dependency::Database, state.client.get(url))
        .await?;
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .filter(|_| status == StatusCode::OK)
        .ok_or_else(|| AppError::Upstream {
            dependency: Dependency::Database.as_str(),
            failure: UpstreamFailure::BadResponse,
            detail: format!("unexpected answer {status}: {body}"),
        })?;
    let body = json!({ "data": message, "source": "database", "instance": state.instance.name() });
    Ok(with_cache_control(body, DATA_CACHE_CONTROL))
}

#[derive(Debug, Deserialize)]
struct ComplexParams {
    id: Option<String>,
}

async fn complex(
    State(state): State<GatewayState>,
    Query(params): Query<ComplexParams>,
) -> Result<Response, AppError> {
    let id: i64 = params
        .id
        .as_deref()
        .ok_or_else(|| AppError::BadRequest("query parameter id is required".to_owned()))?
        .parse()
        .map_err(|_| AppError::BadRequest("id must be an integer".to_owned()))?;
    let (item, lookup) = state
        .local_cache
        .get_or_fetch(id, fetch_item(&state, id))
        .await?;
    let body = json!({ "db_data": item.db_data, "service_data": item.service_data, "timestamp": unix_now() });
    let mut response = with_cache_control(body, COMPLEX_CACHE_CONTROL);
    if let Some(label) = lookup {
        let value = HeaderValue::from_static(label);
        response.headers_mut().insert(local_cache::HEADER, value);
    }
    Ok(response)
}

/// `/data/complex`'s expensive part: the item from the database and the microservice's answer, fetched at once.
async fn fetch_item(state: &GatewayState, id: i64) -> Result<Item, AppError> {
    let item = state.call(
        Dependency::Database,
        state
            .client
            .get(format!("{}/items/{id}", state.dependencies.database)),
    );
    let process = state.call(
        Dependency::Microservice,
        state
            .client
            .get(format!("{}/process", state.dependencies.microservice)),
    );
    let (item, process) = tokio::join!(item, process);
    let (item_status, db_data) = item?;
    if item_status == StatusCode::NOT_FOUND {
        return Err(AppError::NotFound(format!("item {id} not found")));
    }
    let (process_status, service_data) = process?;
    for (dependency, status) in [
        (Dependency::Database, item_status),
        (Dependency::Microservice, process_status),
    ] {
        if status != StatusCode::OK {
            return Err(AppError::Upstream {
                dependency: dependency.as_str(),
                failure: UpstreamFailure::BadResponse,
                detail: format!("unexpected status {status}"),
            });
        }
    }
    Ok(Item {
        db_data,
        service_data,
    })
}

#[derive(Debug, Deserialize)]
struct LongtaskParams {
    priority: Option<String>,
}

async fn longtask(
    State(state): State<GatewayState>,
    Query(params): Query<LongtaskParams>,
    Json(task): Json<Value>,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let priority: Priority = match params.priority {
        None => Priority::Normal,
        Some(text) => text.parse().map_err(AppError::BadRequest)?,
    };
    let Value::Object(mut task) = task else {
        return Err(AppError::BadRequest(
            "the task must be a JSON object".to_owned(),
        ));
    };
    // The seed's envelope, kept so the worker can log which gateway and when.
    task.insert(
        "_meta".to_owned(),
        json!({ "timestamp": unix_now(), "gateway": state.instance.name(), "priority": priority }),
    );
    let url = format!("{}/tasks?priority={priority}", state.dependencies.worker);
    let (status, body) = state
        .call(Dependency::Worker, state.client.post(url).json(&task))
        .await?;
    match status {
        StatusCode::ACCEPTED => {
            let task_id = body.get("task_id").cloned().unwrap_or(Value::Null);
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(
                    json!({ "status": "Task queued", "priority": priority, "task_id": task_id }),
                ),
            ))
        }
        // The worker refused the task itself (bad duration, unknown field): that is the client's error, pass it on.
        status if status.is_client_error() && status != StatusCode::NOT_FOUND => {
            let message = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("task rejected by the worker");
            Err(AppError::BadRequest(message.to_owned()))
        }
        status => Err(AppError::Upstream {
            dependency: Dependency::Worker.as_str(),
            failure: UpstreamFailure::BadResponse,
            detail: format!("unexpected status {status}: {body}"),
        }),
    }
}

#[cfg(test)]
mod tests;

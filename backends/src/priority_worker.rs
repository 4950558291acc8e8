//! The priority worker (port 5005 in the lab): accepts tasks over HTTP, stores them durably before answering 202,
//! and runs them on a resizable pool in priority order with aging. See `queue` for the policy, `store` for durability
//! and `pool` for execution.

pub mod backlog;
pub mod pool;
pub mod queue;
pub mod shared;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use self::backlog::{Backlog, LocalBacklog};
use self::pool::{Pool, WorkerMetrics, REJECTED_OUTCOME, REJECTED_PRIORITY};
use self::queue::Priority;
use self::store::{StoreError, TaskSpec, TaskStore};
use crate::error::AppError;
use crate::extract::{Json, Path, Query};
use crate::instance::{self, Instance};

/// The longest task the worker accepts, in seconds.
pub const MAX_DURATION_SECS: f64 = 300.0;

/// The most workers `PUT /admin/workers` accepts.
pub const MAX_WORKERS: usize = 256;

/// The seed's default task duration in seconds.
const DEFAULT_DURATION_SECS: f64 = 5.0;

/// Startup settings.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Initial pool size.
    pub workers: usize,
    /// A task waiting this long overtakes fresh tasks of any level.
    pub aging: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            workers: 3,
            aging: Duration::from_secs(30),
        }
    }
}

/// The worker's state: the store, the pool and the instance.
#[derive(Debug, Clone)]
pub struct WorkerState {
    instance: Arc<Instance>,
    store: Arc<dyn TaskStore>,
    pool: Pool,
    metrics: WorkerMetrics,
}

impl WorkerState {
    /// Registers the metrics, re-queues every task left unfinished by a previous run, then starts the pool.
    ///
    /// # Errors
    /// A metrics registration conflict or a store failure during recovery.
    pub async fn start(
        instance: Arc<Instance>,
        store: Arc<dyn TaskStore>,
        settings: WorkerSettings,
    ) -> Result<Self, AppError> {
        let backlog = Arc::new(LocalBacklog::new(Arc::clone(&store), settings.aging));
        Self::start_with(instance, store, backlog, settings).await
    }

    /// Like [`WorkerState::start`], with the waiting tasks in `backlog` (a shared one for several workers).
    ///
    /// # Errors
    /// A metrics registration conflict or a store failure during recovery.
    pub async fn start_with(
        instance: Arc<Instance>,
        store: Arc<dyn TaskStore>,
        backlog: Arc<dyn Backlog>,
        settings: WorkerSettings,
    ) -> Result<Self, AppError> {
        if settings.workers > MAX_WORKERS {
            return Err(AppError::BadRequest(format!(
                "at most {MAX_WORKERS} workers"
            )));
        }
        let metrics = WorkerMetrics::register(instance.registry()).map_err(AppError::internal)?;
        let pool = Pool::new(backlog, metrics.clone());
        for record in store.recover().await? {
            pool.enqueue(&record).await?;
        }
        pool.resize(settings.workers);
        Ok(Self {
            instance,
            store,
            pool,
            metrics,
        })
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        Self::internal(error)
    }
}

/// The worker's routes plus the common ones.
pub fn router(state: WorkerState) -> Router {
    let instance = Arc::clone(&state.instance);
    let service = Router::new()
        .route("/tasks", post(enqueue))
        .route("/task", post(enqueue))
        .route("/tasks/{id}", get(task))
        .route("/stats", get(stats))
        .route("/admin/workers", get(workers).put(resize))
        .with_state(state);
    instance::wrap(&instance, service)
}

/// A task as posted. Unknown fields are refused so typos (`"durration"`) do not silently get the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRequest {
    task_type: Option<String>,
    duration: Option<f64>,
    fail: Option<bool>,
    priority: Option<String>,
    /// The seed gateway's envelope: `{timestamp, gateway, priority}`; only `priority` is used.
    #[serde(rename = "_meta")]
    meta: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueParams {
    priority: Option<String>,
}

/// Validates a request into its priority (query, then body, then `_meta`, default normal) and spec.
fn validate(params: EnqueueParams, request: TaskRequest) -> Result<(Priority, TaskSpec), AppError> {
    let meta_priority = match request.meta.as_ref().and_then(|meta| meta.get("priority")) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(AppError::BadRequest(
                "_meta.priority must be a string".to_owned(),
            ))
        }
    };
    let priority = match params.priority.or(request.priority).or(meta_priority) {
        None => Priority::Normal,
        Some(text) => text.parse().map_err(AppError::BadRequest)?,
    };
    let duration = request.duration.unwrap_or(DEFAULT_DURATION_SECS);
    if !(duration > 0.0 && duration <= MAX_DURATION_SECS) {
        return Err(AppError::BadRequest(format!(
            "duration must be a number of seconds in (0, {MAX_DURATION_SECS}], got {duration}"
        )));
    }
    let task_type = request.task_type.unwrap_or_else(|| "other".to_owned());
    if task_type.is_empty() || task_type.len() > 64 {
        return Err(AppError::BadRequest(
            "task_type must be 1 to 64 characters".to_owned(),
        ));
    }
    Ok((
        priority,
        TaskSpec {
            task_type,
            duration,
            fail: request.fail.unwrap_or(false),
        },
    ))
}

async fn enqueue(
    State(state): State<WorkerState>,
    Query(params): Query<EnqueueParams>,
    body: Result<Json<TaskRequest>, AppError>,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let validated = body.and_then(|Json(request)| validate(params, request));
    let (priority, spec) = match validated {
        Ok(valid) => valid,
        Err(error) => {
            // Rejections carry no trustworthy priority, so they are counted under one fixed label.
            state
                .metrics
                .tasks
                .with_label_values(&[REJECTED_PRIORITY, REJECTED_OUTCOME])
                .inc();
            return Err(error);
        }
    };
    let record = state.store.insert(priority, spec, unix_now()).await?;
    // A traced request's task: its queue wait is a span from now until a worker starts it.
    if let Some(span) =
        crate::traced::Child::begin("queue wait", scalelab_common::trace::export::Kind::Internal)
    {
        crate::traced::park(record.task_id.clone(), span);
    }
    let position = state.pool.enqueue(&record).await?;
    tracing::info!(task_id = record.task_id, %priority, position, "task queued");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "status": "Task queued",
            "task_id": record.task_id,
            "queue": priority,
            "priority": priority,
            "position": position,
        })),
    ))
}

async fn task(
    State(state): State<WorkerState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, AppError> {
    let record = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("task {id} not found")))?;
    serde_json::to_value(record)
        .map(axum::Json)
        .map_err(AppError::internal)
}

async fn stats(State(state): State<WorkerState>) -> Result<axum::Json<Value>, AppError> {
    let stats = state.store.stats().await?;
    let per_level = |counts: &dyn Fn(Priority) -> u64| -> Map<String, Value> {
        Priority::ALL
            .into_iter()
            .map(|priority| (priority.as_str().to_owned(), json!(counts(priority))))
            .collect()
    };
    let queued = |priority| stats.queued.get(&priority).copied().unwrap_or(0);
    let running = |priority| stats.running.get(&priority).copied().unwrap_or(0);
    let waits: Map<String, Value> = Priority::ALL
        .into_iter()
        .map(|priority| {
            let sorted = stats.waits.get(&priority).map_or(&[][..], Vec::as_slice);
            (priority.as_str().to_owned(), percentiles(sorted))
        })
        .collect();
    Ok(axum::Json(json!({
        "total_tasks": stats.total,
        "completed_tasks": stats.completed,
        "failed_tasks": stats.failed,
        // The seed's meaning: accepted and not finished, so running tasks count too.
        "queue_lengths": per_level(&|priority| queued(priority) + running(priority)),
        "avg_processing_time": stats.avg_processing_time,
        "current_queue_sizes": per_level(&queued),
        "wait_time_percentiles": waits,
        "workers": state.pool.workers(),
        "busy_workers": state.pool.busy(),
        "instance": state.instance.name(),
    })))
}

/// Nearest-rank p50/p90/p99 of sorted waits, with the count; nulls when nothing has started yet.
fn percentiles(sorted: &[f64]) -> Value {
    let rank = |quantile: f64| -> Value {
        if sorted.is_empty() {
            return Value::Null;
        }
        // Nearest rank: the smallest value with at least `quantile` of the samples at or below it.
        let position = (quantile * sorted.len() as f64).ceil().max(1.0) as usize;
        json!(sorted[position.min(sorted.len()) - 1])
    };
    json!({ "count": sorted.len(), "p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99) })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeRequest {
    workers: usize,
    /// A new aging bound in milliseconds; absent keeps the current one. Live, so a lab can show a flood with and
    /// without aging on one running worker.
    aging_ms: Option<u64>,
}

/// The longest aging bound `PUT /admin/workers` accepts: a day, which is "never" for any lab run.
const MAX_AGING_MS: u64 = 86_400_000;

async fn workers(State(state): State<WorkerState>) -> axum::Json<Value> {
    let aging_ms = u64::try_from(state.pool.aging().as_millis()).unwrap_or(u64::MAX);
    axum::Json(json!({
        "workers": state.pool.workers(),
        "busy": state.pool.busy(),
        "running": state.pool.running(),
        "aging_ms": aging_ms,
    }))
}

async fn resize(
    State(state): State<WorkerState>,
    Json(request): Json<ResizeRequest>,
) -> Result<axum::Json<Value>, AppError> {
    if request.workers > MAX_WORKERS {
        return Err(AppError::BadRequest(format!(
            "workers must be at most {MAX_WORKERS}"
        )));
    }
    if let Some(aging_ms) = request.aging_ms {
        if aging_ms > MAX_AGING_MS {
            return Err(AppError::BadRequest(format!(
                "aging_ms must be at most {MAX_AGING_MS}"
            )));
        }
        state.pool.set_aging(Duration::from_millis(aging_ms));
        tracing::info!(aging_ms, "aging bound changed");
    }
    state.pool.resize(request.workers);
    tracing::info!(workers = request.workers, "pool resized");
    Ok(workers(State(state)).await)
}

/// Now, in unix seconds; the clock the queue's aging and the stored timestamps share.
pub(crate) fn unix_now() -> f64 {
    scalelab_common::clock::unix_secs_f64()
}

#[cfg(test)]
mod tests;

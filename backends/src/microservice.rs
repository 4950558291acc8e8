//! The microservice (port 5001 in the lab): `GET /process` runs the "business logic", optionally burning real CPU
//! on the blocking pool so load tests can make it CPU-bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::AppError;
use crate::extract::Query;
use crate::instance::{self, Instance};

/// The most CPU time one request may ask for; more would let a single call monopolise a core.
pub const MAX_WORK_MS: u64 = 10_000;

/// The microservice's state: only its instance.
#[derive(Debug, Clone)]
pub struct MicroserviceState {
    /// Name, registry and chaos knobs.
    pub instance: Arc<Instance>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessParams {
    #[serde(default)]
    work_ms: u64,
}

/// The microservice's routes plus the common ones.
pub fn router(state: MicroserviceState) -> Router {
    let instance = Arc::clone(&state.instance);
    let service = Router::new()
        .route("/process", get(process))
        .with_state(state);
    instance::wrap(&instance, service)
}

async fn process(
    State(state): State<MicroserviceState>,
    Query(params): Query<ProcessParams>,
) -> Result<Json<Value>, AppError> {
    if params.work_ms > MAX_WORK_MS {
        return Err(AppError::BadRequest(format!(
            "work_ms must be at most {MAX_WORK_MS}"
        )));
    }
    if params.work_ms > 0 {
        let budget = Duration::from_millis(params.work_ms);
        tokio::task::spawn_blocking(move || burn_cpu(budget))
            .await
            .map_err(AppError::internal)?;
    }
    Ok(Json(json!({
        "message": "Business logic executed",
        "instance": state.instance.name(),
        "work_ms": params.work_ms,
    })))
}

/// Spins on arithmetic for `budget`; `black_box` keeps the optimiser from deleting the loop.
pub fn burn_cpu(budget: Duration) {
    let started = Instant::now();
    let mut accumulator: u64 = 0;
    while started.elapsed() < budget {
        for step in 0..10_000u64 {
            accumulator = std::hint::black_box(accumulator.wrapping_add(step * step));
        }
    }
    std::hint::black_box(accumulator);
}

#[cfg(test)]
mod tests;

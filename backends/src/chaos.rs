//! Chaos knobs: injected latency, a capacity limit, injected 500s and a failing `/health`, set by flags at start or live via
//! `GET/POST /admin/chaos`. They exist so failover and retries can be demonstrated and tested on demand.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::extract::Json;

/// The current chaos settings; all zero / false means "behave normally".
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ChaosSettings {
    /// Extra latency added to every request (except health, metrics and admin).
    pub latency_ms: u64,
    /// A uniformly random extra latency in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// The fraction of requests answered with an injected 500, in `[0, 1]`.
    pub error_rate: f64,
    /// When true, `/health` answers 503.
    pub fail_health: bool,
    /// At most this many ordinary requests are served at once (0: no limit); the others wait
    /// their turn, so latency grows with load as on a server of limited capacity.
    #[serde(default)]
    pub max_concurrency: u64,
}

/// A partial update posted to `/admin/chaos`: absent fields keep their current value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosPatch {
    /// See [`ChaosSettings::latency_ms`].
    pub latency_ms: Option<u64>,
    /// See [`ChaosSettings::latency_jitter_ms`].
    pub latency_jitter_ms: Option<u64>,
    /// See [`ChaosSettings::error_rate`].
    pub error_rate: Option<f64>,
    /// See [`ChaosSettings::fail_health`].
    pub fail_health: Option<bool>,
    /// See [`ChaosSettings::max_concurrency`].
    pub max_concurrency: Option<u64>,
}

/// The chaos flags every backend binary accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChaosArgs {
    /// Extra latency in milliseconds added to every request.
    #[arg(long, default_value_t = 0)]
    pub chaos_latency_ms: u64,
    /// Random extra latency in milliseconds (uniform in 0..=N).
    #[arg(long, default_value_t = 0)]
    pub chaos_latency_jitter_ms: u64,
    /// Fraction of requests answered with an injected 500 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub chaos_error_rate: f64,
    /// Make `/health` answer 503 from the start.
    #[arg(long)]
    pub chaos_fail_health: bool,
    /// Serve at most N ordinary requests at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub chaos_max_concurrency: u64,
}

/// The longest latency the knobs accept; anything longer would only make a request look hung.
const MAX_LATENCY_MS: u64 = 60_000;

/// The largest capacity limit the knobs accept (tokio's semaphore holds far more).
const MAX_CONCURRENCY: u64 = 100_000;

impl ChaosSettings {
    /// Checks the ranges.
    ///
    /// # Errors
    /// A message naming the first field out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "error_rate must be between 0 and 1, got {}",
                self.error_rate
            ));
        }
        if self.latency_ms > MAX_LATENCY_MS || self.latency_jitter_ms > MAX_LATENCY_MS {
            return Err(format!("latencies must be at most {MAX_LATENCY_MS} ms"));
        }
        if self.max_concurrency > MAX_CONCURRENCY {
            return Err(format!(
                "max_concurrency must be at most {MAX_CONCURRENCY} (0 for no limit)"
            ));
        }
        Ok(())
    }

    /// Applies a patch, returning the new settings (not yet validated).
    #[must_use]
    pub fn patched(self, patch: &ChaosPatch) -> Self {
        Self {
            latency_ms: patch.latency_ms.unwrap_or(self.latency_ms),
            latency_jitter_ms: patch.latency_jitter_ms.unwrap_or(self.latency_jitter_ms),
            error_rate: patch.error_rate.unwrap_or(self.error_rate),
            fail_health: patch.fail_health.unwrap_or(self.fail_health),
            max_concurrency: patch.max_concurrency.unwrap_or(self.max_concurrency),
        }
    }
}

impl From<&ChaosArgs> for ChaosSettings {
    fn from(args: &ChaosArgs) -> Self {
        Self {
            latency_ms: args.chaos_latency_ms,
            latency_jitter_ms: args.chaos_latency_jitter_ms,
            error_rate: args.chaos_error_rate,
            fail_health: args.chaos_fail_health,
            max_concurrency: args.chaos_max_concurrency,
        }
    }
}

/// Shared, live-adjustable chaos settings, with the gate that enforces `max_concurrency`.
#[derive(Debug, Clone, Default)]
pub struct Chaos(Arc<RwLock<Knobs>>);

#[derive(Debug, Default)]
struct Knobs {
    settings: ChaosSettings,
    /// `max_concurrency` permits; replaced when the limit changes (requests holding the old
    /// gate's permits finish on it).
    gate: Option<Arc<Semaphore>>,
}

impl Chaos {
    /// Starts with the given settings.
    ///
    /// # Errors
    /// The validation message if a setting is out of range.
    pub fn new(settings: ChaosSettings) -> Result<Self, String> {
        settings.validate()?;
        let chaos = Self::default();
        chaos.set(settings);
        Ok(chaos)
    }

    /// A copy of the current settings.
    #[must_use]
    pub fn get(&self) -> ChaosSettings {
        // The settings are plain data, so a writer that panicked cannot have left them half-updated.
        scalelab_common::sync::read(&self.0).settings
    }

    /// The gate of the current capacity limit, if there is one.
    fn gate(&self) -> Option<Arc<Semaphore>> {
        scalelab_common::sync::read(&self.0).gate.clone()
    }

    /// Replaces the settings without validation; for tests and code that built them from validated parts.
    pub fn replace(&self, settings: ChaosSettings) {
        self.set(settings);
    }

    fn set(&self, settings: ChaosSettings) {
        let mut knobs = scalelab_common::sync::write(&self.0);
        if knobs.settings.max_concurrency != settings.max_concurrency || knobs.gate.is_none() {
            knobs.gate = usize::try_from(settings.max_concurrency)
                .ok()
                .filter(|&permits| permits > 0)
                .map(|permits| Arc::new(Semaphore::new(permits)));
        }
        knobs.settings = settings;
    }
}

/// `GET /admin/chaos` (current settings) and `POST /admin/chaos` (partial update, returns the new settings).
pub fn router(chaos: Chaos) -> Router {
    Router::new()
        .route("/admin/chaos", get(current).post(update))
        .with_state(chaos)
}

async fn current(State(chaos): State<Chaos>) -> axum::Json<ChaosSettings> {
    axum::Json(chaos.get())
}

async fn update(
    State(chaos): State<Chaos>,
    Json(patch): Json<ChaosPatch>,
) -> Result<axum::Json<ChaosSettings>, AppError> {
    let settings = chaos.get().patched(&patch);
    settings.validate().map_err(AppError::BadRequest)?;
    chaos.set(settings);
    tracing::info!(?settings, "chaos settings changed");
    Ok(axum::Json(settings))
}

/// Middleware: delays and fails ordinary requests as configured; health, metrics and admin are exempt so the
/// knobs can always be turned back off and the health check reflects only `fail_health`.
pub async fn inject(State(chaos): State<Chaos>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/health" || path == "/metrics" || path.starts_with("/admin/") {
        return next.run(request).await;
    }
    let settings = chaos.get();
    // A request over the capacity limit waits for a slot and keeps it through its delay and its
    // work, as on a server with that many workers.
    let _slot = match chaos.gate() {
        Some(gate) => gate.acquire_owned().await.ok(),
        None => None,
    };
    let jitter = if settings.latency_jitter_ms > 0 {
        fastrand::u64(0..=settings.latency_jitter_ms)
    } else {
        0
    };
    let delay = settings.latency_ms + jitter;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if settings.error_rate > 0.0 && fastrand::f64() < settings.error_rate {
        return AppError::Injected.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_capacity_limit_serves_that_many_requests_at_once_and_follows_changes() {
        let chaos = Chaos::new(ChaosSettings {
            max_concurrency: 2,
            ..ChaosSettings::default()
        })
        .unwrap();
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let work = {
            let (now, peak) = (now.clone(), peak.clone());
            move || async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                "done"
            }
        };
        let app = Router::new()
            .route("/work", get(work))
            .layer(axum::middleware::from_fn_with_state(chaos.clone(), inject));
        let burst = |app: Router| async move {
            let calls: Vec<_> = (0..6)
                .map(|_| {
                    let app = app.clone();
                    tokio::spawn(async move {
                        let request = Request::builder()
                            .uri("/work")
                            .body(axum::body::Body::empty());
                        app.oneshot(request.unwrap()).await.unwrap().status()
                    })
                })
                .collect();
            for call in calls {
                assert_eq!(call.await.unwrap(), 200);
            }
        };
        burst(app.clone()).await;
        assert_eq!(peak.load(Ordering::SeqCst), 2, "two slots");
        chaos.replace(ChaosSettings::default());
        peak.store(0, Ordering::SeqCst);
        burst(app).await;
        assert_eq!(peak.load(Ordering::SeqCst), 6, "no limit once it is 0");
        assert!(ChaosSettings {
            max_concurrency: MAX_CONCURRENCY + 1,
            ..ChaosSettings::default()
        }
        .validate()
        .is_err());
    }
}

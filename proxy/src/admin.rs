//! The admin listener (axum): `/health`, `/stats` in the seed's shape, `/admin/upstreams` with
//! full detail and `POST /admin/reload`. It runs as a pingora background service, together
//! with the health checker and the SIGHUP handler.

use crate::state::Shared;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Value};
use std::sync::Mutex;

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/stats", get(stats))
        .route("/admin/upstreams", get(upstreams))
        .route("/admin/reload", post(reload))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such admin endpoint"})),
            )
        })
        .with_state(shared)
}

async fn stats(State(shared): State<Shared>) -> Json<Value> {
    let snapshot = shared.snapshot();
    let mut upstreams = serde_json::Map::new();
    for pool in &snapshot.pools {
        let servers: Vec<Value> = pool
            .servers
            .iter()
            .map(|server| {
                json!({
                    "url": format!("http://{}", server.state.addr),
                    "health": server.state.is_available(),
                    "load": server.state.in_flight(),
                    "weight": server.weight,
                    "selected": server.state.selected(),
                })
            })
            .collect();
        upstreams.insert(
            pool.name().to_string(),
            json!({"strategy": pool.config.strategy, "servers": servers}),
        );
    }
    Json(json!({"generation": snapshot.generation, "upstreams": upstreams}))
}

async fn upstreams(State(shared): State<Shared>) -> Json<Value> {
    let snapshot = shared.snapshot();
    let groups: Vec<Value> = snapshot
        .pools
        .iter()
        .map(|pool| {
            let servers: Vec<_> = pool
                .servers
                .iter()
                .map(|server| server.state.report(server.weight))
                .collect();
            json!({
                "name": pool.name(),
                "strategy": pool.config.strategy,
                "retries": pool.config.retries,
                "health_check": pool.config.health_check,
                "healthy": pool.healthy_count(),
                "servers": servers,
            })
        })
        .collect();
    Json(json!({"generation": snapshot.generation, "upstreams": groups}))
}

async fn reload(State(shared): State<Shared>) -> Response {
    let result = tokio::task::spawn_blocking(move || shared.reload()).await;
    match result {
        Ok(Ok(outcome)) => Json(json!({
            "result": "applied",
            "generation": outcome.generation,
            "restart_required": outcome.restart_required,
        }))
        .into_response(),
        Ok(Err(error)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"result": "rejected", "errors": error.issues()})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "reload task failed"})),
        )
            .into_response(),
    }
}

/// Runs the admin listener, the health checker and the SIGHUP handler on pingora's
/// background runtime until shutdown.
pub struct AdminService {
    pub shared: Shared,
    /// Bound in `main` so a busy port fails start-up with a clear error.
    pub listener: Mutex<Option<std::net::TcpListener>>,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, shutdown: ShutdownWatch) {
        tokio::spawn(crate::health::run(self.shared.clone(), shutdown.clone()));
        tokio::spawn(reload_on_sighup(self.shared.clone()));
        let listener = match self.listener.lock().ok().and_then(|mut slot| slot.take()) {
            Some(listener) => listener,
            None => return,
        };
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "admin listener unusable");
                return;
            }
        };
        let mut stop = shutdown.clone();
        let serve =
            axum::serve(listener, router(self.shared.clone())).with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            });
        if let Err(error) = serve.await {
            tracing::error!(%error, "admin listener failed");
        }
    }
}

async fn reload_on_sighup(shared: Shared) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot install the SIGHUP handler; reload through the admin API");
        return;
    };
    while hangup.recv().await.is_some() {
        let shared = shared.clone();
        match tokio::task::spawn_blocking(move || shared.reload()).await {
            Ok(Ok(outcome)) => tracing::info!(
                generation = outcome.generation,
                restart_required = ?outcome.restart_required,
                "config reloaded (SIGHUP)"
            ),
            Ok(Err(error)) => {
                tracing::error!(%error, "config reload rejected; keeping the running config")
            }
            Err(error) => tracing::error!(%error, "config reload task failed"),
        }
    }
}

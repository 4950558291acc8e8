//! The admin listener (axum): `/health`, `/stats` in the seed's shape, `/admin/upstreams` with
//! full detail, the reload endpoints (`POST /admin/reload`, `GET /admin/reloads`,
//! `GET /admin/config`) and manual drain (`POST /admin/upstreams/{group}/servers/{addr}/drain`
//! and `/enable`). It runs as a pingora background service, together with the health
//! checker, the config file watcher and the SIGHUP handler.

mod cache;

use crate::reload::{Outcome, Record, Trigger};
use crate::state::Shared;
use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/stats", get(stats))
        .route("/admin/upstreams", get(upstreams))
        .route("/admin/reload", post(reload))
        .route("/admin/reloads", get(reloads))
        .route("/admin/config", get(effective_config))
        .route(
            "/admin/auth",
            get(|| async { Json(crate::service::auth_outcomes()) }),
        )
        .route(
            "/admin/upstreams/{group}/servers/{addr}/drain",
            post(|state, path| set_drained(state, path, true)),
        )
        .route(
            "/admin/upstreams/{group}/servers/{addr}/enable",
            post(|state, path| set_drained(state, path, false)),
        )
        .route("/metrics", get(metrics))
        .merge(cache::routes())
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such admin endpoint"})),
            )
        })
        .with_state(shared)
}

async fn metrics(State(shared): State<Shared>) -> Response {
    match crate::metrics::render(&shared) {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "cannot render metrics"})),
            )
                .into_response()
        }
    }
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
                    "drained": server.state.is_drained(),
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
    let result = tokio::task::spawn_blocking(move || shared.reload(Trigger::Api)).await;
    match result {
        Ok(record) => {
            let status = match record.result {
                Outcome::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
                Outcome::Applied | Outcome::Unchanged => StatusCode::OK,
            };
            (status, Json(reload_body(&record))).into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "reload task failed"})),
        )
            .into_response(),
    }
}

/// The answer to `POST /admin/reload`: the journal entry, plus `errors` as one line per
/// problem (the same text `--check` prints) and `restart_required` as a list of paths, for
/// scripts that only want those.
fn reload_body(record: &Record) -> Value {
    let errors: Vec<String> = record
        .errors
        .iter()
        .map(|problem| match (problem.line, problem.path.is_empty()) {
            (_, true) => problem.message.clone(),
            (Some(line), false) => format!("line {line}: {}: {}", problem.path, problem.message),
            (None, false) => format!("{}: {}", problem.path, problem.message),
        })
        .collect();
    json!({
        "result": record.result,
        "generation": record.generation,
        "restart_required": record.restart_required(),
        "errors": errors,
        "reload": record,
    })
}

async fn reloads(State(shared): State<Shared>) -> Json<Value> {
    Json(json!({
        "generation": shared.snapshot().generation,
        "reloads": shared.reloads(),
    }))
}

async fn effective_config(State(shared): State<Shared>) -> Response {
    let loaded = shared.loaded();
    match serde_json::to_value(&*loaded.snapshot.config) {
        Ok(config) => Json(json!({
            "generation": loaded.snapshot.generation,
            "sha256": loaded.sha256,
            "loaded_at": loaded.loaded_at,
            "loaded_unix_ms": loaded.loaded_unix_ms,
            "path": shared.config_path().display().to_string(),
            "config": config,
        }))
        .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("cannot render the config: {error}")})),
        )
            .into_response(),
    }
}

/// Drains or enables one server of the current snapshot. The flag lives in the server's
/// shared state, so it holds across reloads for as long as the server stays in its group.
async fn set_drained(
    State(shared): State<Shared>,
    Path((group, addr)): Path<(String, String)>,
    drained: bool,
) -> Response {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("not a socket address: {addr}")})),
        )
            .into_response();
    };
    let snapshot = shared.snapshot();
    let Some(pool) = snapshot.pool(&group) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no upstream group {group}")})),
        )
            .into_response();
    };
    let Some(server) = pool.servers.iter().find(|server| server.state.addr == addr) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no server {addr} in upstream {group}")})),
        )
            .into_response();
    };
    let was_drained = server.state.set_drained(drained);
    if was_drained != drained {
        tracing::info!(
            upstream = %group,
            server = %addr,
            "{}",
            if drained {
                "server drained by hand: no new requests, in-flight ones finish"
            } else {
                "server enabled by hand: back in rotation when healthy"
            }
        );
    }
    Json(json!({
        "upstream": group,
        "server": server.state.report(server.weight),
    }))
    .into_response()
}

/// Runs the admin listener, the health checker and the SIGHUP handler on pingora's
/// background runtime until shutdown.
pub struct AdminService {
    pub shared: Shared,
    /// Bound in `main` so a busy port fails start-up with a clear error.
    pub listener: Mutex<Option<std::net::TcpListener>>,
    /// During a graceful upgrade the old process still holds the admin port, so the new one
    /// binds this address once the old one lets go (`listener` is then `None`).
    pub bind_later: Option<SocketAddr>,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, shutdown: ShutdownWatch) {
        tokio::spawn(crate::health::run(self.shared.clone(), shutdown.clone()));
        tokio::spawn(reload_on_sighup(self.shared.clone()));
        tokio::spawn(cache::sweep(self.shared.clone(), shutdown.clone()));
        tokio::spawn(crate::watch::run(self.shared.clone(), shutdown.clone()));
        let bound = self.listener.lock().ok().and_then(|mut slot| slot.take());
        let listener = match (bound, self.bind_later) {
            (Some(listener), _) => match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(%error, "admin listener unusable");
                    return;
                }
            },
            (None, Some(addr)) => match bind_when_free(addr, shutdown.clone()).await {
                Some(listener) => listener,
                None => return,
            },
            (None, None) => return,
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

/// Binds the admin address once the process we are replacing has closed it (it does so when
/// its shutdown starts, a few seconds after SIGQUIT). Gives up after a minute.
async fn bind_when_free(
    addr: SocketAddr,
    mut shutdown: ShutdownWatch,
) -> Option<tokio::net::TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "admin listener taken over from the previous process");
                return Some(listener);
            }
            Err(error) if Instant::now() > deadline => {
                tracing::error!(%error, %addr, "admin port still busy after the upgrade; no admin listener");
                return None;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => return None,
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
        // `reload` logs and journals its own outcome.
        if let Err(error) =
            tokio::task::spawn_blocking(move || shared.reload(Trigger::Signal)).await
        {
            tracing::error!(%error, "config reload task failed");
        }
    }
}

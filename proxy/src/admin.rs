//! The admin listener (axum): `/health`, `/stats` in the seed's shape, `/admin/upstreams` with
//! full detail, the reload endpoints (`POST /admin/reload`, `GET /admin/reloads`,
//! `GET /admin/config`) and manual drain (`POST /admin/upstreams/{group}/servers/{addr}/drain`
//! and `/enable`). It runs as a pingora background service, together with the health
//! checker, the config file watcher and the SIGHUP handler. `access` puts everything but
//! `/health` (and `/metrics`, unless `metrics_auth`) behind `[admin] token` when one is set.

pub mod access;
mod cache_endpoints;

use crate::error::Answer;
use crate::reload::{self, Outcome, Record, Trigger};
use crate::state::Shared;
use crate::tasks::{supervise, Task};
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

/// The admin API's writer of `Answer`s (the proxy listener has its own, on pingora's session).
impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = match self.raw {
            Some(raw) => {
                let content_type = [(axum::http::header::CONTENT_TYPE, raw.content_type)];
                (status, content_type, raw.bytes).into_response()
            }
            None => (status, Json(self.body)).into_response(),
        };
        let headers = response.headers_mut();
        if self.no_store {
            headers.insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
        }
        for (name, value) in self.headers {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { Answer::ok(json!({"status": "ok"})) }),
        )
        .route("/stats", get(stats))
        .route("/admin/upstreams", get(upstreams))
        .route("/admin/reload", post(reload))
        .route("/admin/reloads", get(reloads))
        .route("/admin/config", get(effective_config))
        .route("/admin/auth", get(auth_outcomes))
        .route(
            "/admin/upstreams/{group}/servers/{addr}/drain",
            post(|state, path| set_drained(state, path, true)),
        )
        .route(
            "/admin/upstreams/{group}/servers/{addr}/enable",
            post(|state, path| set_drained(state, path, false)),
        )
        .route("/metrics", get(metrics))
        .merge(cache_endpoints::routes())
        .fallback(|| async { Answer::error(404, "no such admin endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            access::require_token,
        ))
        .with_state(shared)
}

/// The classic text exposition, or OpenMetrics (with exemplars) when the scrape asks for it.
async fn metrics(State(shared): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .map(|value| value.as_bytes());
    let format = crate::metrics::openmetrics::Format::negotiate(accept);
    match crate::metrics::render(&shared, format) {
        Ok(body) => (
            [(axum::http::header::CONTENT_TYPE, format.content_type())],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render metrics");
            Answer::error(500, "cannot render metrics").into_response()
        }
    }
}

/// `{"accepted": n, "rejected": {reason: n, ...}}` with every reason present.
async fn auth_outcomes(State(shared): State<Shared>) -> Answer {
    let outcomes = shared.auth_outcomes();
    let rejected: serde_json::Map<String, Value> = outcomes
        .rejected()
        .map(|(reason, count)| (reason.to_owned(), count.into()))
        .collect();
    Answer::ok(json!({"accepted": outcomes.accepted(), "rejected": rejected}))
}

async fn stats(State(shared): State<Shared>) -> Answer {
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
    Answer::ok(json!({"generation": snapshot.generation, "upstreams": upstreams}))
}

async fn upstreams(State(shared): State<Shared>) -> Answer {
    let snapshot = shared.snapshot();
    let groups: Vec<Value> = snapshot
        .pools
        .iter()
        .map(|pool| {
            let servers: Vec<_> = pool
                .servers
                .iter()
                .map(|server| {
                    let mut report =
                        json!(server.state.report(server.weight, pool.config.slow_start));
                    report["origin"] =
                        crate::discovery::expand::origin_json(server.origin.as_deref());
                    report
                })
                .collect();
            json!({
                "name": pool.name(),
                "strategy": pool.config.strategy,
                "retries": pool.config.retries,
                "health_check": pool.config.health_check,
                "healthy": pool.healthy_count(),
                "queue": pool.config.queue,
                "queued": pool.queue.len(),
                "circuit": pool.circuit_report(),
                "dns": crate::dns::status::status(&shared.registry().discovered, pool.name()),
                "servers": servers,
            })
        })
        .collect();
    // Servers a reload removed whose WebSockets (and other tunnels) are still open.
    let departed: Vec<Value> = shared
        .registry()
        .departed(|group, addr| snapshot.lists(group, addr))
        .iter()
        .map(|state| {
            json!({
                "group": state.group,
                "addr": state.addr.to_string(),
                "upgraded_open": state.upgraded_open(),
                "in_flight": state.in_flight(),
            })
        })
        .collect();
    Answer::ok(
        json!({"generation": snapshot.generation, "upstreams": groups, "departed": departed}),
    )
}

async fn reload(State(shared): State<Shared>) -> Answer {
    let result = tokio::task::spawn_blocking(move || reload::reload(&shared, Trigger::Api)).await;
    match result {
        Ok(record) => {
            let status = match record.result {
                Outcome::Rejected => 422,
                Outcome::Applied | Outcome::Unchanged => 200,
            };
            Answer::new(status, reload_body(&record))
        }
        Err(_) => Answer::error(500, "reload task failed"),
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

/// The journal, and `restart_pending`: each startup field the loaded file changes, which
/// takes effect at the next start.
async fn reloads(State(shared): State<Shared>) -> Answer {
    let loaded = shared.loaded();
    let pending: Vec<&str> = loaded
        .pending_restart
        .iter()
        .map(|field| field.path.as_str())
        .collect();
    Answer::ok(json!({
        "generation": loaded.snapshot.generation,
        "restart_pending": pending,
        "reloads": shared.reloads(),
    }))
}

/// The serving config. Its startup fields are the running values, also under `startup`;
/// `pending_restart` holds the file's values of those that differ.
async fn effective_config(State(shared): State<Shared>) -> Answer {
    let loaded = shared.loaded();
    match serde_json::to_value(&*loaded.snapshot.config) {
        Ok(config) => Answer::ok(json!({
            "generation": loaded.snapshot.generation,
            "sha256": loaded.sha256,
            "loaded_at": loaded.loaded_at,
            "loaded_unix_ms": loaded.loaded_unix_ms,
            "path": shared.config_path().display().to_string(),
            "config": config,
            // What the listeners and the runtime run with, and (by TOML path) the values the
            // file has for those a restart would change.
            "startup": loaded.snapshot.config.startup(),
            "pending_restart": loaded
                .pending_restart
                .iter()
                .map(|field| (field.path.clone(), field.pending.clone()))
                .collect::<serde_json::Map<String, Value>>(),
        })),
        Err(error) => Answer::error(500, format!("cannot render the config: {error}")),
    }
}

/// Drains or enables one server of the current snapshot. The flag lives in the server's
/// shared state, so it holds across reloads for as long as the server stays in its group.
async fn set_drained(
    State(shared): State<Shared>,
    Path((group, addr)): Path<(String, String)>,
    drained: bool,
) -> Answer {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return Answer::error(400, format!("not a socket address: {addr}"));
    };
    let snapshot = shared.snapshot();
    let Some(pool) = snapshot.pool(&group) else {
        return Answer::error(404, format!("no upstream group {group}"));
    };
    let Some(server) = pool.servers.iter().find(|server| server.state.addr == addr) else {
        return Answer::error(404, format!("no server {addr} in upstream {group}"));
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
    Answer::ok(json!({
        "upstream": group,
        "server": server.state.report(server.weight, pool.config.slow_start),
    }))
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
        let shared = &self.shared;
        keep_running(
            shared,
            &shutdown,
            Task::HealthChecker,
            |shared, stop| async move { crate::health::run(move || shared.snapshot(), stop).await },
        );
        keep_running(shared, &shutdown, Task::SignalHandler, |shared, _| {
            reload_on_sighup(shared)
        });
        keep_running(shared, &shutdown, Task::SignalHandler, |_, _| {
            crate::access_log::reopen_on_sigusr1()
        });
        keep_running(
            shared,
            &shutdown,
            Task::CacheSweeper,
            cache_endpoints::sweep,
        );
        keep_running(shared, &shutdown, Task::Discovery, crate::dns::run::run);
        keep_running(shared, &shutdown, Task::ConfigWatcher, crate::watch::run);
        keep_running(
            shared,
            &shutdown,
            Task::ConfigWatcher,
            crate::watch::certificates::run,
        );
        if let Some(remote) = shared.cache().remote().cloned() {
            keep_running(shared, &shutdown, Task::CachePurges, move |shared, _| {
                crate::cache::remote::subscriber::run(remote.clone(), shared.cache().clone())
            });
        }
        let bound = scalelab_common::sync::lock(&self.listener).take();
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

/// Spawns a background task under `supervise`, which starts it again if it ever stops or
/// panics before shutdown.
fn keep_running<F, Fut>(shared: &Shared, shutdown: &ShutdownWatch, task: Task, start: F)
where
    F: Fn(Shared, ShutdownWatch) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (shared, stop) = (shared.clone(), shutdown.clone());
    tokio::spawn(supervise(
        task,
        shared.tasks().clone(),
        shutdown.clone(),
        move || start(shared.clone(), stop.clone()),
    ));
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
            tokio::task::spawn_blocking(move || reload::reload(&shared, Trigger::Signal)).await
        {
            tracing::error!(%error, "config reload task failed");
        }
    }
}

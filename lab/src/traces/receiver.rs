//! The receiver's HTTP side, served on `up`'s runtime: `POST /v1/traces` takes an OTLP/HTTP
//! protobuf export into the `Store`; `GET /traces` lists the held traces (newest first, with the
//! bounds and the evictions); `GET /traces/{id}` answers one trace's spans as JSON. Loopback
//! only, like the lab's Prometheus: traces carry URLs and internals.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scalelab_common::sync::lock;
use serde_json::json;

use super::store::{Bounds, Store};
use crate::labfile::LabFile;

type Shared = Arc<Mutex<Store>>;

/// The largest export body taken: the SDKs' batches are a few hundred kilobytes at most.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The receiver `up` runs: with `--observe` and no `[lab] otlp_endpoint`, bound (see
/// `Prepared::bind`) and named in `file`'s `[lab] otlp_endpoint`, so the plan gives it to every
/// service; otherwise `None`, and a URL file a previous `up` left is removed.
///
/// # Errors
/// As `Prepared::bind`.
pub fn prepare(observe: bool, file: &mut LabFile) -> Result<Option<Prepared>, ReceiverError> {
    if !observe || file.lab.otlp_endpoint.is_some() {
        let _ = std::fs::remove_file(super::url_file(&file.data_dir));
        return Ok(None);
    }
    let prepared = Prepared::bind(&file.data_dir, Bounds::default())?;
    file.lab.otlp_endpoint = Some(prepared.url().to_owned());
    Ok(Some(prepared))
}

/// A bound listener whose URL is written where the lab's commands look for it; `serve` starts it.
#[derive(Debug)]
pub struct Prepared {
    listener: TcpListener,
    url: String,
    url_file: PathBuf,
    bounds: Bounds,
}

/// Why the receiver cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("cannot bind the trace receiver on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("cannot write the trace receiver's address to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Prepared {
    /// Binds 127.0.0.1:`PREFERRED_PORT` (4318) when free, else any free port, and writes the
    /// URL into the data dir. Bound here, before any child starts, so no other process can take
    /// the port between the choice and the use.
    ///
    /// # Errors
    /// No port can be bound, or the URL file cannot be written.
    pub fn bind(data_dir: &std::path::Path, bounds: Bounds) -> Result<Prepared, ReceiverError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, super::PREFERRED_PORT))
            .or_else(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .map_err(ReceiverError::Bind)?;
        listener
            .set_nonblocking(true)
            .map_err(ReceiverError::Bind)?;
        let addr: SocketAddr = listener.local_addr().map_err(ReceiverError::Bind)?;
        let url = format!("http://{addr}");
        let url_file = super::url_file(data_dir);
        std::fs::write(&url_file, format!("{url}\n")).map_err(|source| ReceiverError::Write {
            path: url_file.clone(),
            source,
        })?;
        Ok(Prepared {
            listener,
            url,
            url_file,
            bounds,
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`), the OTLP endpoint to give the exporters.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Serves on the current tokio runtime until the returned guard is dropped.
    ///
    /// # Errors
    /// The listener cannot be handed to tokio.
    pub fn serve(self) -> Result<Serving, ReceiverError> {
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(ReceiverError::Bind)?;
        let app = router(Arc::new(Mutex::new(Store::new(self.bounds))));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("scalelab: the trace receiver stopped: {error}");
            }
        });
        Ok(Serving {
            task,
            url_file: self.url_file,
        })
    }
}

/// A running receiver: dropping it stops the server and removes the URL file, so a later
/// `scalelab trace` says that no receiver runs instead of trying a dead port.
#[derive(Debug)]
pub struct Serving {
    task: tokio::task::JoinHandle<()>,
    url_file: PathBuf,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.url_file);
    }
}

/// The receiver's routes over `store` (also what the tests serve).
pub fn router(store: Arc<Mutex<Store>>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .route("/traces", get(list))
        .route("/traces/{id}", get(one))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(store)
}

async fn export(State(store): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this receiver takes OTLP/HTTP protobuf (application/x-protobuf), not OTLP/JSON",
        );
    }
    match scalelab_common::trace::received::decode(&body) {
        Ok(spans) => {
            lock(&store).insert(spans);
            // OTLP/HTTP's success answer: an empty ExportTraceServiceResponse.
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Vec::new(),
            )
                .into_response()
        }
        Err(decode) => error(
            StatusCode::BAD_REQUEST,
            &format!("not an OTLP ExportTraceServiceRequest: {decode}"),
        ),
    }
}

async fn list(State(store): State<Shared>) -> Response {
    Json(lock(&store).list()).into_response()
}

async fn one(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    if !super::valid_id(&id) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("{id:?} is not a trace id (32 lowercase hex digits, not all zero)"),
        );
    }
    let store = lock(&store);
    match store.trace(&id) {
        Some(trace) => Json(trace).into_response(),
        None => {
            let list = store.list();
            error(
                StatusCode::NOT_FOUND,
                &format!(
                    "trace {id} is not held: the receiver keeps the last {} traces and {} spans \
                     ({} traces evicted so far), and only sampled requests are exported",
                    list.max_traces, list.max_spans, list.evicted_traces
                ),
            )
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

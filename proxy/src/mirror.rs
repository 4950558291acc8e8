//! Mirroring (nginx's `mirror`, Envoy's `request_mirror_policies`): a copy of a request goes to
//! a route's shadow group in a task of its own, off the client's path, and its answer is read
//! to the end and thrown away. The client's response never waits for it and never sees its
//! failures; what happened to each copy is counted in
//! `scalelab_mirror_requests_total{route,group,status}` (the status code, or `timeout`,
//! `connect_error`, `error`, `no_server`, `too_large`, `incomplete`).
//!
//! The copy takes a server of the shadow group by the group's own strategy and holds its
//! in-flight slot while it is out, so the shadow group's `max_connections` bound the load a
//! mirror adds and `/admin/upstreams` shows it.

use crate::upstream::{Hint, UpstreamPool};
use bytes::Bytes;
use http::{HeaderMap, Method};
use prometheus::{IntCounterVec, Opts};
use std::sync::{Arc, OnceLock};

/// The request as it was sent upstream (after the route's rewrites), and its whole body.
#[derive(Debug)]
pub struct Copy {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends `copy` to `pool` in a task of its own and counts the outcome for `route`.
pub fn spawn(pool: Arc<UpstreamPool>, route: String, copy: Copy) {
    tokio::spawn(async move {
        let status = send(&pool, copy).await;
        count(&route, pool.name(), &status);
    });
}

/// The copy's outcome: the status code's digits, or why there is none.
async fn send(pool: &UpstreamPool, copy: Copy) -> String {
    let Ok((_, lease)) = pool.select_with(pool.config.strategy, 0, false, Hint::default()) else {
        return "no_server".to_string();
    };
    let addr = lease.server().addr;
    // The group's own limits bound the whole exchange: connect, then the answer.
    let timeout = pool.config.connect_timeout + pool.config.read_timeout;
    let result = crate::http1::send_body(
        copy.method,
        addr,
        &copy.target,
        copy.headers,
        copy.body,
        timeout,
    )
    .await;
    drop(lease);
    match result {
        Ok(status) => status.as_str().to_string(),
        Err(crate::http1::Error::Timeout(_)) => "timeout".to_string(),
        Err(crate::http1::Error::Connect(_)) => "connect_error".to_string(),
        Err(error) => {
            tracing::debug!(upstream = %pool.name(), %addr, %error, "mirrored request failed");
            "error".to_string()
        }
    }
}

fn series() -> Option<&'static IntCounterVec> {
    static SERIES: OnceLock<Option<IntCounterVec>> = OnceLock::new();
    SERIES
        .get_or_init(|| {
            let vec = IntCounterVec::new(
                Opts::new(
                    "scalelab_mirror_requests_total",
                    "Copies of requests sent to a route's mirror group, by the status of their \
                     answer (or timeout, connect_error, error, no_server, too_large, incomplete).",
                ),
                &["route", "group", "status"],
            )
            .ok()?;
            if let Err(error) = prometheus::register(Box::new(vec.clone())) {
                tracing::error!(%error, "cannot register scalelab_mirror_requests_total");
            }
            Some(vec)
        })
        .as_ref()
}

/// Counts one copy of a request of `route` to `group`.
pub fn count(route: &str, group: &str, status: &str) {
    if let Some(series) = series() {
        series.with_label_values(&[route, group, status]).inc();
    }
}

/// Drops the series of (route, group) pairs the new config no longer mirrors. A copy still
/// out when its route's mirror was removed counts once more when it ends.
pub fn prune(routes: &[crate::config::Route]) {
    let Some(series) = series() else { return };
    let keep = |labels: &crate::telemetry::Labels| {
        let value = |wanted: &str| labels.iter().find(|(name, _)| *name == wanted).map(|l| l.1);
        routes.iter().any(|route| {
            Some(route.name.as_str()) == value("route")
                && route
                    .mirror
                    .as_ref()
                    .is_some_and(|m| Some(m.group.as_str()) == value("group"))
        })
    };
    crate::telemetry::prune_vec(series, &keep);
}

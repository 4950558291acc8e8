//! A server's request-path series: responses by code, response time and errors by kind,
//! made at 0 when the server is first published.

use super::{UpstreamError, Vectors, CODES, VECTORS};
use prometheus::{Histogram, IntCounter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The upstream answers whose series every server has from its start.
const SERVER_CODES: [u16; 5] = [200, 500, 502, 503, 504];

/// A server's pre-resolved series. It lives in the server's state, which outlives snapshots.
#[derive(Debug)]
pub struct ServerMetrics {
    upstream: String,
    /// Set when a reload removed the server (see `RouteMetrics::retired`).
    retired: AtomicBool,
    server: String,
    responses: Vec<OnceLock<IntCounter>>,
    duration: OnceLock<Histogram>,
    errors: [OnceLock<IntCounter>; 6],
}

impl ServerMetrics {
    /// Stops recording: the server left the config (its series are pruned).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    fn vectors(&self) -> Option<&'static Vectors> {
        VECTORS
            .get()
            .filter(|_| !self.retired.load(Ordering::Relaxed))
    }

    /// A server's series, made at 0 for the answers every server gives (200 and the 5xx
    /// codes), its response time and every kind of error, so the first of each is seen by
    /// `rate()` (see `RouteMetrics::warm`). Before `init` (unit tests) nothing is made.
    pub fn new(upstream: &str, server: &str) -> ServerMetrics {
        let metrics = ServerMetrics {
            upstream: upstream.to_string(),
            retired: AtomicBool::new(false),
            server: server.to_string(),
            responses: (0..CODES.len()).map(|_| OnceLock::new()).collect(),
            duration: OnceLock::new(),
            errors: Default::default(),
        };
        if let Some(vectors) = metrics.vectors() {
            for status in SERVER_CODES {
                if let Some(code) = CODES.iter().position(|code| *code == status) {
                    metrics.response_counter(vectors, code);
                }
            }
            metrics.duration_histogram(vectors);
            for kind in UpstreamError::ALL {
                metrics.error_counter(vectors, kind);
            }
        }
        metrics
    }

    fn response_counter(&self, vectors: &Vectors, code: usize) -> &IntCounter {
        self.responses[code].get_or_init(|| {
            vectors.upstream_requests.with_label_values(&[
                self.upstream.as_str(),
                self.server.as_str(),
                &CODES[code].to_string(),
            ])
        })
    }

    fn duration_histogram(&self, vectors: &Vectors) -> &Histogram {
        self.duration.get_or_init(|| {
            vectors
                .upstream_duration
                .with_label_values(&[self.upstream.as_str(), self.server.as_str()])
        })
    }

    fn error_counter(&self, vectors: &Vectors, kind: UpstreamError) -> &IntCounter {
        let slot = UpstreamError::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.errors[slot].get_or_init(|| {
            vectors.upstream_errors.with_label_values(&[
                self.upstream.as_str(),
                self.server.as_str(),
                kind.label(),
            ])
        })
    }

    /// The server's response header arrived `after` the server was chosen.
    pub fn response(&self, status: u16, after: Duration) {
        let Some(vectors) = self.vectors() else {
            return;
        };
        match CODES.iter().position(|&code| code == status) {
            Some(code) => self.response_counter(vectors, code).inc(),
            None => vectors
                .upstream_requests
                .with_label_values(&[
                    self.upstream.as_str(),
                    self.server.as_str(),
                    &status.to_string(),
                ])
                .inc(),
        }
        self.duration_histogram(vectors)
            .observe(after.as_secs_f64());
    }

    pub fn error(&self, kind: UpstreamError) {
        if let Some(vectors) = self.vectors() {
            self.error_counter(vectors, kind).inc();
        }
    }

    /// One active health check's result, and the transition it caused, if any.
    pub fn health_check(&self, passed: bool, became: Option<bool>) {
        let Some(vectors) = self.vectors() else {
            return;
        };
        let labels = [self.upstream.as_str(), self.server.as_str()];
        let result = if passed { "pass" } else { "fail" };
        vectors
            .health_checks
            .with_label_values(&[labels[0], labels[1], result])
            .inc();
        if let Some(healthy) = became {
            self.health_transition(healthy);
        }
    }

    /// The server became healthy or unhealthy (by an active check, or ejected passively).
    pub fn health_transition(&self, healthy: bool) {
        let Some(vectors) = self.vectors() else {
            return;
        };
        let to = if healthy { "healthy" } else { "unhealthy" };
        vectors
            .health_transitions
            .with_label_values(&[self.upstream.as_str(), self.server.as_str(), to])
            .inc();
    }
}

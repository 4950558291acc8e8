//! Metrics recorded on the request path: request rate, status codes, latency and response size
//! per route; requests, response time, errors and retries per upstream server; health checks.
//! (`metrics` renders them with the state-derived series at scrape time.)
//!
//! The vectors live in Prometheus' default registry for the life of the process, so a series
//! keeps counting across reloads. What a request touches is pre-resolved: each route of a
//! snapshot and each server's state hold `OnceLock` slots for their series, filled on first
//! use, so recording a request is a few atomic adds with no lock, no label hashing and no
//! allocation. A reload `prune`s the series of routes and servers it removed.
//!
//! A sampled request also leaves its trace id as the exemplar of its duration bucket
//! (`exemplars`, issue 29); an unsampled one only tests an `Option`.

use exemplars::{Exemplar, SeriesExemplars};
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use scalelab_common::trace::TraceId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Request and upstream response durations, in seconds: from half a millisecond (a cache hit)
/// to ten seconds (a slow lab backend).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The request-duration histogram, the one whose buckets carry exemplars.
pub const DURATION_FAMILY: &str = "scalelab_http_request_duration_seconds";

/// Response body sizes in bytes: powers of four from 64 B to 4 MiB.
pub const SIZE_BUCKETS: [f64; 9] = [
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
];

/// The methods counted by name; any other is `other`.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
];

/// Statuses with a pre-resolved slot; a rarer one takes the label lookup.
const CODES: [u16; 22] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 413, 429, 431, 500,
    502, 503, 504,
];

/// How a request used the cache, for the duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    Hit,
    Miss,
    Stale,
    Bypass,
    None,
}

impl CacheUse {
    const ALL: [CacheUse; 5] = [
        CacheUse::Hit,
        CacheUse::Miss,
        CacheUse::Stale,
        CacheUse::Bypass,
        CacheUse::None,
    ];

    /// The index of its pre-resolved slots.
    fn slot(self) -> usize {
        CacheUse::ALL.iter().position(|c| *c == self).unwrap_or(4)
    }

    fn label(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
            CacheUse::Stale => "stale",
            CacheUse::Bypass => "bypass",
            CacheUse::None => "none",
        }
    }
}

/// Why an upstream exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    ConnectRefused,
    ConnectTimeout,
    ReadTimeout,
    Reset,
    Protocol,
    /// The TLS handshake with the server failed (its certificate did not verify, or no common
    /// version or cipher).
    Tls,
}

impl UpstreamError {
    const ALL: [UpstreamError; 6] = [
        UpstreamError::ConnectRefused,
        UpstreamError::ConnectTimeout,
        UpstreamError::ReadTimeout,
        UpstreamError::Reset,
        UpstreamError::Protocol,
        UpstreamError::Tls,
    ];

    fn label(self) -> &'static str {
        match self {
            UpstreamError::ConnectRefused => "connect_refused",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::ReadTimeout => "read_timeout",
            UpstreamError::Reset => "reset",
            UpstreamError::Protocol => "protocol",
            UpstreamError::Tls => "tls",
        }
    }

    /// The kind of a pingora error that ended an upstream exchange.
    pub fn of(error: &pingora::ErrorType) -> UpstreamError {
        use pingora::ErrorType as E;
        match error {
            E::ConnectTimedout | E::TLSHandshakeTimedout => UpstreamError::ConnectTimeout,
            E::ConnectRefused | E::ConnectNoRoute | E::ConnectError | E::BindError => {
                UpstreamError::ConnectRefused
            }
            E::ReadTimedout | E::WriteTimedout => UpstreamError::ReadTimeout,
            E::ConnectionClosed | E::ReadError | E::WriteError | E::ConnectProxyFailure => {
                UpstreamError::Reset
            }
            E::TLSHandshakeFailure | E::InvalidCert | E::HandshakeError | E::TLSWantX509Lookup => {
                UpstreamError::Tls
            }
            _ => UpstreamError::Protocol,
        }
    }
}

/// The process-wide metric vectors.
struct Vectors {
    requests: IntCounterVec,
    duration: HistogramVec,
    size: HistogramVec,
    upstream_requests: IntCounterVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    retries: IntCounterVec,
    health_checks: IntCounterVec,
    health_transitions: IntCounterVec,
}

/// Builds and registers the vectors. Building fails only for malformed names or labels (a
/// programming error the tests catch); if registering fails (a name taken by another
/// collector), the vectors still record and the failure is logged, rather than the proxy
/// refusing to serve.
fn vectors() -> Result<Vectors, prometheus::Error> {
    fn counter(
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
        register(name, Box::new(vec.clone()));
        Ok(vec)
    }
    fn histogram(
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, prometheus::Error> {
        let vec = HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )?;
        register(name, Box::new(vec.clone()));
        Ok(vec)
    }
    Ok(Vectors {
        requests: counter(
            "scalelab_http_requests_total",
            "Requests answered, by route (`none`: no route matched), method, status code and \
             protocol (http/1.0, http/1.1, h2), including the ones the proxy answers itself and \
             cache hits.",
            &["route", "method", "code", "protocol"],
        )?,
        duration: histogram(
            DURATION_FAMILY,
            "Time from the request's header to the last byte of the response, by route and \
             cache use (hit, miss, stale, bypass, none).",
            &["route", "cache"],
            &DURATION_BUCKETS,
        )?,
        size: histogram(
            "scalelab_http_response_size_bytes",
            "Response body bytes sent, by route.",
            &["route"],
            &SIZE_BUCKETS,
        )?,
        upstream_requests: counter(
            "scalelab_upstream_requests_total",
            "Responses received from upstream servers, by status code.",
            &["upstream", "server", "code"],
        )?,
        upstream_duration: histogram(
            "scalelab_upstream_response_duration_seconds",
            "Time from choosing a server to its response header.",
            &["upstream", "server"],
            &DURATION_BUCKETS,
        )?,
        upstream_errors: counter(
            "scalelab_upstream_errors_total",
            "Failed upstream exchanges by kind (connect_refused, connect_timeout, read_timeout, \
             reset, protocol, tls).",
            &["upstream", "server", "kind"],
        )?,
        retries: counter(
            "scalelab_upstream_retries_total",
            "Retries on another server, by whether the request then succeeded (recovered) or \
             not (exhausted).",
            &["upstream", "outcome"],
        )?,
        health_checks: counter(
            "scalelab_health_checks_total",
            "Active health checks by result (pass, fail).",
            &["upstream", "server", "result"],
        )?,
        health_transitions: counter(
            "scalelab_health_transitions_total",
            "Servers changing health, by the state they went to (healthy, unhealthy).",
            &["upstream", "server", "to"],
        )?,
    })
}

fn register(name: &str, collector: Box<dyn Collector>) {
    if let Err(error) = prometheus::register(collector) {
        tracing::error!(metric = name, %error, "cannot register metric");
    }
}

static VECTORS: OnceLock<Vectors> = OnceLock::new();

/// Builds and registers every vector; the server calls this once before it listens. Until
/// then (and if it failed) nothing is recorded.
///
/// # Errors
/// A malformed metric name or label (a programming error the tests catch).
pub fn init() -> Result<(), prometheus::Error> {
    // Serialised so the vectors are built and registered once.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _building = scalelab_common::sync::lock(&BUILDING);
    if VECTORS.get().is_none() {
        let _ = VECTORS.set(vectors()?);
    }
    Ok(())
}

/// A route's pre-resolved series; `none` stands for requests no route matched.
#[derive(Debug)]
pub struct RouteMetrics {
    route: String,
    /// Set when a reload removed the route: requests still on the old snapshot then record
    /// nothing, so the pruned series do not come back.
    retired: AtomicBool,
    requests: Vec<OnceLock<IntCounter>>,
    duration: [OnceLock<Histogram>; 5],
    /// The duration series' exemplars, made by the first sampled request of each.
    exemplars: [OnceLock<Arc<SeriesExemplars>>; 5],
    size: OnceLock<Histogram>,
}

impl RouteMetrics {
    /// Stops recording: the route left the config (its series are pruned).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Whether the route left the config.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    pub fn new(route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_string(),
            retired: AtomicBool::new(false),
            requests: (0..Protocol::ALL.len() * METHODS.len() * CODES.len())
                .map(|_| OnceLock::new())
                .collect(),
            duration: Default::default(),
            exemplars: Default::default(),
            size: OnceLock::new(),
        }
    }

    /// Records one answered request; `sampled` is its trace id when its trace is sampled,
    /// kept as the exemplar of its duration bucket.
    // Each argument is one fact of the finished request, read once by its one caller
    // (`service::observe`); a struct for them would only be built to be taken apart here.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        method: &http::Method,
        protocol: Protocol,
        status: u16,
        cache: CacheUse,
        duration: Duration,
        body_bytes: usize,
        sampled: Option<TraceId>,
    ) {
        let Some(vectors) = VECTORS
            .get()
            .filter(|_| !self.retired.load(Ordering::Relaxed))
        else {
            return;
        };
        let method = method_index(method);
        match CODES.iter().position(|&code| code == status) {
            Some(code) => self.request_counter(vectors, method, protocol, code).inc(),
            None => vectors
                .requests
                .with_label_values(&[
                    self.route.as_str(),
                    METHODS[method],
                    &status.to_string(),
                    protocol.label(),
                ])
                .inc(),
        }
        let seconds = duration.as_secs_f64();
        self.duration_histogram(vectors, cache).observe(seconds);
        if let Some(trace_id) = sampled {
            self.exemplars(cache).offer(&Exemplar {
                trace_id,
                value: seconds,
                unix_ms: scalelab_common::clock::unix_ms(),
            });
        }
        self.size
            .get_or_init(|| vectors.size.with_label_values(&[self.route.as_str()]))
            .observe(body_bytes as f64);
    }

    /// The pre-resolved `scalelab_http_requests_total` series of (method, protocol, code),
    /// indexes into `METHODS` and `CODES`.
    fn request_counter(
        &self,
        vectors: &Vectors,
        method: usize,
        protocol: Protocol,
        code: usize,
    ) -> &IntCounter {
        self.requests[(protocol.index() * METHODS.len() + method) * CODES.len() + code].get_or_init(
            || {
                vectors.requests.with_label_values(&[
                    self.route.as_str(),
                    METHODS[method],
                    &CODES[code].to_string(),
                    protocol.label(),
                ])
            },
        )
    }

    fn duration_histogram(&self, vectors: &Vectors, cache: CacheUse) -> &Histogram {
        self.duration[cache.slot()].get_or_init(|| {
            vectors
                .duration
                .with_label_values(&[self.route.as_str(), cache.label()])
        })
    }

    /// The exemplars of the duration series of `cache`: found in (or added to) the exposition's
    /// index by the series' first sampled request, then held here.
    fn exemplars(&self, cache: CacheUse) -> &SeriesExemplars {
        self.exemplars[cache.slot()].get_or_init(|| {
            exemplars::series(
                DURATION_FAMILY,
                &[("route", self.route.as_str()), ("cache", cache.label())],
                &DURATION_BUCKETS,
            )
        })
    }

    /// Creates the series of `expected` at 0 before any request. Prometheus' `rate()` and
    /// `increase()` need two samples of a series, so a series born at its first request hides
    /// that request, or a whole first burst between two scrapes (issue 31: 1,278 requests read
    /// as ~260, and every 429 and 401 as 0). Nothing else changes: a request finds its series
    /// already made.
    pub fn warm(&self, expected: &Expected) {
        let Some(vectors) = VECTORS
            .get()
            .filter(|_| !self.retired.load(Ordering::Relaxed))
        else {
            return;
        };
        for method in &expected.methods {
            let method = method_index(method);
            for &protocol in &expected.protocols {
                for status in &expected.codes {
                    if let Some(code) = CODES.iter().position(|code| code == status) {
                        self.request_counter(vectors, method, protocol, code);
                    }
                }
            }
        }
        for &cache in &expected.caches {
            self.duration_histogram(vectors, cache);
        }
        self.size
            .get_or_init(|| vectors.size.with_label_values(&[self.route.as_str()]));
    }
}

fn method_index(method: &http::Method) -> usize {
    METHODS
        .iter()
        .position(|name| *name == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

/// Counts the retries of one request on `upstream`: `recovered` when it then succeeded.
pub fn retries(upstream: &str, retries: u64, recovered: bool) {
    if retries == 0 {
        return;
    }
    let Some(vectors) = VECTORS.get() else {
        return;
    };
    let outcome = if recovered { "recovered" } else { "exhausted" };
    vectors
        .retries
        .with_label_values(&[upstream, outcome])
        .inc_by(retries);
}

pub mod exemplars;
mod protocol;
mod prune;
mod server_series;
pub mod split_series;
#[cfg(test)]
mod tests;
mod warm;

pub use protocol::Protocol;
pub use prune::{prune, prune_vec, Labels};
pub use server_series::ServerMetrics;
pub use warm::Expected;

//! What `/admin/upstreams` shows for one server: its `ServerState` read at one moment.

use super::{effective_weight, CheckRecord, ServerState};
use scalelab_common::sync::lock;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl ServerState {
    pub fn report(&self, weight: u32, window: Option<Duration>) -> ServerReport {
        ServerReport {
            effective_weight: effective_weight(weight, self.ramp_tenths(window)),
            addr: self.addr.to_string(),
            healthy: self.is_healthy(),
            drained: self.is_drained(),
            available: self.is_available(),
            weight,
            in_flight: self.in_flight(),
            upgraded_open: self.upgraded_open(),
            selected: self.selected(),
            consecutive_successes: self.consecutive_successes.load(Ordering::Relaxed),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            last_check: lock(&self.last_check).clone(),
            ewma_ms: (self.ewma_us() / 10.0).round() / 100.0,
            ejections: self.outlier.ejections(),
            ejected: self.ejected(),
        }
    }
}

/// What the admin API shows for one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub addr: String,
    /// The health checks' (and passive ejection's) verdict, regardless of a manual drain.
    pub healthy: bool,
    pub drained: bool,
    /// Whether new requests may go to it: healthy and not drained.
    pub available: bool,
    pub weight: u32,
    /// The weight slow start gives it now (the configured weight once ramped up).
    pub effective_weight: f64,
    pub in_flight: usize,
    /// Upgraded connections (WebSockets) open on it, part of `in_flight`.
    pub upgraded_open: usize,
    pub selected: u64,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    pub last_check: Option<CheckRecord>,
    /// The peak EWMA of its response time now, in milliseconds (0 before its first response);
    /// `strategy = "ewma"` weighs it by in-flight requests.
    pub ewma_ms: f64,
    /// How many times outlier detection ejected it (each ejection lasts longer).
    pub ejections: u32,
    /// Out of rotation now by a passive ejection (outlier detection or a connect failure).
    pub ejected: bool,
}

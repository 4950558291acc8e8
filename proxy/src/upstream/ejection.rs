//! Outlier detection at run time: each server's runs of failed answers (in its `ServerState`,
//! so they survive reloads), and the ejection of a server whose run breaks a rule of its
//! group's `outlier` settings. The ejection is the passive one `is_healthy` already honours
//! (`down_until_ms`), so an active check that keeps passing does not bring it back early,
//! and slow start ramps it up when the ejection ends. Each ejection is logged and counted.

use super::{now_ms, ServerState, UpstreamPool};
use crate::balance::outlier::{self, Reason};
use crate::config::balancing::ErrorRate;
use prometheus::IntCounterVec;
use scalelab_common::sync::lock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Default)]
pub(super) struct OutlierState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    ejections: AtomicU32,
    /// `error_rate`'s current window: when it started (0: none yet), answers and failures.
    window_start_ms: AtomicU64,
    window_total: AtomicU32,
    window_errors: AtomicU32,
}

impl OutlierState {
    pub(super) fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Counts one answer in the current window (starting a new one when it ended) and says
    /// whether this failure takes the window's error rate to the threshold. Whoever starts a
    /// new window resets its counts, so an answer counted meanwhile may land in either window:
    /// the rate is approximate by a few answers, never by a window.
    fn count_in_window(&self, rate: &ErrorRate, failed: bool) -> bool {
        let now = now_ms().max(1);
        let start = self.window_start_ms.load(Ordering::Relaxed);
        let window = rate.window.as_millis() as u64;
        if (start == 0 || now.saturating_sub(start) >= window)
            && self
                .window_start_ms
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.window_total.store(0, Ordering::Relaxed);
            self.window_errors.store(0, Ordering::Relaxed);
        }
        let total = self.window_total.fetch_add(1, Ordering::Relaxed) + 1;
        if !failed {
            return false;
        }
        let errors = self.window_errors.fetch_add(1, Ordering::Relaxed) + 1;
        outlier::rate_breaks(errors, total, rate.threshold_percent, rate.min_requests)
    }
}

/// Held while deciding an ejection (rare: only when a run breaks a rule), so two servers
/// failing at once cannot both pass the group's `max_ejection` check.
static DECIDING: Mutex<()> = Mutex::new(());

fn ejections_metric() -> Option<&'static IntCounterVec> {
    static METRIC: OnceLock<Option<IntCounterVec>> = OnceLock::new();
    METRIC
        .get_or_init(|| {
            let vec = IntCounterVec::new(
                prometheus::Opts::new(
                    "scalelab_outlier_ejections_total",
                    "Servers ejected by outlier detection, by the rule their answers broke.",
                ),
                &["upstream", "server", "reason"],
            )
            .ok()?;
            if let Err(error) = prometheus::register(Box::new(vec.clone())) {
                tracing::error!(%error, "cannot register scalelab_outlier_ejections_total");
            }
            Some(vec)
        })
        .as_ref()
}

impl ServerState {
    /// Out of rotation by a passive ejection that has not ended yet.
    pub fn ejected(&self) -> bool {
        self.down_until_ms.load(Ordering::Relaxed) > now_ms()
    }
}

impl UpstreamPool {
    /// Makes the ejection series of a group with `outlier` exist at 0, so the first ejection
    /// is seen by `increase()`.
    pub(super) fn warm_outlier_metrics(&self) {
        if self.config.balancing.outlier.is_none() {
            return;
        }
        if let Some(metric) = ejections_metric() {
            for server in &self.servers {
                for reason in Reason::ALL {
                    let addr = server.state.addr.to_string();
                    metric.with_label_values(&[self.name(), &addr, reason.label()]);
                }
            }
        }
    }

    /// Records one outcome of a real request on `server`: a status, or `None` when no
    /// response came (reset, timeout). Ejects the server when its run breaks a rule and the
    /// group can spare it. Two relaxed loads on a success that follows a success.
    pub fn observe_outcome(&self, server: &ServerState, status: Option<u16>) {
        let Some(settings) = &self.config.balancing.outlier else {
            return;
        };
        let state = &server.outlier;
        let (is_5xx, is_gateway) = outlier::classify(status);
        let bump = |counter: &AtomicU32, failed: bool| {
            if failed {
                counter.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                if counter.load(Ordering::Relaxed) != 0 {
                    counter.store(0, Ordering::Relaxed);
                }
                0
            }
        };
        let fives = bump(&state.consecutive_5xx, is_5xx);
        let gateway = bump(&state.consecutive_gateway, is_gateway);
        let rate_broken = settings
            .error_rate
            .as_ref()
            .is_some_and(|rate| state.count_in_window(rate, is_5xx));
        let Some(reason) = outlier::broken_rule(
            fives,
            gateway,
            settings.consecutive_5xx,
            settings.consecutive_gateway_errors,
        )
        .or(rate_broken.then_some(Reason::ErrorRate)) else {
            return;
        };
        let _deciding = lock(&DECIDING);
        if server.ejected() {
            return;
        }
        let ejected = self.servers.iter().filter(|s| s.state.ejected()).count();
        let available = self
            .servers
            .iter()
            .filter(|s| s.state.is_available())
            .count();
        if !outlier::may_eject(
            self.servers.len(),
            ejected,
            available,
            settings.max_ejection_percent,
        ) {
            return;
        }
        let times = state.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let duration = outlier::ejection_time(settings.base_ejection, times);
        server
            .down_until_ms
            .store(now_ms() + duration.as_millis() as u64, Ordering::Relaxed);
        state.consecutive_5xx.store(0, Ordering::Relaxed);
        state.consecutive_gateway.store(0, Ordering::Relaxed);
        // Its next window starts when it is back, not with the failures that ejected it.
        state.window_start_ms.store(0, Ordering::Relaxed);
        if let Some(metric) = ejections_metric() {
            let addr = server.addr.to_string();
            metric
                .with_label_values(&[self.name(), &addr, reason.label()])
                .inc();
        }
        tracing::warn!(
            upstream = %self.name(), server = %server.addr, reason = reason.label(),
            ejection = times, seconds = duration.as_secs(),
            "server ejected by outlier detection"
        );
    }
}

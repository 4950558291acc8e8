//! One server's run-time state (`ServerState`): health and its transitions, passive ejection,
//! drain, in-flight count and counters. Shared by every snapshot that lists the same address in
//! the same group, so it outlives reloads.

use super::ejection;
use crate::balance::{self};
use crate::config::HealthCheck;
use crate::telemetry::ServerMetrics;
use http::HeaderValue;
use scalelab_common::clock::unix_ms;
use scalelab_common::sync::lock;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Run-time state of one server of one group. Shared by every snapshot that lists the same
/// address in the same group, so a reload keeps health and counters.
#[derive(Debug)]
pub struct ServerState {
    pub group: String,
    pub addr: SocketAddr,
    /// The address preformatted as a response header value, so responses do not format it.
    pub addr_header: HeaderValue,
    /// This server's request-path metric series, kept with the state so they survive reloads.
    pub metrics: ServerMetrics,
    pub(super) healthy: AtomicBool,
    /// Taken out of rotation by hand (`POST .../drain`). Kept apart from `healthy` so health
    /// checks never undo it, and kept in the registry so reloads never undo it either.
    pub(super) drained: AtomicBool,
    /// Passive ejection: until this many milliseconds since the pool epoch the server is out.
    pub(super) down_until_ms: AtomicU64,
    pub(super) in_flight: AtomicUsize,
    /// Of `in_flight`, the upgraded connections (WebSockets) open now: see `Lease::upgraded`.
    pub(super) upgraded: AtomicUsize,
    pub(super) selected: AtomicU64,
    pub(super) consecutive_successes: AtomicU32,
    pub(super) consecutive_failures: AtomicU32,
    pub(super) ever_passed: AtomicBool,
    /// Slow start: 1 + the milliseconds (on the pool epoch) at which it recovered or was added
    /// by a reload; 0 when it has not (start-up servers take their full weight at once).
    pub(super) ramp_from_ms: AtomicU64,
    pub(super) last_check: Mutex<Option<CheckRecord>>,
    /// Peak EWMA of response time: an `f32` of microseconds in the high half and the
    /// (wrapping) millisecond on the pool epoch it was updated at in the low half, so one
    /// compare-and-swap updates both and the request path stays lock-free.
    pub(super) ewma: AtomicU64,
    /// The group's `ewma_decay` in milliseconds, set by each snapshot that lists the server.
    pub(super) ewma_decay_ms: AtomicU64,
    /// Outlier detection's runs of failures and ejection count.
    pub(super) outlier: ejection::OutlierState,
}

/// The outcome of the latest active check, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRecord {
    pub at_unix_ms: u64,
    pub ok: bool,
    pub detail: String,
    pub duration_ms: u64,
}

/// A health change worth logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Up,
    Down,
}

/// Pure threshold logic: given the counters after a check, does the server change state?
/// A server that never passed becomes healthy on its first pass (as Envoy does), so start-up
/// needs one round; later recoveries need `healthy_threshold` consecutive passes.
pub fn next_health(
    healthy: bool,
    ever_passed: bool,
    passed: bool,
    consecutive: u32,
    check: &HealthCheck,
) -> Option<Transition> {
    match (healthy, passed) {
        (false, true) if !ever_passed || consecutive >= check.healthy_threshold => {
            Some(Transition::Up)
        }
        (true, false) if consecutive >= check.unhealthy_threshold => Some(Transition::Down),
        _ => None,
    }
}

pub(super) fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub(super) fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl ServerState {
    pub(super) fn new(
        group: &str,
        addr: SocketAddr,
        initially_healthy: bool,
        ramping: bool,
    ) -> ServerState {
        let addr_header = HeaderValue::from_str(&addr.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        ServerState {
            group: group.to_string(),
            addr,
            addr_header,
            metrics: ServerMetrics::new(group, &addr.to_string()),
            healthy: AtomicBool::new(initially_healthy),
            drained: AtomicBool::new(false),
            down_until_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            upgraded: AtomicUsize::new(0),
            selected: AtomicU64::new(0),
            consecutive_successes: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ever_passed: AtomicBool::new(false),
            ramp_from_ms: AtomicU64::new(if ramping { now_ms() + 1 } else { 0 }),
            last_check: Mutex::new(None),
            ewma: AtomicU64::new(0),
            ewma_decay_ms: AtomicU64::new(
                crate::config::balancing::DEFAULT_EWMA_DECAY.as_millis() as u64
            ),
            outlier: ejection::OutlierState::default(),
        }
    }

    /// Takes traffic: healthy and not drained by hand. Two relaxed loads, so the request path
    /// stays lock-free.
    pub fn is_available(&self) -> bool {
        !self.drained.load(Ordering::Relaxed) && self.is_healthy()
    }

    /// Healthy by the active check and not passively ejected, whether drained or not.
    pub fn is_healthy(&self) -> bool {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        // Never ejected (0), the common case on every pick, needs no clock read.
        self.healthy.load(Ordering::Relaxed) && (until == 0 || until <= now_ms())
    }

    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// Takes the server out of rotation (`true`) or puts it back (`false`). Requests already
    /// on it keep their lease and finish. Returns the previous value.
    pub fn set_drained(&self, drained: bool) -> bool {
        self.drained.swap(drained, Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn upgraded_open(&self) -> usize {
        self.upgraded.load(Ordering::Relaxed)
    }

    pub fn selected(&self) -> u64 {
        self.selected.load(Ordering::Relaxed)
    }

    /// Slow start: the share of its weight the server has now, in tenths, over a `window`
    /// that starts when it recovered (by the active check, or at the end of a passive ejection)
    /// or was added by a reload. 10 without a window or after it.
    pub fn ramp_tenths(&self, window: Option<Duration>) -> u32 {
        let Some(window) = window else { return 10 };
        let recovered = self.ramp_from_ms.load(Ordering::Relaxed);
        let ejected_until = self.down_until_ms.load(Ordering::Relaxed);
        if recovered == 0 && ejected_until == 0 {
            return 10;
        }
        let start = recovered.saturating_sub(1).max(ejected_until);
        let elapsed = Duration::from_millis(now_ms().saturating_sub(start));
        balance::ramp_tenths(elapsed, window)
    }

    /// Takes an in-flight slot unless `max` are taken; exact under concurrency (a compare and
    /// swap), so a server never holds more than its `max_connections`.
    pub(super) fn try_acquire(&self, max: Option<u32>) -> bool {
        let max = max.map_or(usize::MAX, |m| m as usize);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Records an active check result and returns the transition it caused, if any.
    pub fn record_check(
        &self,
        passed: bool,
        detail: String,
        took: Duration,
        check: &HealthCheck,
    ) -> Option<Transition> {
        let consecutive = if passed {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.consecutive_successes.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consecutive_successes.store(0, Ordering::Relaxed);
            self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
        };
        *lock(&self.last_check) = Some(CheckRecord {
            at_unix_ms: unix_ms(),
            ok: passed,
            detail,
            duration_ms: took.as_millis() as u64,
        });
        let healthy = self.healthy.load(Ordering::Relaxed);
        let ever_passed = self.ever_passed.load(Ordering::Relaxed);
        if passed {
            self.ever_passed.store(true, Ordering::Relaxed);
        }
        let transition = next_health(healthy, ever_passed, passed, consecutive, check);
        match transition {
            Some(Transition::Up) => {
                self.down_until_ms.store(0, Ordering::Relaxed);
                self.healthy.store(true, Ordering::Relaxed);
                // A recovery ramps up; the first pass of a server (start-up) does not.
                if ever_passed {
                    self.ramp_from_ms.store(now_ms() + 1, Ordering::Relaxed);
                }
            }
            Some(Transition::Down) => self.healthy.store(false, Ordering::Relaxed),
            None => {}
        }
        transition
    }

    /// Passive ejection after a connection failure. With an active check the server stays out
    /// until the check sees it pass `healthy_threshold` times; without one it returns after
    /// `fail_timeout`. Returns true when this call took it out of rotation.
    pub fn record_connect_failure(&self, has_active_check: bool, fail_timeout: Duration) -> bool {
        self.consecutive_successes.store(0, Ordering::Relaxed);
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        if has_active_check {
            self.healthy.swap(false, Ordering::Relaxed)
        } else {
            let until = now_ms() + fail_timeout.as_millis() as u64;
            self.down_until_ms.swap(until, Ordering::Relaxed) <= now_ms()
        }
    }
}

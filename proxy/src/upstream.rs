//! Upstream groups at run time: per-server state that outlives config reloads (health,
//! in-flight count, counters), the pool a snapshot builds from it, and `select`, which turns
//! that state into `balance` candidates and picks one without taking a lock.

pub mod affinity;
#[cfg(test)]
mod balancing_tests;
pub mod circuit;
mod ewma;
mod explain;
mod outlier;
pub mod peer;
mod pick;
mod queue;
mod registry;
mod report;
#[cfg(test)]
mod tests;

use explain::explain_pick;

pub use pick::Hint;
pub use queue::{Refused, Ticket, WaitQueue};
pub use registry::Registry;
pub use report::ServerReport;

use crate::balance::hashing::{self, HashTable};
use crate::balance::{self, Candidate, Schedule, Strategy};
use crate::config::{self, HealthCheck};
use crate::telemetry::ServerMetrics;
use arc_swap::ArcSwap;
use http::HeaderValue;
use scalelab_common::clock::unix_ms;
use scalelab_common::sync::lock;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    healthy: AtomicBool,
    /// Taken out of rotation by hand (`POST .../drain`). Kept apart from `healthy` so health
    /// checks never undo it, and kept in the registry so reloads never undo it either.
    drained: AtomicBool,
    /// Passive ejection: until this many milliseconds since the pool epoch the server is out.
    down_until_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Of `in_flight`, the upgraded connections (WebSockets) open now: see `Lease::upgraded`.
    upgraded: AtomicUsize,
    selected: AtomicU64,
    consecutive_successes: AtomicU32,
    consecutive_failures: AtomicU32,
    ever_passed: AtomicBool,
    /// Slow start: 1 + the milliseconds (on the pool epoch) at which it recovered or was added
    /// by a reload; 0 when it has not (start-up servers take their full weight at once).
    ramp_from_ms: AtomicU64,
    last_check: Mutex<Option<CheckRecord>>,
    /// Peak EWMA of response time: an `f32` of microseconds in the high half and the
    /// (wrapping) millisecond on the pool epoch it was updated at in the low half, so one
    /// compare-and-swap updates both and the request path stays lock-free.
    ewma: AtomicU64,
    /// The group's `ewma_decay` in milliseconds, set by each snapshot that lists the server.
    ewma_decay_ms: AtomicU64,
    /// Outlier detection's runs of failures and ejection count.
    outlier: outlier::OutlierState,
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

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl ServerState {
    fn new(group: &str, addr: SocketAddr, initially_healthy: bool, ramping: bool) -> ServerState {
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
            outlier: outlier::OutlierState::default(),
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
    fn try_acquire(&self, max: Option<u32>) -> bool {
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

/// A server as one snapshot sees it: shared state plus this config's weight.
#[derive(Debug)]
pub struct PoolServer {
    pub state: Arc<ServerState>,
    pub weight: u32,
    pub max_connections: Option<u32>,
    /// A stable hash of its address: its place on a hash ring or Maglev table.
    pub id: u64,
    /// With `sticky`: the cookie value naming it (see `affinity`).
    pub sticky_token: Option<String>,
    /// Where it came from: `None` for the file's own, else its DNS name and record.
    pub origin: Option<Arc<config::dns::Origin>>,
    /// Its SRV priority (`discovery::priority`); 0 otherwise.
    pub priority: u16,
}

/// One upstream group inside a snapshot.
#[derive(Debug)]
pub struct UpstreamPool {
    pub config: config::Upstream,
    pub servers: Vec<PoolServer>,
    /// Where requests wait when every candidate is at its `max_connections`.
    pub queue: Arc<WaitQueue>,
    /// The group's requests in flight, for `circuit`.
    pub circuit: Arc<circuit::Circuit>,
    rotation: AtomicUsize,
    round_robin: ArcSwap<Schedule>,
    weighted: ArcSwap<Schedule>,
    /// The ring or Maglev table for the current healthy set, rebuilt when it changes.
    hash_table: ArcSwap<HashTable>,
}

/// The outcome of a pick: the server index and, when asked for, the reasoning.
#[derive(Debug)]
pub struct Selection {
    pub index: usize,
    pub explanation: Option<String>,
}

/// Holds one in-flight slot on a server; dropping it (request end, error, client gone) gives
/// the slot back, so counts cannot leak.
#[derive(Debug)]
pub struct Lease {
    state: Arc<ServerState>,
    queue: Arc<WaitQueue>,
    upgraded: bool,
    /// The request's place under the group's circuit, if it has one.
    circuit: Option<circuit::CircuitSlot>,
}

impl Lease {
    pub fn server(&self) -> &ServerState {
        &self.state
    }

    /// The server agreed to switch protocols: the slot stays taken while the tunnel is open
    /// (it ends with the request), and counts as an upgraded connection until then.
    pub fn upgraded(&mut self) {
        if !self.upgraded {
            self.upgraded = true;
            self.state.upgraded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.upgraded {
            self.state.upgraded.fetch_sub(1, Ordering::Relaxed);
        }
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        // Before the wake, so the request woken finds the circuit's place free as well.
        drop(self.circuit.take());
        self.queue.wake_head();
    }
}

impl UpstreamPool {
    pub fn new(config: config::Upstream, registry: &Registry) -> UpstreamPool {
        let has_check = config.health_check.is_some();
        let servers: Vec<PoolServer> = config
            .servers
            .iter()
            .map(|server| {
                let state = registry.server(&config.name, server.addr, has_check);
                state.set_ewma_decay(config.balancing.ewma_decay);
                PoolServer {
                    state,
                    weight: server.weight,
                    max_connections: server.max_connections,
                    id: hashing::key_hash(server.addr.to_string().as_bytes()),
                    sticky_token: config
                        .balancing
                        .sticky
                        .as_ref()
                        .map(|_| affinity::token(&config.name, server.addr)),
                    origin: server.origin.clone(),
                    priority: server.priority,
                }
            })
            .collect();
        let empty = Arc::new(Schedule {
            mask: u64::MAX,
            order: Vec::new(),
            weights: Vec::new(),
        });
        let pool = UpstreamPool {
            queue: registry.queue(&config.name),
            circuit: registry.circuit(&config.name),
            config,
            servers,
            rotation: AtomicUsize::new(0),
            round_robin: ArcSwap::new(empty.clone()),
            weighted: ArcSwap::new(empty),
            hash_table: ArcSwap::from_pointee(HashTable::empty()),
        };
        pool.warm_outlier_metrics();
        pool
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Picks a server for `strategy`, skipping unhealthy ones, those at their
    /// `max_connections` and those in `excluded` (a bit per server index, set by earlier tries
    /// of this request). Takes the in-flight slot at once so that concurrent least-connections
    /// picks see it. `Err(true)` means every eligible server is at its limit (the request may
    /// queue), `Err(false)` that none is available at all.
    pub fn select(
        &self,
        strategy: Strategy,
        excluded: u64,
        explain: bool,
    ) -> Result<(Selection, Lease), bool> {
        self.select_with(strategy, excluded, explain, Hint::default())
    }

    /// `select` with what the request brings: its hash key and the server its sticky cookie
    /// names, which wins while it is eligible.
    pub fn select_with(
        &self,
        strategy: Strategy,
        excluded: u64,
        explain: bool,
        hint: Hint,
    ) -> Result<(Selection, Lease), bool> {
        let mut candidates = [Candidate {
            weight: 0,
            in_flight: 0,
            healthy: false,
            excluded: false,
            full: false,
            ramp_tenths: 10,
        }; config::MAX_SERVERS_PER_UPSTREAM];
        let count = self.servers.len().min(candidates.len());
        for (i, server) in self.servers.iter().take(count).enumerate() {
            let in_flight = server.state.in_flight();
            candidates[i] = Candidate {
                weight: server.weight,
                in_flight,
                healthy: server.state.is_available(),
                excluded: excluded & (1 << i) != 0,
                full: server
                    .max_connections
                    .is_some_and(|m| in_flight >= m as usize),
                ramp_tenths: server.state.ramp_tenths(self.config.slow_start),
            };
        }
        let candidates = &mut candidates[..count];
        if self.servers.iter().any(|s| s.priority != 0) {
            let priorities = self.servers.iter().take(count).map(|s| s.priority);
            crate::discovery::priority::mask(priorities, candidates);
        }
        // The group's circuit first: when it is full, every server counts as full (the
        // request may queue, up to `max_pending`).
        let mut slot = match self.config.balancing.circuit {
            Some(circuit) => Some(self.circuit.try_enter(circuit.max_requests).ok_or(true)?),
            None => None,
        };
        // A slot can be taken between the look and the pick; then that server counts as full
        // and the pick runs again, at most once per server.
        for _ in 0..=count {
            let Some((index, why)) = self.pick(strategy, candidates, hint) else {
                let limited = candidates
                    .iter()
                    .any(|c| c.healthy && !c.excluded && c.full);
                return Err(limited);
            };
            let server = &self.servers[index];
            if !server.state.try_acquire(server.max_connections) {
                candidates[index].full = true;
                continue;
            }
            let state = server.state.clone();
            state.selected.fetch_add(1, Ordering::Relaxed);
            let explanation =
                explain.then(|| explain_pick(strategy, &self.servers, candidates, index, why));
            let lease = Lease {
                state,
                queue: self.queue.clone(),
                upgraded: false,
                circuit: slot.take(),
            };
            return Ok((Selection { index, explanation }, lease));
        }
        Err(true)
    }

    pub fn healthy_count(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.state.is_available())
            .count()
    }
}

/// A weight scaled by a slow start's ramp, for reports and metrics.
pub fn effective_weight(weight: u32, ramp_tenths: u32) -> f64 {
    f64::from(weight) * f64::from(ramp_tenths) / 10.0
}

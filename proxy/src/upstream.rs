//! Upstream groups at run time: per-server state that outlives config reloads (health,
//! in-flight count, counters), the pool a snapshot builds from it, and `select`, which turns
//! that state into `balance` candidates and picks one without taking a lock.

#[cfg(test)]
mod tests;

use crate::balance::{self, Candidate, Schedule, Strategy};
use crate::config::{self, HealthCheck};
use crate::telemetry::ServerMetrics;
use arc_swap::ArcSwap;
use http::HeaderValue;
use scalelab_common::clock::unix_ms;
use scalelab_common::sync::lock;
use serde::Serialize;
use std::collections::HashMap;
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
    selected: AtomicU64,
    consecutive_successes: AtomicU32,
    consecutive_failures: AtomicU32,
    ever_passed: AtomicBool,
    last_check: Mutex<Option<CheckRecord>>,
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
    fn new(group: &str, addr: SocketAddr, initially_healthy: bool) -> ServerState {
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
            selected: AtomicU64::new(0),
            consecutive_successes: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ever_passed: AtomicBool::new(false),
            last_check: Mutex::new(None),
        }
    }

    /// Takes traffic: healthy and not drained by hand. Two relaxed loads, so the request path
    /// stays lock-free.
    pub fn is_available(&self) -> bool {
        !self.drained.load(Ordering::Relaxed) && self.is_healthy()
    }

    /// Healthy by the active check and not passively ejected, whether drained or not.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.down_until_ms.load(Ordering::Relaxed) <= now_ms()
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

    pub fn selected(&self) -> u64 {
        self.selected.load(Ordering::Relaxed)
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

    pub fn report(&self, weight: u32) -> ServerReport {
        ServerReport {
            addr: self.addr.to_string(),
            healthy: self.is_healthy(),
            drained: self.is_drained(),
            available: self.is_available(),
            weight,
            in_flight: self.in_flight(),
            selected: self.selected(),
            consecutive_successes: self.consecutive_successes.load(Ordering::Relaxed),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            last_check: lock(&self.last_check).clone(),
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
    pub in_flight: usize,
    pub selected: u64,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    pub last_check: Option<CheckRecord>,
}

/// Keeps `ServerState` by (group, address) across snapshots.
#[derive(Debug, Default)]
pub struct Registry {
    servers: Mutex<HashMap<(String, SocketAddr), Arc<ServerState>>>,
}

impl Registry {
    /// The state for a server, created when it first appears. A new server with an active
    /// check starts unhealthy and takes traffic only after it passes one.
    pub fn server(
        &self,
        group: &str,
        addr: SocketAddr,
        has_active_check: bool,
    ) -> Arc<ServerState> {
        let mut servers = lock(&self.servers);
        servers
            .entry((group.to_string(), addr))
            .or_insert_with(|| Arc::new(ServerState::new(group, addr, !has_active_check)))
            .clone()
    }

    /// Forgets servers that no snapshot lists any more.
    pub fn retain(&self, keep: impl Fn(&str, SocketAddr) -> bool) {
        lock(&self.servers).retain(|(group, addr), state| {
            let kept = keep(group, *addr);
            if !kept {
                // Probes and requests still holding the state record nothing more for it.
                state.metrics.retire();
            }
            kept
        });
    }
}

/// A server as one snapshot sees it: shared state plus this config's weight.
#[derive(Debug)]
pub struct PoolServer {
    pub state: Arc<ServerState>,
    pub weight: u32,
}

/// One upstream group inside a snapshot.
#[derive(Debug)]
pub struct UpstreamPool {
    pub config: config::Upstream,
    pub servers: Vec<PoolServer>,
    rotation: AtomicUsize,
    round_robin: ArcSwap<Schedule>,
    weighted: ArcSwap<Schedule>,
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
}

impl Lease {
    pub fn server(&self) -> &ServerState {
        &self.state
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl UpstreamPool {
    pub fn new(config: config::Upstream, registry: &Registry) -> UpstreamPool {
        let has_check = config.health_check.is_some();
        let servers: Vec<PoolServer> = config
            .servers
            .iter()
            .map(|server| PoolServer {
                state: registry.server(&config.name, server.addr, has_check),
                weight: server.weight,
            })
            .collect();
        let empty = Arc::new(Schedule {
            mask: u64::MAX,
            order: Vec::new(),
        });
        UpstreamPool {
            config,
            servers,
            rotation: AtomicUsize::new(0),
            round_robin: ArcSwap::new(empty.clone()),
            weighted: ArcSwap::new(empty),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Picks a server for `strategy`, skipping unhealthy ones and those in `excluded` (a bit per
    /// server index, set by earlier tries of this request). Takes the in-flight slot at once so
    /// that concurrent least-connections picks see it.
    pub fn select(
        &self,
        strategy: Strategy,
        excluded: u64,
        explain: bool,
    ) -> Option<(Selection, Lease)> {
        let mut candidates = [Candidate {
            weight: 0,
            in_flight: 0,
            healthy: false,
            excluded: false,
        }; config::MAX_SERVERS_PER_UPSTREAM];
        let count = self.servers.len().min(candidates.len());
        for (i, server) in self.servers.iter().take(count).enumerate() {
            candidates[i] = Candidate {
                weight: server.weight,
                in_flight: server.state.in_flight(),
                healthy: server.state.is_available(),
                excluded: excluded & (1 << i) != 0,
            };
        }
        let candidates = &candidates[..count];
        let step = self.rotation.fetch_add(1, Ordering::Relaxed);
        let index = match strategy {
            Strategy::LeastConnections => balance::pick_least_connections(candidates, step),
            Strategy::RoundRobin => self
                .schedule(&self.round_robin, strategy, candidates)
                .pick(step, candidates),
            Strategy::Weighted => self
                .schedule(&self.weighted, strategy, candidates)
                .pick(step, candidates),
        }?;
        let state = self.servers[index].state.clone();
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.selected.fetch_add(1, Ordering::Relaxed);
        let explanation = explain.then(|| explain_pick(strategy, &self.servers, candidates, index));
        Some((Selection { index, explanation }, Lease { state }))
    }

    /// The cached schedule for the current healthy set, rebuilt only when that set changed.
    fn schedule(
        &self,
        slot: &ArcSwap<Schedule>,
        strategy: Strategy,
        candidates: &[Candidate],
    ) -> Arc<Schedule> {
        let mask = balance::healthy_mask(candidates);
        let current = slot.load_full();
        if current.mask == mask {
            return current;
        }
        let rebuilt = Arc::new(match strategy {
            Strategy::Weighted => {
                let weights: Vec<u32> = candidates.iter().map(|c| c.weight).collect();
                Schedule::smooth_weighted(mask, &weights)
            }
            _ => Schedule::round_robin(mask, candidates.len()),
        });
        slot.store(rebuilt.clone());
        rebuilt
    }

    pub fn healthy_count(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.state.is_available())
            .count()
    }
}

fn explain_pick(
    strategy: Strategy,
    servers: &[PoolServer],
    candidates: &[Candidate],
    winner: usize,
) -> String {
    // Built with `push_str` from the preformatted addresses and `itoa`, not `write!`: the
    // explain header is asked for on every request by some clients (and by the benchmark), and
    // formatting addresses through `fmt` cost about 6,000 instructions per request.
    let address = |i: usize| servers[i].state.addr_header.to_str().unwrap_or("-");
    let mut number = itoa::Buffer::new();
    let mut text = String::with_capacity(64 * candidates.len() + 96);
    text.push_str("strategy=");
    text.push_str(strategy.name());
    text.push_str("; candidates=");
    for (i, c) in candidates.iter().enumerate() {
        let health = if !c.healthy {
            "down"
        } else if c.excluded {
            "tried"
        } else {
            "up"
        };
        if i > 0 {
            text.push(',');
        }
        text.push_str(address(i));
        text.push_str("(w=");
        text.push_str(number.format(c.weight));
        text.push_str(",inflight=");
        text.push_str(number.format(c.in_flight));
        text.push(',');
        text.push_str(health);
        text.push(')');
    }
    let reason = match strategy {
        Strategy::RoundRobin => "next in round-robin order among healthy servers",
        Strategy::Weighted => "next in the smooth weighted round-robin schedule",
        Strategy::LeastConnections => "fewest in flight; higher weight breaks ties, then rotation",
    };
    text.push_str("; winner=");
    text.push_str(address(winner));
    text.push_str(" (");
    text.push_str(reason);
    text.push(')');
    text
}

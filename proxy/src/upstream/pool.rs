//! One group as a snapshot sees it (`UpstreamPool`): its servers with this config's weights, the
//! schedules and hash table built per healthy set, `select` (candidates from the servers' state,
//! then the strategy's pick, without a lock) and the `Lease` on a server's in-flight slot.

use super::explain::explain_pick;
use super::{circuit, sticky_token, Hint, Registry, ServerState, WaitQueue};
use crate::balance::hashing::{self, HashTable};
use crate::balance::{Candidate, Schedule, Strategy};
use crate::config::{self};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A server as one snapshot sees it: shared state plus this config's weight.
#[derive(Debug)]
pub struct PoolServer {
    pub state: Arc<ServerState>,
    pub weight: u32,
    pub max_connections: Option<u32>,
    /// A stable hash of its address: its place on a hash ring or Maglev table.
    pub id: u64,
    /// With `sticky`: the cookie value naming it (see `sticky_token`).
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
    pub(super) rotation: AtomicUsize,
    pub(super) round_robin: ArcSwap<Schedule>,
    pub(super) weighted: ArcSwap<Schedule>,
    /// The ring or Maglev table for the current healthy set, rebuilt when it changes.
    pub(super) hash_table: ArcSwap<HashTable>,
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
    pub(super) state: Arc<ServerState>,
    pub(super) queue: Arc<WaitQueue>,
    pub(super) upgraded: bool,
    /// The request's place under the group's circuit, if it has one.
    pub(super) circuit: Option<circuit::CircuitSlot>,
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
                        .map(|_| sticky_token::token(&config.name, server.addr)),
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

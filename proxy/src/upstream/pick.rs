//! `UpstreamPool::pick`: the strategy's choice among the candidates `select` built, after a
//! sticky cookie's server when it is eligible; and the shared structures it reads (the round
//! robin and weighted schedules, the hash table), each rebuilt only when the healthy set or
//! the weights change.

use super::explain::Why;
use super::UpstreamPool;
use crate::balance::hashing::HashTable;
use crate::balance::{self, latency, Candidate, Schedule, Strategy};
use crate::config::{self, balancing::HashAlgorithm};
use arc_swap::ArcSwap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a request brings to a pick beyond the strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hint {
    /// The hash of the request's `hash.key`; `None` when the request has none.
    pub key: Option<u64>,
    /// The server its sticky cookie names, if the cookie matched one of this group's.
    pub sticky: Option<usize>,
    /// A sticky cookie was sent that names no server of this group (forged, from before a
    /// restart, or for a server a reload removed); `sticky` is then `None`.
    pub sticky_stale: bool,
}

impl UpstreamPool {
    pub(super) fn pick(
        &self,
        strategy: Strategy,
        candidates: &[Candidate],
        hint: Hint,
    ) -> Option<(usize, Why)> {
        if let Some(i) = hint.sticky {
            if candidates.get(i).is_some_and(Candidate::eligible) {
                return Some((i, Why::Sticky));
            }
        }
        let step = self.rotation.fetch_add(1, Ordering::Relaxed);
        let (index, why) = match strategy {
            Strategy::LeastConnections => (
                balance::pick_least_connections(candidates, step)?,
                Why::Plain,
            ),
            Strategy::RoundRobin => (
                self.schedule(&self.round_robin, strategy, candidates)
                    .pick(step, candidates)?,
                Why::Plain,
            ),
            Strategy::Weighted => (
                self.schedule(&self.weighted, strategy, candidates)
                    .pick(step, candidates)?,
                Why::Plain,
            ),
            Strategy::P2c => {
                let two = latency::pick_two(candidates, latency::mix(step as u64), |i| {
                    candidates[i].in_flight as f64
                })?;
                (two.winner, Why::Two(two))
            }
            Strategy::Ewma => {
                let two = latency::pick_two(candidates, latency::mix(step as u64), |i| {
                    latency::ewma_load(self.servers[i].state.ewma_us(), candidates[i].in_flight)
                })?;
                (two.winner, Why::Two(two))
            }
            Strategy::Hash => match hint.key {
                Some(key) => {
                    let (index, owner) = self.hash_table(candidates).lookup(key, candidates)?;
                    (index, Why::Hash { owner })
                }
                // No key in the request: round robin, so keyless requests still spread.
                None => (
                    self.schedule(&self.round_robin, Strategy::RoundRobin, candidates)
                        .pick(step, candidates)?,
                    Why::NoKey,
                ),
            },
        };
        let why = if hint.sticky.is_some() || hint.sticky_stale {
            Why::Rebalanced(Box::new(why))
        } else {
            why
        };
        Some((index, why))
    }

    /// The ring or Maglev table for the current healthy set, built once per change of that
    /// set (or of the weights, by a reload), never per request.
    fn hash_table(&self, candidates: &[Candidate]) -> Arc<HashTable> {
        let mask = balance::healthy_mask(candidates);
        let current = self.hash_table.load_full();
        let weights = self.servers.iter().map(|s| s.weight);
        if current.mask == mask && current.weights.iter().copied().eq(weights.clone()) {
            return current;
        }
        let ids: Vec<u64> = self.servers.iter().map(|s| s.id).collect();
        let weights: Vec<u32> = weights.collect();
        let algorithm = self
            .config
            .balancing
            .hash
            .as_ref()
            .map_or(HashAlgorithm::Ring, |hash| hash.algorithm);
        let rebuilt = Arc::new(match algorithm {
            HashAlgorithm::Ring => HashTable::ring(mask, &ids, &weights),
            HashAlgorithm::Maglev => HashTable::maglev(mask, &ids, &weights),
        });
        self.hash_table.store(rebuilt.clone());
        rebuilt
    }

    /// The index of the server a sticky cookie's value names, if any.
    pub fn sticky_server(&self, token: &str) -> Option<usize> {
        self.servers
            .iter()
            .position(|s| s.sticky_token.as_deref() == Some(token))
    }

    /// The cached schedule for the current healthy set and effective weights, rebuilt only
    /// when one of them changed (a health change, or a slow start's next 10% step). Round robin
    /// weighs every server alike, except a server in slow start.
    fn schedule(
        &self,
        slot: &ArcSwap<Schedule>,
        strategy: Strategy,
        candidates: &[Candidate],
    ) -> Arc<Schedule> {
        let mask = balance::healthy_mask(candidates);
        let mut weights = [0u32; config::MAX_SERVERS_PER_UPSTREAM];
        let weights = &mut weights[..candidates.len()];
        for (weight, c) in weights.iter_mut().zip(candidates) {
            let base = if strategy == Strategy::Weighted {
                c.weight
            } else {
                1
            };
            *weight = base * c.ramp_tenths;
        }
        balance::normalized(weights);
        let plain = strategy != Strategy::Weighted && weights.iter().all(|&w| w == 1);
        let current = slot.load_full();
        let same_weights = if plain {
            current.weights.is_empty()
        } else {
            current.weights == *weights
        };
        if current.mask == mask && same_weights {
            return current;
        }
        let rebuilt = Arc::new(if plain {
            Schedule::round_robin(mask, candidates.len())
        } else {
            Schedule::smooth_weighted(mask, weights)
        });
        slot.store(rebuilt.clone());
        rebuilt
    }
}

//! The registry of objects in transit between two tiers.

use super::entry::Entry;
use super::{shard_of, SHARDS};
use scalelab_common::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Tier-to-tier moves (promotion, demotion, eviction into the next tier, replacement) take an
/// object out of one tier before it enters another, so for a moment no tier has it; a lookup
/// that missed then would send a request for a stored key to the origin (the flaky coalescing
/// test: a waiter woke while 200 hits promoted the object). So a moving object is registered
/// here before it leaves its tier and stays until it has arrived, and a scan that finds no tier
/// holding a key looks here. A move that ended during the scan bumps `finished` before it
/// leaves this table, so the scan notices that and scans again. Only misses read this.
#[derive(Debug)]
pub(super) struct Moves {
    finished: AtomicU64,
    in_transit: Vec<Mutex<HashMap<Arc<str>, Transit>>>,
}

/// The moving object, the tier it is going to, and how many moves of it are running.
type Transit = (Arc<Entry>, usize, usize);

impl Default for Moves {
    fn default() -> Moves {
        Moves {
            finished: AtomicU64::new(0),
            in_transit: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Moves {
    /// Registers `entry` as moving to tier `to`; call before removing it from its tier.
    pub(super) fn depart(&self, entry: &Arc<Entry>, to: usize) {
        let mut moving = lock(&self.in_transit[shard_of(&entry.key)]);
        let slot = moving
            .entry(entry.key.clone())
            .or_insert_with(|| (entry.clone(), to, 0));
        // With two objects of one key moving at once, lookups see the newer (ids only grow).
        if slot.0.id <= entry.id {
            slot.0 = entry.clone();
            slot.1 = to;
        }
        slot.2 += 1;
    }

    /// Ends a move registered with `depart`, once the object is in its new tier (or gone).
    pub(super) fn arrive(&self, entry: &Entry) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        let mut moving = lock(&self.in_transit[shard_of(&entry.key)]);
        if let Some(slot) = moving.get_mut(&entry.key) {
            slot.2 = slot.2.saturating_sub(1);
            if slot.2 == 0 {
                moving.remove(&entry.key);
            }
        }
    }

    /// The object moving under `key` and the tier it is going to.
    pub(super) fn find(&self, key: &str) -> Option<(Arc<Entry>, usize)> {
        lock(&self.in_transit[shard_of(key)])
            .get(key)
            .map(|(entry, to, _)| (entry.clone(), *to))
    }

    /// A mark to pass to `changed_since` later.
    pub(super) fn seen(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }

    /// Whether a move ended since `seen` was read.
    pub(super) fn changed_since(&self, seen: u64) -> bool {
        self.finished.load(Ordering::SeqCst) != seen
    }
}

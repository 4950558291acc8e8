//! One tier: a sharded map bounded by entries and bytes, evicting with CLOCK (second chance),
//! and its counters.

use super::entry::Entry;
use super::moves::Moves;
use super::{shard_of, SHARDS};
use crate::config::TierSettings;
use scalelab_common::sync::{lock, read, write};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct TierCounters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) sets: AtomicU64,
    pub(super) evictions: AtomicU64,
    pub(super) expirations: AtomicU64,
    pub(super) promotions: AtomicU64,
    pub(super) demotions: AtomicU64,
}

type Shard = RwLock<HashMap<Arc<str>, Arc<Entry>>>;

#[derive(Debug)]
pub(super) struct Tier {
    pub(super) settings: TierSettings,
    shards: Vec<Shard>,
    /// CLOCK ring of (key, entry id); stale items are skipped and compacted away.
    clock: Mutex<VecDeque<(Arc<str>, u64)>>,
    entries: AtomicUsize,
    pub(super) bytes: AtomicUsize,
    pub(super) counters: TierCounters,
}

/// Per-tier numbers in the seed's shape, plus ours.
#[derive(Debug, Clone, Serialize)]
pub struct TierStats {
    pub name: String,
    pub hits: u64,
    pub misses: u64,
    pub sets: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub promotions: u64,
    pub demotions: u64,
    pub items: usize,
    pub bytes: usize,
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Tier {
    pub(super) fn new(settings: TierSettings) -> Tier {
        Tier {
            settings,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            clock: Mutex::new(VecDeque::new()),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            counters: TierCounters::default(),
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<Arc<Entry>> {
        read(&self.shards[shard_of(key)]).get(key).cloned()
    }

    /// Removes `key` if it still holds entry `id` (or any entry when `id` is `None`).
    pub(super) fn remove(&self, key: &str, id: Option<u64>) -> Option<Arc<Entry>> {
        let mut shard = write(&self.shards[shard_of(key)]);
        if id.is_some_and(|id| shard.get(key).is_none_or(|e| e.id != id)) {
            return None;
        }
        let removed = shard.remove(key)?;
        self.entries.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(removed.size, Ordering::Relaxed);
        Some(removed)
    }

    /// Inserts and returns what had to leave to make room. When there is a tier `below`, each
    /// of those is registered in `moves` as going there before it leaves this tier; the
    /// caller places it and ends the move.
    pub(super) fn insert(
        &self,
        entry: Arc<Entry>,
        moves: &Moves,
        below: Option<usize>,
    ) -> Vec<Arc<Entry>> {
        // The object's per-tier state is reset before it becomes visible here, so a concurrent
        // lookup never judges it by the time it entered its previous tier.
        *lock(&entry.tier_entered) = Instant::now();
        entry.tier_hits.store(0, Ordering::Relaxed);
        entry.referenced.store(false, Ordering::Relaxed);
        {
            let mut shard = write(&self.shards[shard_of(&entry.key)]);
            // Ids only grow: a newer object for this key (stored while this one was moving
            // between tiers) is never replaced by the older one.
            if shard.get(&entry.key).is_some_and(|held| held.id > entry.id) {
                return Vec::new();
            }
            if let Some(old) = shard.insert(entry.key.clone(), entry.clone()) {
                self.entries.fetch_sub(1, Ordering::Relaxed);
                self.bytes.fetch_sub(old.size, Ordering::Relaxed);
            }
        }
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(entry.size, Ordering::Relaxed);
        let mut clock = lock(&self.clock);
        clock.push_back((entry.key.clone(), entry.id));
        let mut evicted = Vec::new();
        while self.over_capacity() {
            let Some((key, id)) = clock.pop_front() else {
                break;
            };
            let Some(candidate) = self.get(&key).filter(|e| e.id == id) else {
                continue;
            };
            if candidate.id != entry.id && candidate.referenced.swap(false, Ordering::Relaxed) {
                clock.push_back((key, id));
                continue;
            }
            if let Some(to) = below {
                moves.depart(&candidate, to);
            }
            match self.remove(&key, Some(id)) {
                Some(removed) => evicted.push(removed),
                None if below.is_some() => moves.arrive(&candidate),
                None => {}
            }
        }
        // Moved and replaced objects leave stale ring items behind; drop them now and then.
        if clock.len() > 2 * self.entries.load(Ordering::Relaxed) + 64 {
            clock.retain(|(key, id)| self.get(key).is_some_and(|e| e.id == *id));
        }
        evicted
    }

    fn over_capacity(&self) -> bool {
        self.entries.load(Ordering::Relaxed) > self.settings.max_entries
            || self.bytes.load(Ordering::Relaxed) > self.settings.max_bytes
    }

    /// Whether `entry`, held by this tier, has been here for the tier's whole TTL.
    pub(super) fn ttl_ended(&self, entry: &Entry) -> bool {
        lock(&entry.tier_entered).elapsed() >= self.settings.ttl
    }

    pub(super) fn all(&self) -> Vec<Arc<Entry>> {
        self.shards
            .iter()
            .flat_map(|shard| read(shard).values().cloned().collect::<Vec<_>>())
            .collect()
    }

    pub(super) fn stats(&self) -> TierStats {
        let c = &self.counters;
        TierStats {
            name: self.settings.name.clone(),
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            sets: c.sets.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            expirations: c.expirations.load(Ordering::Relaxed),
            promotions: c.promotions.load(Ordering::Relaxed),
            demotions: c.demotions.load(Ordering::Relaxed),
            items: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            max_entries: self.settings.max_entries,
            max_bytes: self.settings.max_bytes,
        }
    }
}

//! `Buckets`: the TATs of one limit's keys, bounded in memory, with no background task.
//!
//! Keys are hashed with a per-process random SipHash key (so clients cannot aim collisions at
//! each other) into 64 shards, each a small map from the 64-bit hash to the TAT behind its own
//! mutex; the decision and the store happen under that mutex, so concurrent requests of one key
//! are counted exactly. A shard holds at most `SHARD_CAPACITY` keys: when a new key finds it
//! full, keys whose TAT has passed are dropped first (they have their whole burst again, so
//! dropping them changes no decision); if it is still over seven eighths full, every key has
//! sent recently and the half closest to a full burst is forgotten, which can only let those
//! keys through sooner, never refuse anyone wrongly.

use super::gcra::{Decision, Gcra};
use scalelab_common::sync::lock;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

const SHARDS: usize = 64;
/// Keys per shard; with `SHARDS` this bounds one limit at `MAX_KEYS` keys, about 2 MiB (a hash
/// map slot of 16 bytes plus a control byte, at worst half full after growing).
const SHARD_CAPACITY: usize = 1024;
/// The most keys one limit remembers.
pub const MAX_KEYS: usize = SHARDS * SHARD_CAPACITY;

/// The per-key state of one rate limit.
#[derive(Debug)]
pub struct Buckets {
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<u64, u64>>>,
}

impl Default for Buckets {
    fn default() -> Buckets {
        Buckets {
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Buckets {
    /// Decides a request of `key` (`None`: the request has no value for the limit's key, and
    /// shares one bucket with every such request) at `now` nanoseconds.
    pub fn check(&self, key: Option<&[u8]>, gcra: Gcra, now: u64) -> Decision {
        // A tag byte keeps the shared "missing" bucket apart from any real value.
        let hash = match key {
            Some(bytes) => self.hasher.hash_one((1u8, bytes)),
            None => self.hasher.hash_one((0u8, b"".as_slice())),
        };
        let shard = &self.shards[(hash >> 58) as usize % SHARDS];
        let mut map = lock(shard);
        let tat = map.get(&hash).copied();
        let decision = gcra.decide(tat.unwrap_or(0), now);
        if let Decision::Allow { tat: next, .. } = decision {
            if tat.is_none() && map.len() >= SHARD_CAPACITY {
                make_room(&mut map, now);
            }
            map.insert(hash, next);
        }
        decision
    }

    /// Keys remembered now (for tests and the memory bound).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees room in a full shard: idle keys first, then the least limited half.
fn make_room(map: &mut HashMap<u64, u64>, now: u64) {
    map.retain(|_, tat| *tat > now);
    if map.len() < SHARD_CAPACITY * 7 / 8 {
        return;
    }
    let mut tats: Vec<u64> = map.values().copied().collect();
    let middle = tats.len() / 2;
    let (_, threshold, _) = tats.select_nth_unstable(middle);
    let threshold = *threshold;
    map.retain(|_, tat| *tat > threshold);
}

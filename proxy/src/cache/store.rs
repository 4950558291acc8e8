//! `CacheStore`: the tiers together. Lookup (with promotion and the tier TTL), insertion into
//! the last tier, freshening after a 304, placement with eviction down the tiers, and the
//! sweep that returns memory of objects nobody asks for.

use super::entry::{headers_size, object_size, variant_key, Entry, NewEntry};
use super::fill::{Fill, Fills};
use super::moves::Moves;
use super::policy::{TtlSource, Usability};
use super::remote::RemoteTier;
use super::shard_of;
use super::shared_tier::SharedTier;
use super::tier::{Tier, TierStats};
use super::{MAX_SCANS, SHARDS, VARIANT_SEPARATOR};
use crate::config::{CacheSettings, TierKind};
use http::{HeaderName, HeaderValue};
use scalelab_common::sync::{read, write};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where a lookup found an object, and what the hit did to it.
#[derive(Debug)]
pub struct Found {
    pub entry: Arc<Entry>,
    pub tier_name: String,
    /// "L3->L2" when this hit promoted the object.
    pub promoted: Option<String>,
}

/// The outcome of one scan of the tiers.
enum Scan {
    Hit(Found),
    /// Found past every stale window (and removed): a real miss, no need to look again.
    Expired,
    Absent,
}

/// For each key whose last stored response had `Vary`, the request headers it varies on.
type VaryIndex = RwLock<HashMap<Arc<str>, Arc<[String]>>>;

#[derive(Debug)]
pub struct CacheStore {
    pub(super) tiers: Vec<Tier>,
    pub settings: CacheSettings,
    pub(super) fills: Fills,
    /// Sharded like the tiers; consulted on every lookup to find the variant's storage key.
    vary: Vec<VaryIndex>,
    next_id: AtomicU64,
    misses: AtomicU64,
    moves: Moves,
    /// The last tier when it is `kind = "redis"` (then `tiers` holds only the memory tiers).
    pub(super) shared: Option<SharedTier>,
}

impl CacheStore {
    pub fn new(settings: CacheSettings) -> Arc<CacheStore> {
        CacheStore::with_remote(settings, None)
    }

    /// A store whose `kind = "redis"` last tier (if any) uses `remote`.
    pub fn with_remote(
        settings: CacheSettings,
        remote: Option<Arc<RemoteTier>>,
    ) -> Arc<CacheStore> {
        Arc::new(CacheStore {
            shared: SharedTier::of(&settings.tiers, remote),
            tiers: settings
                .tiers
                .iter()
                .filter(|tier| tier.kind == TierKind::Memory)
                .cloned()
                .map(Tier::new)
                .collect(),
            settings,
            fills: Fills::default(),
            vary: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            next_id: AtomicU64::new(1),
            misses: AtomicU64::new(0),
            moves: Moves::default(),
        })
    }

    /// A store with new settings that keeps every object that still fits, in the same tier
    /// (or the last one when tiers were removed).
    pub fn resized(
        &self,
        settings: CacheSettings,
        remote: Option<Arc<RemoteTier>>,
    ) -> Arc<CacheStore> {
        let next = CacheStore::with_remote(settings, remote);
        next.next_id
            .store(self.next_id.load(Ordering::Relaxed), Ordering::Relaxed);
        for (from, to) in self.vary.iter().zip(&next.vary) {
            write(to).extend(read(from).iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let last = next.tiers.len().saturating_sub(1);
        for (index, tier) in self.tiers.iter().enumerate().rev() {
            for entry in tier.all() {
                if entry.size <= next.settings.max_object_bytes && !next.tiers.is_empty() {
                    next.place(index.min(last), entry);
                }
            }
        }
        next
    }

    /// The headers `primary`'s last stored response varied on, if it did.
    pub(super) fn vary_names(&self, primary: &str) -> Option<Arc<[String]>> {
        read(&self.vary[shard_of(primary)]).get(primary).cloned()
    }

    /// The key to look a request up under: `primary`, or the storage key of the variant that
    /// matches the request's values of the headers the stored response varies on.
    pub fn storage_key<'k>(
        &self,
        primary: &'k str,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> Cow<'k, str> {
        match self.vary_names(primary) {
            None => Cow::Borrowed(primary),
            Some(names) => {
                let values: Vec<(String, Option<String>)> =
                    names.iter().map(|n| (n.clone(), header(n))).collect();
                Cow::Owned(variant_key(primary, &values))
            }
        }
    }

    /// Claims the fill of `key` (see `Fills::claim`); `answers` says whether a stored object
    /// would answer the caller's request (fresh enough, matching variant and method).
    pub fn begin_fill(&self, key: &str, answers: &dyn Fn(&Entry) -> bool) -> Fill {
        self.fills.claim(
            key,
            || self.peek(key).is_some_and(|(_, entry)| answers(&entry)),
            self.remote().cloned(),
        )
    }

    /// Looks `key` up, L1 first. A hit counts toward promotion; an object whose tier TTL ended
    /// moves down first; an object past every stale window is removed.
    ///
    /// An object moving between tiers is briefly in neither, so a scan that misses while a move
    /// ran looks again (see `Moves`); otherwise a promotion racing the lookup would send a
    /// request for a stored key to the origin.
    pub fn lookup(&self, key: &str) -> Option<Found> {
        for _ in 0..MAX_SCANS {
            let seen = self.moves.seen();
            match self.scan(key) {
                Scan::Hit(found) => return Some(found),
                Scan::Expired => break,
                Scan::Absent if self.moves.changed_since(seen) => std::hint::spin_loop(),
                Scan::Absent => break,
            }
        }
        for tier in &self.tiers {
            tier.counters.misses.fetch_add(1, Ordering::Relaxed);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// One pass over the tiers for `lookup`.
    fn scan(&self, key: &str) -> Scan {
        for (index, tier) in self.tiers.iter().enumerate() {
            let Some(entry) = tier.get(key) else {
                continue;
            };
            if entry.usability() == Usability::Expired {
                if tier.remove(key, Some(entry.id)).is_some() {
                    tier.counters.expirations.fetch_add(1, Ordering::Relaxed);
                }
                return Scan::Expired;
            }
            if tier.ttl_ended(&entry) {
                self.demote_or_expire(index, &entry);
                return self.scan(key);
            }
            // Hotter tiers were looked at and did not have it.
            for hotter in &self.tiers[..index] {
                hotter.counters.misses.fetch_add(1, Ordering::Relaxed);
            }
            entry.referenced.store(true, Ordering::Relaxed);
            entry.total_hits.fetch_add(1, Ordering::Relaxed);
            tier.counters.hits.fetch_add(1, Ordering::Relaxed);
            let hits = entry.tier_hits.fetch_add(1, Ordering::Relaxed) + 1;
            let mut promoted = None;
            let mut found_tier = index;
            if index > 0 && hits >= self.settings.promotion_hits {
                self.moves.depart(&entry, index - 1);
                if let Some(moved) = tier.remove(key, Some(entry.id)) {
                    tier.counters.promotions.fetch_add(1, Ordering::Relaxed);
                    promoted = Some(format!(
                        "{}->{}",
                        tier.settings.name,
                        self.tiers[index - 1].settings.name
                    ));
                    found_tier = index - 1;
                    self.place(index - 1, moved);
                }
                self.moves.arrive(&entry);
            }
            return Scan::Hit(Found {
                entry,
                tier_name: self.tiers[found_tier].settings.name.clone(),
                promoted,
            });
        }
        match self.moves.find(key) {
            // Between two tiers: a hit in the tier it is going to.
            Some((entry, to)) if entry.usability() != Usability::Expired => {
                entry.total_hits.fetch_add(1, Ordering::Relaxed);
                let tier = &self.tiers[to];
                tier.counters.hits.fetch_add(1, Ordering::Relaxed);
                Scan::Hit(Found {
                    entry,
                    tier_name: tier.settings.name.clone(),
                    promoted: None,
                })
            }
            _ => Scan::Absent,
        }
    }

    /// Stores a new object in the last (coldest) tier; returns that tier's name.
    pub fn insert(&self, new: NewEntry) -> Option<String> {
        self.insert_filled(new, None)
    }

    /// Stores a new object fetched under the fleet fill lock `token` (released once the
    /// object is in the shared tier). With a shared last tier the object goes there, and to
    /// this proxy's last memory tier too, so the requests waiting here find it at once.
    pub fn insert_filled(&self, new: NewEntry, token: Option<String>) -> Option<String> {
        let key = variant_key(&new.key, &new.vary);
        let size = object_size(&key, &new);
        if size > self.settings.max_object_bytes.saturating_add(16 * 1024) {
            return None;
        }
        self.record_vary(&new.key, &new.vary);
        let entry = self.entry(key, size, new);
        let local = self.insert_in_memory(&entry);
        self.send_to_shared(&entry, token).or(local)
    }

    /// Puts a new object in the last memory tier.
    fn insert_in_memory(&self, entry: &Arc<Entry>) -> Option<String> {
        let last = self.tiers.len().checked_sub(1)?;
        // The same key may sit in a hotter tier; the new object replaces it. Until it is in
        // the last tier, lookups find it as moving there.
        self.moves.depart(entry, last);
        for tier in &self.tiers[..last] {
            tier.remove(&entry.key, None);
        }
        self.tiers[last]
            .counters
            .sets
            .fetch_add(1, Ordering::Relaxed);
        self.place(last, entry.clone());
        self.moves.arrive(entry);
        Some(self.tiers[last].settings.name.clone())
    }

    /// The stored object for `key` (no hit is counted), with its tier.
    pub fn peek(&self, key: &str) -> Option<(usize, Arc<Entry>)> {
        for _ in 0..MAX_SCANS {
            let seen = self.moves.seen();
            let found = self
                .tiers
                .iter()
                .enumerate()
                .find_map(|(index, tier)| tier.get(key).map(|entry| (index, entry)))
                .or_else(|| self.moves.find(key).map(|(entry, to)| (to, entry)));
            if found.is_some() || !self.moves.changed_since(seen) {
                return found;
            }
        }
        None
    }

    /// Freshens a stored object after the origin answered 304 for it (RFC 9111 section 4.3.4):
    /// the same body under updated headers and a new TTL, in the tier it was in. Returns that
    /// tier's name, or `None` when the object left the store meanwhile.
    pub fn freshen(
        &self,
        stored: &Entry,
        headers: Vec<(HeaderName, HeaderValue)>,
        ttl: Duration,
        ttl_source: TtlSource,
    ) -> Option<String> {
        let (index, current) = self.peek(&stored.key)?;
        if current.id != stored.id {
            return None;
        }
        let size = stored.size - stored.headers_size() + headers_size(&headers);
        let new = NewEntry {
            key: stored.primary_key().to_string(),
            route: stored.route.to_string(),
            status: stored.status,
            headers,
            body: stored.body.clone(),
            head_only: stored.head_only,
            ttl,
            ttl_source,
            stale_while_revalidate: stored.stale_while_revalidate,
            stale_if_error: stored.stale_if_error,
            tags: stored.tags.clone(),
            vary: stored.vary.clone(),
        };
        let entry = self.entry(stored.key.to_string(), size, new);
        self.place(index, entry);
        Some(self.tiers[index].settings.name.clone())
    }

    fn entry(&self, key: String, size: usize, new: NewEntry) -> Arc<Entry> {
        Entry::new(self.next_id(), key, size, new)
    }

    /// A new object id; ids only grow, so a newer object of a key is told from an older one.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Remembers which headers `primary` varies on. A response that starts varying makes the
    /// plain object unreachable, so it goes; one that stops varying ends the index entry, and
    /// its old variants age out like any object nobody asks for.
    pub(super) fn record_vary(&self, primary: &str, vary: &[(String, Option<String>)]) {
        let mut index = write(&self.vary[shard_of(primary)]);
        if vary.is_empty() {
            index.remove(primary);
            return;
        }
        let names: Arc<[String]> = vary.iter().map(|(name, _)| name.clone()).collect();
        if index.get(primary) != Some(&names) {
            index.insert(Arc::from(primary), names);
            drop(index);
            for tier in &self.tiers {
                tier.remove(primary, None);
            }
        }
    }

    /// Puts `entry` in tier `index`; whatever that evicts moves down one tier, and what falls
    /// out of the last tier is gone.
    pub(super) fn place(&self, index: usize, entry: Arc<Entry>) {
        // Each item is an object and whether it is a registered move to end once placed.
        let mut pending = vec![(index, entry, false)];
        while let Some((index, entry, moving)) = pending.pop() {
            let tier = &self.tiers[index];
            let below = (index + 1 < self.tiers.len()).then_some(index + 1);
            let evictions = tier.insert(entry.clone(), &self.moves, below);
            // An older object that moved while a newer one of its key was stored (a promotion
            // racing a refresh) must not shadow the newer one from a hotter tier.
            if self.superseded(&entry) {
                tier.remove(&entry.key, Some(entry.id));
            }
            for evicted in evictions {
                match below {
                    Some(below) => {
                        tier.counters.demotions.fetch_add(1, Ordering::Relaxed);
                        pending.push((below, evicted, true));
                    }
                    None => {
                        tier.counters.evictions.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if moving {
                self.moves.arrive(&entry);
            }
        }
    }

    /// Whether a newer object of `entry`'s key is stored or on its way into a tier.
    fn superseded(&self, entry: &Entry) -> bool {
        let newer = |other: &Entry| other.id > entry.id;
        self.tiers
            .iter()
            .any(|tier| tier.get(&entry.key).is_some_and(|other| newer(&other)))
            || self
                .moves
                .find(&entry.key)
                .is_some_and(|(other, _)| newer(&other))
    }

    fn demote_or_expire(&self, index: usize, entry: &Arc<Entry>) {
        let tier = &self.tiers[index];
        let still_useful = entry.usability() != Usability::Expired;
        if index + 1 < self.tiers.len() && still_useful {
            self.moves.depart(entry, index + 1);
            if let Some(removed) = tier.remove(&entry.key, Some(entry.id)) {
                tier.counters.demotions.fetch_add(1, Ordering::Relaxed);
                self.place(index + 1, removed);
            }
            self.moves.arrive(entry);
        } else if tier.remove(&entry.key, Some(entry.id)).is_some() {
            tier.counters.expirations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Applies tier TTLs and expiry to every object (the sweeper calls this about once a
    /// second, so memory is returned even when nobody asks for an expired key).
    pub fn sweep(&self) {
        let mut varying: HashSet<String> = HashSet::new();
        for (index, tier) in self.tiers.iter().enumerate() {
            for entry in tier.all() {
                if entry.key.contains(VARIANT_SEPARATOR) {
                    varying.insert(entry.primary_key().to_string());
                }
                if entry.age() >= entry.keep_for() {
                    if tier.remove(&entry.key, Some(entry.id)).is_some() {
                        tier.counters.expirations.fetch_add(1, Ordering::Relaxed);
                    }
                } else if tier.ttl_ended(&entry) {
                    self.demote_or_expire(index, &entry);
                }
            }
        }
        // A key none of whose variants is stored any more needs no index entry.
        for shard in &self.vary {
            write(shard).retain(|primary, _| varying.contains(&**primary));
        }
    }

    /// Lookups that found nothing in any tier.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Every tier's counters, the shared tier last.
    pub fn stats(&self) -> Vec<TierStats> {
        self.tiers
            .iter()
            .map(Tier::stats)
            .chain(self.shared.as_ref().map(SharedTier::stats))
            .collect()
    }

    /// Bytes held by all tiers.
    pub fn total_bytes(&self) -> usize {
        self.tiers
            .iter()
            .map(|t| t.bytes.load(Ordering::Relaxed))
            .sum()
    }
}

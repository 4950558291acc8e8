//! The multi-tier response cache: tiers L1..Ln (first is hottest), each bounded by entries and
//! bytes and evicting with CLOCK (second chance), objects entering the last tier, moving up
//! after `promotion.hits` hits and down when evicted or when their tier's TTL ends, plus
//! per-key fill locks for request coalescing. Hits take only a shard read lock.

pub mod policy;

#[cfg(test)]
mod tests;

use crate::config::{CacheSettings, TierSettings};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use policy::{TtlSource, Usability};
use scalelab_common::sync::{lock, read, write};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const SHARDS: usize = 16;

/// How many times a lookup scans the tiers when objects moved while it looked. A move takes
/// microseconds; more passes than this means moves are constant and a miss is acceptable.
const MAX_SCANS: usize = 8;

/// The outcome of one scan of the tiers.
enum Scan {
    Hit(Found),
    /// Found past every stale window (and removed): a real miss, no need to look again.
    Expired,
    Absent,
}

/// Tier-to-tier moves (promotion, demotion, eviction into the next tier, replacement) take an
/// object out of one tier before it enters another, so for a moment no tier has it; a lookup
/// that missed then would send a request for a stored key to the origin (the flaky coalescing
/// test: a waiter woke while 200 hits promoted the object). So a moving object is registered
/// here before it leaves its tier and stays until it has arrived, and a scan that finds no tier
/// holding a key looks here. A move that ended during the scan bumps `finished` before it
/// leaves this table, so the scan notices that and scans again. Only misses read this.
#[derive(Debug)]
struct Moves {
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
    fn depart(&self, entry: &Arc<Entry>, to: usize) {
        let mut moving = lock(&self.in_transit[shard_of(&entry.key)]);
        let slot = moving
            .entry(entry.key.clone())
            .or_insert_with(|| (entry.clone(), to, 0));
        *slot = (entry.clone(), to, slot.2 + 1);
    }

    /// Ends a move registered with `depart`, once the object is in its new tier (or gone).
    fn arrive(&self, entry: &Entry) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        let mut moving = lock(&self.in_transit[shard_of(&entry.key)]);
        if let Some(slot) = moving.get_mut(&entry.key) {
            slot.2 = slot.2.saturating_sub(1);
            if slot.2 == 0 {
                moving.remove(&entry.key);
            }
        }
    }

    fn find(&self, key: &str) -> Option<(Arc<Entry>, usize)> {
        lock(&self.in_transit[shard_of(key)])
            .get(key)
            .map(|(entry, to, _)| (entry.clone(), *to))
    }

    fn seen(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }

    /// Whether a move ended since `seen` was read.
    fn changed_since(&self, seen: u64) -> bool {
        self.finished.load(Ordering::SeqCst) != seen
    }
}

/// Separates a route's key from the request header values of one variant in a storage key.
/// Neither a rendered key nor a header value can contain a newline, so the split is exact.
const VARIANT_SEPARATOR: char = '\n';

/// Memory an object costs beyond its key, headers and body: the `Entry` itself, its `Arc`s, its
/// map slot, its CLOCK ring item and the allocator's rounding. Counting it keeps `max_bytes` a
/// bound on memory, not only on payload, for small objects. Calibrated with 1 KiB objects
/// (`bench/cachememory.sh OBJECT_KIB=1`): about 2.9 KiB of RSS each with seven headers.
pub const ENTRY_OVERHEAD: usize = 1024;

/// Memory one stored header costs beyond its name and value bytes (its `Vec` slot and the
/// value's own allocation).
pub const HEADER_OVERHEAD: usize = 128;

fn headers_size(headers: &[(HeaderName, HeaderValue)]) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + HEADER_OVERHEAD)
        .sum()
}

/// The storage key of one variant of `primary`: the key itself when the response does not
/// vary, else the key followed by each varying request header's value (absent headers are
/// written without `=`, so "absent" and "empty" are different variants).
pub fn variant_key(primary: &str, values: &[(String, Option<String>)]) -> String {
    let mut key = primary.to_string();
    for (name, value) in values {
        key.push(VARIANT_SEPARATOR);
        key.push_str(name);
        if let Some(value) = value {
            key.push('=');
            key.push_str(value);
        }
    }
    key
}

/// One stored response.
#[derive(Debug)]
pub struct Entry {
    pub key: Arc<str>,
    /// The route that stored it, so a change of that route's key template can drop it.
    pub route: Arc<str>,
    id: u64,
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Stored from a HEAD response: it has no body and cannot answer a GET.
    pub head_only: bool,
    pub stored_at: Instant,
    pub ttl: Duration,
    pub ttl_source: TtlSource,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub tags: Vec<String>,
    /// Request header values this response varies on, as they were when it was stored.
    pub vary: Vec<(String, Option<String>)>,
    pub size: usize,
    tier_hits: AtomicU32,
    total_hits: AtomicU64,
    referenced: AtomicBool,
    tier_entered: Mutex<Instant>,
    soft_purged: AtomicBool,
    refreshing: AtomicBool,
}

/// What a new entry is built from.
#[derive(Debug)]
pub struct NewEntry {
    pub key: String,
    pub route: String,
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub head_only: bool,
    pub ttl: Duration,
    pub ttl_source: TtlSource,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub tags: Vec<String>,
    pub vary: Vec<(String, Option<String>)>,
}

impl Entry {
    pub fn age(&self) -> Duration {
        self.stored_at.elapsed()
    }

    pub fn usability(&self) -> Usability {
        if self.soft_purged.load(Ordering::Relaxed) {
            // A soft-purged object is served stale while one request refreshes it.
            return Usability::StaleRevalidate;
        }
        policy::usability(
            self.age(),
            self.ttl,
            self.stale_while_revalidate,
            self.stale_if_error,
        )
    }

    pub fn ttl_left(&self) -> Duration {
        self.ttl.saturating_sub(self.age())
    }

    pub fn hits(&self) -> u64 {
        self.total_hits.load(Ordering::Relaxed)
    }

    /// Claims the background refresh of a stale object; only the first caller gets it.
    pub fn claim_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Whether this object answers a request with these header values (its `Vary`).
    pub fn matches_vary(&self, header: &dyn Fn(&str) -> Option<String>) -> bool {
        self.vary.iter().all(|(name, value)| header(name) == *value)
    }

    /// The first stored value of a response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    pub fn validators(&self) -> policy::Validators<'_> {
        policy::Validators {
            etag: self.header("etag"),
            last_modified: self.header("last-modified"),
        }
    }

    fn headers_size(&self) -> usize {
        headers_size(&self.headers)
    }

    /// The route key this object was stored under, without its variant part.
    pub fn primary_key(&self) -> &str {
        self.key
            .split(VARIANT_SEPARATOR)
            .next()
            .unwrap_or(&self.key)
    }

    /// How long past its TTL the object stays worth keeping.
    fn keep_for(&self) -> Duration {
        self.ttl + self.stale_while_revalidate.max(self.stale_if_error)
    }
}

#[derive(Debug, Default)]
struct TierCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    promotions: AtomicU64,
    demotions: AtomicU64,
}

type Shard = RwLock<HashMap<Arc<str>, Arc<Entry>>>;

#[derive(Debug)]
struct Tier {
    settings: TierSettings,
    shards: Vec<Shard>,
    /// CLOCK ring of (key, entry id); stale items are skipped and compacted away.
    clock: Mutex<VecDeque<(Arc<str>, u64)>>,
    entries: AtomicUsize,
    bytes: AtomicUsize,
    counters: TierCounters,
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

/// Where a lookup found an object, and what the hit did to it.
#[derive(Debug)]
pub struct Found {
    pub entry: Arc<Entry>,
    pub tier: usize,
    pub tier_name: String,
    /// "L3->L2" when this hit promoted the object.
    pub promoted: Option<String>,
}

/// An object's place, for `GET /admin/cache?key=`.
#[derive(Debug, Serialize)]
pub struct EntryReport {
    pub key: String,
    /// The varying request headers' values of this variant (`accept-language=fr`), if any.
    pub variant: Option<String>,
    pub tier: String,
    pub status: u16,
    pub size: usize,
    pub hits: u64,
    pub age_seconds: f64,
    pub ttl_seconds: f64,
    pub ttl_left_seconds: f64,
    pub ttl_source: TtlSource,
    pub tags: Vec<String>,
    pub soft_purged: bool,
}

/// What an invalidation selects.
#[derive(Debug, Clone)]
pub enum Selector {
    Key(String),
    Prefix(String),
    Tag(String),
    /// Everything one route stored.
    Route(String),
}

impl Selector {
    /// Exactly one of a key, a non-empty prefix or a tag; `None` otherwise.
    pub fn from_one(
        key: Option<String>,
        prefix: Option<String>,
        tag: Option<String>,
    ) -> Option<Selector> {
        match (key, prefix, tag) {
            (Some(key), None, None) => Some(Selector::Key(key)),
            (None, Some(prefix), None) if !prefix.is_empty() => Some(Selector::Prefix(prefix)),
            (None, None, Some(tag)) => Some(Selector::Tag(tag)),
            _ => None,
        }
    }

    fn field(&self) -> &'static str {
        match self {
            Selector::Key(_) => "key",
            Selector::Prefix(_) => "prefix",
            Selector::Tag(_) => "tag",
            Selector::Route(_) => "route",
        }
    }

    fn value(&self) -> &str {
        match self {
            Selector::Key(v) | Selector::Prefix(v) | Selector::Tag(v) | Selector::Route(v) => v,
        }
    }
}

/// The leader's claim on filling a key; dropping it (done, failed or cancelled) wakes every
/// waiter, who then looks the key up again.
#[derive(Debug)]
pub struct FillGuard {
    store: Arc<CacheStore>,
    key: String,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        lock(&self.store.fills[shard_of(&self.key)]).remove(&self.key);
    }
}

/// Either lead the fill of a key, wait for the current leader, or look again.
#[derive(Debug)]
pub enum Fill {
    Leader(FillGuard),
    Wait(watch::Receiver<()>),
    /// Nobody is filling the key because a leader stored a usable object after this
    /// request's lookup missed: look it up again instead of fetching it a second time.
    Stored,
}

/// The store for the running config: follows reloads, resizing (and so keeping what fits)
/// when `[cache]` changes and dropping everything when it is removed.
#[derive(Debug, Default)]
pub struct CacheHandle {
    current: arc_swap::ArcSwapOption<CacheStore>,
    generation: AtomicU64,
    reconfigure: Mutex<()>,
    /// Each caching route's key template in the config the store follows.
    templates: Mutex<HashMap<String, String>>,
}

impl CacheHandle {
    /// The store matching `snapshot`'s `[cache]` settings.
    pub fn for_snapshot(&self, snapshot: &crate::snapshot::Snapshot) -> Option<Arc<CacheStore>> {
        if self.generation.load(Ordering::Acquire) != snapshot.generation {
            let _guard = lock(&self.reconfigure);
            if self.generation.load(Ordering::Acquire) < snapshot.generation {
                let current = self.current.load_full();
                let next = match (&snapshot.config.cache, current) {
                    (None, _) => None,
                    (Some(settings), Some(store)) if store.settings == *settings => Some(store),
                    (Some(settings), Some(store)) => Some(store.resized(settings.clone())),
                    (Some(settings), None) => Some(CacheStore::new(settings.clone())),
                };
                let templates: HashMap<String, String> = snapshot
                    .config
                    .routes
                    .iter()
                    .filter_map(|r| {
                        r.cache
                            .as_ref()
                            .map(|c| (r.name.clone(), c.key.source().to_string()))
                    })
                    .collect();
                let mut known = lock(&self.templates);
                if let Some(store) = &next {
                    // Objects stored under a template that no longer applies could never be
                    // found again; drop them rather than let them hold memory until expiry.
                    for (route, template) in known.iter() {
                        if templates.get(route) != Some(template) {
                            store.invalidate(&Selector::Route(route.clone()), false);
                        }
                    }
                }
                *known = templates;
                self.current.store(next);
                self.generation
                    .store(snapshot.generation, Ordering::Release);
            }
        }
        self.current.load_full()
    }

    /// The store as it is now, for the admin API.
    pub fn current(&self) -> Option<Arc<CacheStore>> {
        self.current.load_full()
    }
}

/// For each key whose last stored response had `Vary`, the request headers it varies on.
type VaryIndex = RwLock<HashMap<Arc<str>, Arc<[String]>>>;

#[derive(Debug)]
pub struct CacheStore {
    tiers: Vec<Tier>,
    pub settings: CacheSettings,
    fills: Vec<Mutex<HashMap<String, watch::Sender<()>>>>,
    /// Sharded like the tiers; consulted on every lookup to find the variant's storage key.
    vary: Vec<VaryIndex>,
    next_id: AtomicU64,
    misses: AtomicU64,
    moves: Moves,
}

fn shard_of(key: &str) -> usize {
    // A fixed hasher: shard choice only spreads lock contention, it is not security relevant.
    let hasher =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    (hasher.hash_one(key) as usize) % SHARDS
}

impl Tier {
    fn new(settings: TierSettings) -> Tier {
        Tier {
            settings,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            clock: Mutex::new(VecDeque::new()),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            counters: TierCounters::default(),
        }
    }

    fn get(&self, key: &str) -> Option<Arc<Entry>> {
        read(&self.shards[shard_of(key)]).get(key).cloned()
    }

    /// Removes `key` if it still holds entry `id` (or any entry when `id` is `None`).
    fn remove(&self, key: &str, id: Option<u64>) -> Option<Arc<Entry>> {
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
    fn insert(&self, entry: Arc<Entry>, moves: &Moves, below: Option<usize>) -> Vec<Arc<Entry>> {
        let replaced =
            write(&self.shards[shard_of(&entry.key)]).insert(entry.key.clone(), entry.clone());
        if let Some(old) = replaced {
            self.entries.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(old.size, Ordering::Relaxed);
        }
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(entry.size, Ordering::Relaxed);
        *lock(&entry.tier_entered) = Instant::now();
        entry.tier_hits.store(0, Ordering::Relaxed);
        entry.referenced.store(false, Ordering::Relaxed);
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

    fn all(&self) -> Vec<Arc<Entry>> {
        self.shards
            .iter()
            .flat_map(|shard| read(shard).values().cloned().collect::<Vec<_>>())
            .collect()
    }

    fn stats(&self) -> TierStats {
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

impl CacheStore {
    pub fn new(settings: CacheSettings) -> Arc<CacheStore> {
        Arc::new(CacheStore {
            tiers: settings.tiers.iter().cloned().map(Tier::new).collect(),
            settings,
            fills: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            vary: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            next_id: AtomicU64::new(1),
            misses: AtomicU64::new(0),
            moves: Moves::default(),
        })
    }

    /// A store with new settings that keeps every object that still fits, in the same tier
    /// (or the last one when tiers were removed).
    pub fn resized(&self, settings: CacheSettings) -> Arc<CacheStore> {
        let next = CacheStore::new(settings);
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
    fn vary_names(&self, primary: &str) -> Option<Arc<[String]>> {
        read(&self.vary[shard_of(primary)]).get(primary).cloned()
    }

    /// The key to look a request up under: `primary`, or the storage key of the variant that
    /// matches the request's values of the headers the stored response varies on.
    pub fn storage_key<'k>(
        &self,
        primary: &'k str,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> std::borrow::Cow<'k, str> {
        match self.vary_names(primary) {
            None => std::borrow::Cow::Borrowed(primary),
            Some(names) => {
                let values: Vec<(String, Option<String>)> =
                    names.iter().map(|n| (n.clone(), header(n))).collect();
                std::borrow::Cow::Owned(variant_key(primary, &values))
            }
        }
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
            let in_tier = lock(&entry.tier_entered).elapsed();
            if in_tier >= tier.settings.ttl {
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
                tier: found_tier,
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
                    tier: to,
                    tier_name: tier.settings.name.clone(),
                    promoted: None,
                })
            }
            _ => Scan::Absent,
        }
    }

    /// Stores a new object in the last (coldest) tier.
    pub fn insert(&self, new: NewEntry) -> Option<String> {
        let last = self.tiers.len().checked_sub(1)?;
        let key = variant_key(&new.key, &new.vary);
        let size = new.body.len() + key.len() + headers_size(&new.headers) + ENTRY_OVERHEAD;
        if size > self.settings.max_object_bytes.saturating_add(16 * 1024) {
            return None;
        }
        self.record_vary(&new.key, &new.vary);
        let entry = self.entry(key, size, new);
        // The same key may sit in a hotter tier; the new object replaces it. Until it is in
        // the last tier, lookups find it as moving there.
        self.moves.depart(&entry, last);
        for tier in &self.tiers[..last] {
            tier.remove(&entry.key, None);
        }
        self.tiers[last]
            .counters
            .sets
            .fetch_add(1, Ordering::Relaxed);
        self.place(last, entry.clone());
        self.moves.arrive(&entry);
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
        Arc::new(Entry {
            key: Arc::from(key),
            route: Arc::from(new.route),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            status: new.status,
            headers: new.headers,
            body: new.body,
            head_only: new.head_only,
            stored_at: Instant::now(),
            ttl: new.ttl,
            ttl_source: new.ttl_source,
            stale_while_revalidate: new.stale_while_revalidate,
            stale_if_error: new.stale_if_error,
            tags: new.tags,
            vary: new.vary,
            size,
            tier_hits: AtomicU32::new(0),
            total_hits: AtomicU64::new(0),
            referenced: AtomicBool::new(false),
            tier_entered: Mutex::new(Instant::now()),
            soft_purged: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
        })
    }

    /// Remembers which headers `primary` varies on. A response that starts varying makes the
    /// plain object unreachable, so it goes; one that stops varying ends the index entry, and
    /// its old variants age out like any object nobody asks for.
    fn record_vary(&self, primary: &str, vary: &[(String, Option<String>)]) {
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
    fn place(&self, index: usize, entry: Arc<Entry>) {
        // Each item is an object and whether it is a registered move to end once placed.
        let mut pending = vec![(index, entry, false)];
        while let Some((index, entry, moving)) = pending.pop() {
            let tier = &self.tiers[index];
            let below = (index + 1 < self.tiers.len()).then_some(index + 1);
            for evicted in tier.insert(entry.clone(), &self.moves, below) {
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
        let mut varying: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (index, tier) in self.tiers.iter().enumerate() {
            for entry in tier.all() {
                if entry.key.contains(VARIANT_SEPARATOR) {
                    varying.insert(entry.primary_key().to_string());
                }
                let in_tier = lock(&entry.tier_entered).elapsed();
                if entry.age() >= entry.keep_for() {
                    if tier.remove(&entry.key, Some(entry.id)).is_some() {
                        tier.counters.expirations.fetch_add(1, Ordering::Relaxed);
                    }
                } else if in_tier >= tier.settings.ttl {
                    self.demote_or_expire(index, &entry);
                }
            }
        }
        // A key none of whose variants is stored any more needs no index entry.
        for shard in &self.vary {
            write(shard).retain(|primary, _| varying.contains(&**primary));
        }
    }

    /// Removes (or, when `soft`, marks stale) every object `selector` picks; returns how many.
    pub fn invalidate(&self, selector: &Selector, soft: bool) -> usize {
        let mut count = 0;
        let varies = match selector {
            Selector::Key(key) => self.vary_names(key).is_some(),
            _ => false,
        };
        for tier in &self.tiers {
            let chosen: Vec<Arc<Entry>> = match selector {
                // Every variant of a key goes with it.
                Selector::Key(key) if varies => tier
                    .all()
                    .into_iter()
                    .filter(|e| e.primary_key() == key.as_str())
                    .collect(),
                Selector::Key(key) => tier.get(key).into_iter().collect(),
                Selector::Prefix(prefix) => tier
                    .all()
                    .into_iter()
                    .filter(|e| e.key.starts_with(prefix.as_str()))
                    .collect(),
                Selector::Route(route) => tier
                    .all()
                    .into_iter()
                    .filter(|e| &*e.route == route.as_str())
                    .collect(),
                Selector::Tag(tag) => tier
                    .all()
                    .into_iter()
                    .filter(|e| e.tags.iter().any(|t| t == tag))
                    .collect(),
            };
            for entry in chosen {
                if soft {
                    entry.soft_purged.store(true, Ordering::Relaxed);
                    entry.refreshing.store(false, Ordering::Relaxed);
                    count += 1;
                } else if tier.remove(&entry.key, Some(entry.id)).is_some() {
                    count += 1;
                }
            }
        }
        count
    }

    /// Invalidates and answers in the seed's shape:
    /// `{"status":"Cache invalidated","key":...,"removed":N,"soft":bool}`.
    pub fn invalidate_report(&self, selector: &Selector, soft: bool) -> serde_json::Value {
        let removed = self.invalidate(selector, soft);
        let mut body =
            serde_json::json!({"status": "Cache invalidated", "removed": removed, "soft": soft});
        body[selector.field()] = serde_json::Value::from(selector.value());
        body
    }

    /// Claims the fill of `key` or returns a receiver that wakes when the leader is done.
    ///
    /// The caller's lookup and this claim are two steps, so a leader may have stored the key
    /// and released its claim in between; without a second look that request would become a
    /// second leader and fetch the object again. So the claim checks the tiers while holding
    /// the fill shard's lock: a leader stores before it releases (which takes that lock), so
    /// an object stored by any finished leader is seen here. `answers` says whether a stored
    /// object would answer the caller's request (fresh enough, matching variant and method).
    pub fn begin_fill(self: &Arc<Self>, key: &str, answers: &dyn Fn(&Entry) -> bool) -> Fill {
        let mut fills = lock(&self.fills[shard_of(key)]);
        if let Some(sender) = fills.get(key) {
            return Fill::Wait(sender.subscribe());
        }
        if self.peek(key).is_some_and(|(_, entry)| answers(&entry)) {
            tracing::debug!(
                key,
                "fill claim found the key stored since the lookup missed"
            );
            return Fill::Stored;
        }
        let (sender, _) = watch::channel(());
        fills.insert(key.to_string(), sender);
        Fill::Leader(FillGuard {
            store: self.clone(),
            key: key.to_string(),
        })
    }

    /// Lookups that found nothing in any tier.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn tier_names(&self) -> Vec<String> {
        self.tiers.iter().map(|t| t.settings.name.clone()).collect()
    }

    pub fn stats(&self) -> Vec<TierStats> {
        self.tiers.iter().map(Tier::stats).collect()
    }

    /// Where `key` is stored; for a key that varies, its first variant found, L1 first.
    pub fn report(&self, key: &str) -> Option<EntryReport> {
        let varies = self.vary_names(key).is_some();
        self.tiers.iter().find_map(|tier| {
            let entry = if varies {
                tier.all().into_iter().find(|e| e.primary_key() == key)
            } else {
                tier.get(key)
            };
            entry.map(|entry| EntryReport {
                key: entry.primary_key().to_string(),
                variant: entry
                    .key
                    .split_once(VARIANT_SEPARATOR)
                    .map(|(_, values)| values.replace(VARIANT_SEPARATOR, "; ")),
                tier: tier.settings.name.clone(),
                status: entry.status,
                size: entry.size,
                hits: entry.hits(),
                age_seconds: entry.age().as_secs_f64(),
                ttl_seconds: entry.ttl.as_secs_f64(),
                ttl_left_seconds: entry.ttl_left().as_secs_f64(),
                ttl_source: entry.ttl_source,
                tags: entry.tags.clone(),
                soft_purged: entry.soft_purged.load(Ordering::Relaxed),
            })
        })
    }

    /// Bytes held by all tiers.
    pub fn total_bytes(&self) -> usize {
        self.tiers
            .iter()
            .map(|t| t.bytes.load(Ordering::Relaxed))
            .sum()
    }
}

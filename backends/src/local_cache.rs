//! The gateway's per-process item cache (issue 28, the `hash-locality` lesson): a bounded LRU by item id in front
//! of `/data/complex`'s fan-out to the database and the microservice, off unless asked for (`--local-cache N`,
//! `SCALELAB_GATEWAY_LOCAL_CACHE`, or live through `GET/POST /admin/local-cache`).
//!
//! Each gateway process has its own, so how often it hits depends on which ids the proxy sends it: round robin
//! sends every gateway every id, a hash on the id sends each id to one gateway. Every answer of `/data/complex`
//! says `X-Local-Cache: hit` or `miss` while the cache is on (no header while it is off, so the other lessons see
//! the gateway unchanged), and `scalelab_gateway_local_cache_requests_total{result}` counts the same.
//!
//! The LRU itself is the `lru` crate's (already in the build through Pingora): a hash map over an intrusive list,
//! O(1) per lookup, which is what a bounded per-process cache needs; only its on/off and resize rules are ours.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use lru::LruCache;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::AppError;
use crate::extract::Json;

/// The most entries the knob accepts: far more than the lab's thousand items, and a bound on the memory a typo can
/// ask for.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The response header naming the lookup's result.
pub const HEADER: &str = "x-local-cache";

/// What one lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<V> {
    /// The cache is off: no lookup, no header, nothing counted.
    Off,
    Hit(V),
    Miss,
}

impl<V> Lookup<V> {
    /// The header value and metric label: `hit` or `miss`, none while the cache is off.
    pub fn label(&self) -> Option<&'static str> {
        match self {
            Lookup::Off => None,
            Lookup::Hit(_) => Some("hit"),
            Lookup::Miss => Some("miss"),
        }
    }
}

/// A bounded LRU by item id that may be off (0 entries). Pure: no clock, no I/O.
#[derive(Debug)]
pub struct ItemLru<V> {
    entries: Option<LruCache<i64, V>>,
}

impl<V: Clone> ItemLru<V> {
    /// A cache of `capacity` entries; 0 is off.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: NonZeroUsize::new(capacity).map(LruCache::new),
        }
    }

    /// The most entries it holds (0 while off).
    pub fn capacity(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |entries| entries.cap().get())
    }

    /// The entries it holds now.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, LruCache::len)
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks `id` up, making it the most recently used on a hit.
    pub fn get(&mut self, id: i64) -> Lookup<V> {
        match &mut self.entries {
            None => Lookup::Off,
            Some(entries) => entries.get(&id).cloned().map_or(Lookup::Miss, Lookup::Hit),
        }
    }

    /// Stores `value` under `id` as the most recently used, evicting the least recently used when full; nothing
    /// while off.
    pub fn put(&mut self, id: i64, value: V) {
        if let Some(entries) = &mut self.entries {
            entries.put(id, value);
        }
    }
}

/// What a hit saves: the two dependency answers `/data/complex` fans out for.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub db_data: Value,
    pub service_data: Value,
}

/// The cache's state as `GET /admin/local-cache` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The capacity (0: off).
    pub entries: usize,
    /// The entries held now.
    pub stored: usize,
    pub hits: u64,
    pub misses: u64,
}

/// `POST /admin/local-cache`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resize {
    entries: usize,
}

/// Why the cache could not be set up or resized.
#[derive(Debug, thiserror::Error)]
pub enum LocalCacheError {
    #[error("entries must be at most {MAX_ENTRIES} (0 turns the cache off), got {0}")]
    TooLarge(usize),
    #[error("registering the local cache's counter: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The gateway's cache, shared by its request tasks, with its counter.
#[derive(Debug, Clone)]
pub struct LocalCache {
    lru: Arc<Mutex<ItemLru<Arc<Item>>>>,
    lookups: IntCounterVec,
}

impl LocalCache {
    /// An empty cache of `entries` (0: off), counting into `registry`.
    ///
    /// # Errors
    /// `entries` is above [`MAX_ENTRIES`], or the counter cannot be registered.
    pub fn register(registry: &Registry, entries: usize) -> Result<Self, LocalCacheError> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "scalelab_gateway_local_cache_requests_total",
                "Lookups in the gateway's local item cache, by result (hit, miss); none while it is off",
            ),
            &["result"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        // Both series exist from the start, so the first hit shows in rate().
        for result in ["hit", "miss"] {
            lookups.with_label_values(&[result]);
        }
        let cache = Self {
            lru: Arc::new(Mutex::new(ItemLru::new(0))),
            lookups,
        };
        cache.resize(entries)?;
        Ok(cache)
    }

    /// Sets the capacity and empties the cache: a new size starts cold, so a lesson's phases do not inherit each
    /// other's entries.
    ///
    /// # Errors
    /// `entries` is above [`MAX_ENTRIES`].
    pub fn resize(&self, entries: usize) -> Result<(), LocalCacheError> {
        if entries > MAX_ENTRIES {
            return Err(LocalCacheError::TooLarge(entries));
        }
        *scalelab_common::sync::lock(&self.lru) = ItemLru::new(entries);
        Ok(())
    }

    /// Looks `id` up and counts the result.
    pub fn get(&self, id: i64) -> Lookup<Arc<Item>> {
        let lookup = scalelab_common::sync::lock(&self.lru).get(id);
        if let Some(label) = lookup.label() {
            self.lookups.with_label_values(&[label]).inc();
        }
        lookup
    }

    /// Stores a fetched item.
    pub fn put(&self, id: i64, item: Item) {
        scalelab_common::sync::lock(&self.lru).put(id, Arc::new(item));
    }

    /// The item `id` from the cache, else from `fetch` (stored if the cache is on and the fetch succeeded), with
    /// the lookup's `X-Local-Cache` value (none while off). Concurrent misses of one id each fetch: the lab's loads
    /// are too short for coalescing to change what the lesson shows.
    ///
    /// # Errors
    /// The fetch's error; nothing is stored then.
    pub async fn get_or_fetch<E>(
        &self,
        id: i64,
        fetch: impl Future<Output = Result<Item, E>>,
    ) -> Result<(Item, Option<&'static str>), E> {
        let lookup = self.get(id);
        let label = lookup.label();
        let item = match lookup {
            Lookup::Hit(item) => Item::clone(&item),
            Lookup::Off => fetch.await?,
            Lookup::Miss => {
                let item = fetch.await?;
                self.put(id, item.clone());
                item
            }
        };
        Ok((item, label))
    }

    /// The capacity, the entries held and the counts so far.
    pub fn status(&self) -> Status {
        let (entries, stored) = {
            let lru = scalelab_common::sync::lock(&self.lru);
            (lru.capacity(), lru.len())
        };
        let count = |result: &str| self.lookups.with_label_values(&[result]).get();
        Status {
            entries,
            stored,
            hits: count("hit"),
            misses: count("miss"),
        }
    }
}

/// `GET /admin/local-cache` (the status) and `POST /admin/local-cache` with `{"entries": N}` (resize and empty; 0
/// turns it off).
pub fn router(cache: LocalCache) -> Router {
    Router::new()
        .route("/admin/local-cache", get(current).post(update))
        .with_state(cache)
}

async fn current(State(cache): State<LocalCache>) -> axum::Json<Status> {
    axum::Json(cache.status())
}

async fn update(
    State(cache): State<LocalCache>,
    Json(resize): Json<Resize>,
) -> Result<axum::Json<Status>, AppError> {
    cache
        .resize(resize.entries)
        .map_err(|error| AppError::BadRequest(error.to_string()))?;
    tracing::info!(entries = resize.entries, "local cache resized");
    Ok(axum::Json(cache.status()))
}

#[cfg(test)]
mod tests;

//! `CacheHandle`: the store for the running config, following reloads.

use super::remote::RemoteTier;
use super::selector::Selector;
use super::store::CacheStore;
use crate::config::CacheSettings;
use scalelab_common::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the cache takes from one config: its generation, its `[cache]` settings and the key
/// template of each caching route. Built once with each snapshot, so a request only compares
/// generations.
#[derive(Debug, Clone, Default)]
pub struct CacheConfig {
    pub generation: u64,
    pub settings: Option<CacheSettings>,
    /// Each caching route's name and key template source.
    pub templates: HashMap<String, String>,
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
    /// The shared (Redis) tier, when `[redis]` was configured at start.
    remote: Option<Arc<RemoteTier>>,
}

impl CacheHandle {
    /// A handle whose stores use `remote` for a `kind = "redis"` tier.
    pub fn new(remote: Option<Arc<RemoteTier>>) -> CacheHandle {
        CacheHandle {
            remote,
            ..CacheHandle::default()
        }
    }

    /// The shared tier's connection, if any.
    pub fn remote(&self) -> Option<&Arc<RemoteTier>> {
        self.remote.as_ref()
    }

    /// The store as it is now (the purge subscriber applies fleet purges to it).
    pub fn current(&self) -> Option<Arc<CacheStore>> {
        self.current.load_full()
    }

    /// The store matching `config`'s `[cache]` settings. The first call for a newer generation
    /// resizes (or creates, or drops) the store and drops the objects of every route whose key
    /// template changed; later calls for it only load the store.
    pub fn for_config(&self, config: &CacheConfig) -> Option<Arc<CacheStore>> {
        if self.generation.load(Ordering::Acquire) < config.generation {
            let _guard = lock(&self.reconfigure);
            if self.generation.load(Ordering::Acquire) < config.generation {
                let current = self.current.load_full();
                let next = match (&config.settings, current) {
                    (None, _) => None,
                    (Some(settings), Some(store)) if store.settings == *settings => Some(store),
                    (Some(settings), Some(store)) => {
                        Some(store.resized(settings.clone(), self.remote.clone()))
                    }
                    (Some(settings), None) => Some(CacheStore::with_remote(
                        settings.clone(),
                        self.remote.clone(),
                    )),
                };
                let mut known = lock(&self.templates);
                if let Some(store) = &next {
                    // Objects stored under a template that no longer applies could never be
                    // found again; drop them rather than let them hold memory until expiry.
                    for (route, template) in known.iter() {
                        if config.templates.get(route) != Some(template) {
                            store.invalidate(&Selector::Route(route.clone()), false);
                        }
                    }
                }
                known.clone_from(&config.templates);
                self.current.store(next);
                self.generation.store(config.generation, Ordering::Release);
            }
        }
        self.current.load_full()
    }
}

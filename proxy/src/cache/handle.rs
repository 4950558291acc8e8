//! `CacheHandle`: the store for the running config, following reloads.

use super::invalidation::Selector;
use super::store::CacheStore;
use scalelab_common::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
}

//! Invalidation: what a purge selects, and removing (or soft-purging) it from every tier.

use super::entry::Entry;
use super::store::CacheStore;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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

impl CacheStore {
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
}

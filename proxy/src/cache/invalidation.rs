//! Invalidation: what a purge selects, how a request for one is read (the same for the
//! proxy's `POST /cache/invalidate` and the admin API's `DELETE /admin/cache`), and removing
//! (or soft-purging) it from every tier.

use super::entry::Entry;
use super::selector::Selector;
use super::store::CacheStore;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A request to invalidate: what it selects, and whether it only marks objects stale.
#[derive(Debug, Clone)]
pub struct Invalidation {
    pub selector: Selector,
    /// Mark the objects stale (served while one request refreshes them) instead of removing.
    pub soft: bool,
}

/// Why an invalidation request was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidationError {
    #[error("invalid JSON body")]
    Json(#[source] serde_json::Error),
    #[error("expected exactly one of \"key\", \"prefix\" (non-empty) or \"tag\" as a string")]
    Selector,
}

impl InvalidationError {
    /// The body of the 400 answer: the message, and for bad JSON the parser's detail.
    pub fn body(&self) -> Value {
        match self {
            InvalidationError::Json(error) => {
                json!({"error": self.to_string(), "detail": error.to_string()})
            }
            InvalidationError::Selector => json!({"error": self.to_string()}),
        }
    }
}

impl Invalidation {
    /// Exactly one of a key, a non-empty prefix or a tag selects the objects.
    ///
    /// # Errors
    /// `Selector` when none or more than one is given, or the prefix is empty (which would
    /// select everything).
    pub fn from_fields(
        key: Option<String>,
        prefix: Option<String>,
        tag: Option<String>,
        soft: bool,
    ) -> Result<Invalidation, InvalidationError> {
        let selector = match (key, prefix, tag) {
            (Some(key), None, None) => Selector::Key(key),
            (None, Some(prefix), None) if !prefix.is_empty() => Selector::Prefix(prefix),
            (None, None, Some(tag)) => Selector::Tag(tag),
            _ => return Err(InvalidationError::Selector),
        };
        Ok(Invalidation { selector, soft })
    }

    /// Reads `{"key"|"prefix"|"tag": "...", "soft": bool}`. A selector field that is not a
    /// string counts as absent, and a `soft` that is not a boolean as false.
    ///
    /// # Errors
    /// `Json` for a body that is not JSON, else as `from_fields`.
    pub fn from_json(body: &[u8]) -> Result<Invalidation, InvalidationError> {
        let value: Value = serde_json::from_slice(body).map_err(InvalidationError::Json)?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        let soft = value.get("soft").and_then(Value::as_bool).unwrap_or(false);
        Invalidation::from_fields(text("key"), text("prefix"), text("tag"), soft)
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
    pub fn invalidate_report(&self, request: &Invalidation) -> Value {
        let Invalidation { selector, soft } = request;
        let removed = self.invalidate(selector, *soft);
        let mut body = json!({"status": "Cache invalidated", "removed": removed, "soft": soft});
        body[selector.field()] = Value::from(selector.value());
        body
    }
}

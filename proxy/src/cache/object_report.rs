//! One object's place and numbers, for `GET /admin/cache?key=`.

use super::policy::TtlSource;
use super::store::CacheStore;
use super::VARIANT_SEPARATOR;
use serde::Serialize;
use std::sync::atomic::Ordering;

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

impl CacheStore {
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
}

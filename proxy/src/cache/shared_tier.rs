//! The shared (Redis) last tier as the store holds it: the connection, the tier's settings and
//! its counters for `/cache/stats`. Apart from `fleet`, which is what the store does with it, so
//! the store can hold one without importing the protocol that uses the store.

use super::remote::RemoteTier;
use super::tier::TierStats;
use crate::config::{TierKind, TierSettings};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The shared tier as the store sees it: the connection and the tier's settings.
#[derive(Debug)]
pub(super) struct SharedTier {
    pub(super) remote: Arc<RemoteTier>,
    pub(super) settings: TierSettings,
}

impl SharedTier {
    /// The shared tier of `tiers`, when the last one is `kind = "redis"` and a connection exists.
    pub(super) fn of(
        tiers: &[TierSettings],
        remote: Option<Arc<RemoteTier>>,
    ) -> Option<SharedTier> {
        let last = tiers.last().filter(|tier| tier.kind == TierKind::Redis)?;
        match remote {
            Some(remote) => {
                remote.limit_usage(last.max_bytes);
                Some(SharedTier {
                    remote,
                    settings: last.clone(),
                })
            }
            None => {
                // [redis] is read at start only: a reload that adds it cannot connect.
                tracing::warn!(
                    tier = last.name,
                    "tier kind = \"redis\" needs [redis] at start; restart the proxy to use it"
                );
                None
            }
        }
    }

    pub(super) fn stats(&self) -> TierStats {
        let counters = &self.remote.counters;
        TierStats {
            name: self.settings.name.clone(),
            hits: counters.hits.load(Ordering::Relaxed),
            misses: counters.misses.load(Ordering::Relaxed),
            sets: counters.sets.load(Ordering::Relaxed),
            evictions: 0,
            expirations: 0,
            promotions: counters.promotions.load(Ordering::Relaxed),
            demotions: 0,
            // Redis holds the objects; counting them would cost a scan per scrape. The bytes
            // are the server's used memory, which `max_bytes` bounds (see `remote::usage`).
            items: 0,
            bytes: usize::try_from(counters.used_bytes.load(Ordering::Relaxed))
                .unwrap_or(usize::MAX),
            max_entries: self.settings.max_entries,
            max_bytes: self.settings.max_bytes,
        }
    }
}

//! What the store does with a shared (Redis) last tier: a lookup that misses in memory asks
//! Redis; a hit there is copied into this proxy's last memory tier once the object is hot
//! across the fleet (`promotion.hits` hits in Redis); a new object goes to Redis (and to this
//! proxy's last memory tier, so its own waiters find it at once); a purge goes to Redis and to
//! every proxy; and a request whose key another proxy is fetching waits for that fill.

use super::entry::{variant_key, Entry};
use super::invalidation::Invalidation;
use super::policy::Usability;
use super::remote::{Lookup, RemoteTier};
use super::store::{CacheStore, Found};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often a request waiting for another proxy's fill looks in Redis.
const FLEET_POLL: Duration = Duration::from_millis(20);

impl CacheStore {
    /// The shared tier's connection, when the last tier is one.
    pub fn remote(&self) -> Option<&Arc<RemoteTier>> {
        self.shared.as_ref().map(|shared| &shared.remote)
    }

    /// Sends a new object to the shared tier (in the background: the response is not held up
    /// by Redis), releasing the fleet fill lock `token` once it is stored.
    pub(super) fn send_to_shared(
        &self,
        entry: &Arc<Entry>,
        token: Option<String>,
    ) -> Option<String> {
        let shared = self.shared.as_ref()?;
        let lifetime = entry.keep_for().min(shared.settings.ttl);
        let (remote, entry) = (shared.remote.clone(), entry.clone());
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        if remote.is_full() || entry.size > shared.settings.max_bytes {
            remote.counters.refused.fetch_add(1, Ordering::Relaxed);
            // The fleet's waiters need not wait for a store that will not come.
            if let Some(token) = token {
                runtime.spawn(async move { remote.unlock(&entry.key, &token).await });
            }
            return None;
        }
        runtime.spawn(async move { remote.put(&entry, lifetime, token.as_deref()).await });
        Some(shared.settings.name.clone())
    }

    /// Looks `storage_key` up in the shared tier after the memory tiers missed. When this proxy
    /// does not know that the key varies and another proxy stored variants of it, the lookup
    /// learns the varying headers (as this proxy's own fetch would have taught it) and asks for
    /// the variant `header` selects: a second round trip, once per key and proxy.
    pub async fn lookup_shared(
        &self,
        storage_key: &str,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Option<Found> {
        let shared = self.shared.as_ref()?;
        let knows_variants = self.vary_names(storage_key).is_some()
            || storage_key.contains(super::VARIANT_SEPARATOR);
        let (decoded, hits) = match shared.remote.get(storage_key, !knows_variants).await {
            Lookup::Found(decoded, hits) => (*decoded, hits),
            Lookup::Varies(names) => {
                let values: Vec<(String, Option<String>)> = names
                    .into_iter()
                    .map(|name| (name.clone(), header(&name)))
                    .collect();
                self.record_vary(storage_key, &values);
                match shared
                    .remote
                    .get(&variant_key(storage_key, &values), false)
                    .await
                {
                    Lookup::Found(decoded, hits) => (*decoded, hits),
                    Lookup::Varies(_) | Lookup::Miss => return None,
                }
            }
            Lookup::Miss => return None,
        };
        let key = variant_key(&decoded.new.key, &decoded.new.vary);
        if key != decoded.key {
            // Stored under another key than its contents say: not an object to trust.
            return None;
        }
        let size = super::entry::object_size(&key, &decoded.new);
        let entry = Entry::restored(self.next_id(), key, size, decoded.new, decoded.age);
        if decoded.soft_purged {
            entry.soft_purged.store(true, Ordering::Relaxed);
        }
        if entry.usability() == Usability::Expired {
            return None;
        }
        let mut promoted = None;
        if let Some(last) = self.tiers.len().checked_sub(1) {
            if hits >= u64::from(self.settings.promotion_hits) {
                self.place(last, entry.clone());
                shared
                    .remote
                    .counters
                    .promotions
                    .fetch_add(1, Ordering::Relaxed);
                promoted = Some(format!(
                    "{}->{}",
                    shared.settings.name, self.tiers[last].settings.name
                ));
            }
        }
        Some(Found {
            entry,
            tier_name: shared.settings.name.clone(),
            promoted,
        })
    }

    /// Waits (at most `bound`) for the proxy holding the fleet fill lock of `storage_key` to
    /// store it; `None` when it gave up (its lock is gone and nothing was stored) or took too long.
    pub async fn wait_for_fleet_fill(
        &self,
        storage_key: &str,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
        bound: Duration,
    ) -> Option<Found> {
        let remote = self.remote()?;
        let deadline = tokio::time::Instant::now() + bound;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(FLEET_POLL).await;
            if let Some(found) = self.lookup_shared(storage_key, header).await {
                return Some(found);
            }
            if !remote.locked(storage_key).await {
                // Stored just before the lock went, or not stored at all: one last look.
                return self.lookup_shared(storage_key, header).await;
            }
        }
        None
    }

    /// Invalidates in this proxy's memory tiers, in Redis and, through the channel, in every
    /// other proxy; answers in the seed's shape plus `shared_removed` (objects Redis held).
    pub async fn invalidate_everywhere(&self, request: &Invalidation) -> Value {
        let mut body = self.invalidate_report(request);
        if let Some(remote) = self.remote() {
            let removed = remote.invalidate(&request.selector, request.soft).await;
            body["shared_removed"] = json!(removed);
        }
        body
    }
}

//! Request coalescing: one request (the leader) fetches a missing key while the others wait
//! for it and then look the key up again.

use super::remote::RemoteTier;
use super::shard_of;
use super::SHARDS;
use scalelab_common::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The keys being filled, sharded like the tiers; each sender's receivers are the waiters.
/// Shared with every `FillGuard`, which removes its key when it drops.
#[derive(Debug, Clone)]
pub(super) struct Fills(Arc<Vec<FillShard>>);

/// One shard of the fill table: key -> the sender its waiters subscribe to.
type FillShard = Mutex<HashMap<String, watch::Sender<()>>>;

impl Default for Fills {
    fn default() -> Fills {
        Fills(Arc::new(
            (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        ))
    }
}

/// The leader's claim on filling a key; dropping it (done, failed or cancelled) wakes every
/// waiter, who then looks the key up again.
#[derive(Debug)]
pub struct FillGuard {
    fills: Fills,
    /// The shared tier, whose fleet lock the guard lets go of when nothing was stored.
    remote: Option<Arc<RemoteTier>>,
    key: String,
    /// The fleet fill lock's token, while this proxy holds it for the whole fleet.
    fleet_token: Option<String>,
}

impl FillGuard {
    /// Records that this leader also holds the fleet's fill lock.
    pub fn hold_fleet_lock(&mut self, token: String) {
        self.fleet_token = Some(token);
    }

    /// Hands the fleet lock to the store that stores the object (it lets go of the lock once
    /// the object is in the shared tier, so no other proxy finds neither lock nor object).
    pub fn take_fleet_token(&mut self) -> Option<String> {
        self.fleet_token.take()
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        lock(&self.fills.0[shard_of(&self.key)]).remove(&self.key);
        // Nothing was stored under the fleet lock (the fetch failed or was not cacheable):
        // let go of it now, so other proxies' waiters go to the origin without waiting it out.
        if let (Some(token), Some(remote)) = (self.fleet_token.take(), self.remote.as_ref()) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (remote, key) = (remote.clone(), std::mem::take(&mut self.key));
                runtime.spawn(async move { remote.unlock(&key, &token).await });
            }
        }
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

impl Fills {
    /// Claims the fill of `key` or returns a receiver that wakes when the leader is done.
    ///
    /// The caller's lookup and this claim are two steps, so a leader may have stored the key
    /// and released its claim in between; without a second look that request would become a
    /// second leader and fetch the object again. So the claim asks `stored` (do the tiers now
    /// hold an object that answers the request?) while holding the fill shard's lock: a leader
    /// stores before it releases (which takes that lock), so an object stored by any finished
    /// leader is seen here.
    pub(super) fn claim(
        &self,
        key: &str,
        stored: impl FnOnce() -> bool,
        remote: Option<Arc<RemoteTier>>,
    ) -> Fill {
        let mut fills = lock(&self.0[shard_of(key)]);
        if let Some(sender) = fills.get(key) {
            return Fill::Wait(sender.subscribe());
        }
        if stored() {
            tracing::debug!(
                key,
                "fill claim found the key stored since the lookup missed"
            );
            return Fill::Stored;
        }
        let (sender, _) = watch::channel(());
        fills.insert(key.to_string(), sender);
        Fill::Leader(FillGuard {
            fills: self.clone(),
            remote,
            key: key.to_string(),
            fleet_token: None,
        })
    }
}

//! The cache's protocol for one request, as one call: look in the memory tiers, then the shared
//! tier; answer with a usable object; otherwise claim the key's fill (one leader per key here,
//! and with a shared tier one per fleet), or wait for the current leader and look again. The
//! request path maps the `Outcome` to a response and never sees fill locks or tiers.

use super::fill::{Fill, FillGuard};
use super::policy::Usability;
use super::remote::Lock;
use super::store::{CacheStore, Found};
use super::Entry;
use std::sync::Arc;

/// A waiter looks again after the leader it waited for finishes; the bound keeps a chain of
/// failing leaders from holding a request forever.
const MAX_PASSES: usize = 3;

/// What the request should do.
#[derive(Debug)]
pub enum Outcome {
    /// A stored object answers the request: serve it. `refresh` is set when the object is
    /// within its stale-while-revalidate window and this request claimed its background
    /// refresh (at most one per object).
    Hit {
        found: Found,
        stale: bool,
        refresh: bool,
    },
    /// This request fetches the key from the origin and stores it; waiters wake when `fill`
    /// drops. `stale` is an object usable only if the origin fails (stale-if-error).
    Lead {
        fill: FillGuard,
        stale: Option<Arc<Entry>>,
    },
    /// Fetch from the origin without leading the fill (the leader was slow, or the passes ran
    /// out), still storing what comes back if it is storable; with the stale object if any.
    Forward { stale: Option<Arc<Entry>> },
}

/// What the protocol needs to know about the request.
pub struct Lookup<'r> {
    /// The primary key the route's template rendered.
    pub key: &'r str,
    /// A HEAD request may be answered by an object stored from a HEAD.
    pub head: bool,
    /// The request's header by (lower-case) name, for `Vary`.
    pub header: &'r (dyn Fn(&str) -> Option<String> + Sync),
}

impl CacheStore {
    /// Runs the protocol for one request whose cache mode is a plain lookup.
    pub async fn lookup_for_request(self: &Arc<Self>, request: &Lookup<'_>) -> Outcome {
        let header = request.header;
        let mut stale = None;
        for _ in 0..MAX_PASSES {
            // Re-derived on every pass: the leader we waited for may have learnt that the key
            // varies.
            let storage_key = self.storage_key(request.key, &|name| header(name));
            let fits = |entry: &Entry| {
                entry.matches_vary(&|name| header(name)) && (request.head || !entry.head_only)
            };
            let found = match self.lookup(&storage_key) {
                Some(found) => Some(found),
                // The memory tiers missed: the shared tier (when there is one) may have it.
                None => self.lookup_shared(&storage_key, header).await,
            };
            if let Some(found) = found.filter(|found| fits(&found.entry)) {
                match found.entry.usability() {
                    Usability::Fresh => {
                        return Outcome::Hit {
                            found,
                            stale: false,
                            refresh: false,
                        }
                    }
                    Usability::StaleRevalidate => {
                        let refresh = found.entry.claim_refresh();
                        return Outcome::Hit {
                            found,
                            stale: true,
                            refresh,
                        };
                    }
                    Usability::StaleIfError => stale = Some(found.entry.clone()),
                    Usability::Expired => {}
                }
            }
            let answers = |entry: &Entry| {
                fits(entry)
                    && matches!(
                        entry.usability(),
                        Usability::Fresh | Usability::StaleRevalidate
                    )
            };
            match self.begin_fill(&storage_key, &answers) {
                Fill::Leader(mut fill) => {
                    // This proxy leads the fill here; with a shared tier, the fleet has one
                    // leader.
                    if let Some(remote) = self.remote() {
                        let bound = self.settings.lock_timeout;
                        match remote.lock(&storage_key, bound).await {
                            Lock::Won(token) => fill.hold_fleet_lock(token),
                            Lock::Held => {
                                let found =
                                    self.wait_for_fleet_fill(&storage_key, header, bound).await;
                                if let Some(found) = found.filter(|found| answers(&found.entry)) {
                                    // The waiters here wake when `fill` drops and find the
                                    // object in memory, where the lookup copied it.
                                    return Outcome::Hit {
                                        found,
                                        stale: false,
                                        refresh: false,
                                    };
                                }
                            }
                            // Redis is down or slow: fetch it without the fleet.
                            Lock::Unavailable => {}
                        }
                    }
                    return Outcome::Lead { fill, stale };
                }
                // A leader stored it since our lookup: the next pass finds it.
                Fill::Stored => {}
                Fill::Wait(mut waiter) => {
                    let bound = self.settings.lock_timeout;
                    if tokio::time::timeout(bound, waiter.changed()).await.is_err() {
                        // The leader is slow: go to the origin too rather than wait longer.
                        return Outcome::Forward { stale };
                    }
                }
            }
        }
        Outcome::Forward { stale }
    }
}

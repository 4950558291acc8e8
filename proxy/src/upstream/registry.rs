//! `Registry`: what outlives snapshots, by name: each server's state by (group, address), each
//! group's wait queue, and the rate limits' buckets.

use super::circuit::Circuit;
use super::{ServerState, WaitQueue};
use scalelab_common::sync::lock;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Keeps `ServerState` by (group, address) across snapshots.
#[derive(Debug, Default)]
pub struct Registry {
    servers: Mutex<HashMap<(String, SocketAddr), Arc<ServerState>>>,
    /// Rate limit buckets, which survive reloads the same way.
    pub limits: crate::ratelimit::LimitRegistry,
    /// Each group's wait queue, so requests waiting across a reload are woken by either side.
    queues: Mutex<HashMap<String, Arc<WaitQueue>>>,
    /// Each group's requests in flight under its circuit, kept across reloads like the queue.
    circuits: Mutex<HashMap<String, Arc<Circuit>>>,
    /// The servers DNS names resolved to (`discovery`), kept across snapshots and reloads.
    pub discovered: crate::discovery::Table,
    /// Set once the first snapshot is built: servers that appear after it (added by a reload)
    /// slow-start.
    sealed: AtomicBool,
}

impl Registry {
    /// A registry whose DNS sources start with what `discovered` resolved before start-up.
    pub fn with_discovered(discovered: crate::discovery::Table) -> Registry {
        Registry {
            discovered,
            ..Registry::default()
        }
    }

    /// The state for a server, created when it first appears. A new server with an active
    /// check starts unhealthy and takes traffic only after it passes one.
    pub fn server(
        &self,
        group: &str,
        addr: SocketAddr,
        has_active_check: bool,
    ) -> Arc<ServerState> {
        let mut servers = lock(&self.servers);
        servers
            .entry((group.to_string(), addr))
            .or_insert_with(|| {
                let ramping = self.sealed.load(Ordering::Relaxed);
                Arc::new(ServerState::new(group, addr, !has_active_check, ramping))
            })
            .clone()
    }

    /// Marks the start-up servers as known: any server created later slow-starts.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Relaxed);
    }

    /// The wait queue of `group`, created when the group first appears.
    pub fn queue(&self, group: &str) -> Arc<WaitQueue> {
        lock(&self.queues)
            .entry(group.to_string())
            .or_insert_with(|| Arc::new(WaitQueue::new(group)))
            .clone()
    }

    /// The circuit count of `group`, created when the group first appears.
    pub fn circuit(&self, group: &str) -> Arc<Circuit> {
        lock(&self.circuits)
            .entry(group.to_string())
            .or_default()
            .clone()
    }

    /// Forgets the queues (and their series) and circuits of groups `keep` refuses.
    pub fn retain_queues(&self, keep: impl Fn(&str) -> bool) {
        lock(&self.queues).retain(|group, _| keep(group));
        lock(&self.circuits).retain(|group, _| keep(group));
        super::queue::prune(&keep);
    }

    /// Servers `listed` refuses that the registry still keeps for their open upgraded
    /// connections (see `retain`), for the admin API.
    pub fn departed(&self, listed: impl Fn(&str, SocketAddr) -> bool) -> Vec<Arc<ServerState>> {
        lock(&self.servers)
            .iter()
            .filter(|((group, addr), state)| state.upgraded_open() > 0 && !listed(group, *addr))
            .map(|(_, state)| state.clone())
            .collect()
    }

    /// Forgets servers that no snapshot lists any more, except while upgraded connections are
    /// open on them: those drain on their own time, and a server re-added meanwhile must find
    /// its slots still taken (for `max_connections` and least connections).
    pub fn retain(&self, keep: impl Fn(&str, SocketAddr) -> bool) {
        lock(&self.servers).retain(|(group, addr), state| {
            if state.upgraded_open() > 0 {
                return true;
            }
            let kept = keep(group, *addr);
            if !kept {
                // Probes and requests still holding the state record nothing more for it.
                state.metrics.retire();
            }
            kept
        });
    }
}

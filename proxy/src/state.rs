//! `Shared`: the state every part of the proxy sees: the current `Snapshot` behind an
//! `ArcSwap`, the server registry that outlives snapshots, the count of requests in flight
//! (for draining on SIGTERM) and the reload entry point.

use crate::config::{Config, ConfigError};
use crate::snapshot::Snapshot;
use crate::upstream::Registry;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Shared {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config_path: PathBuf,
    snapshot: ArcSwap<Snapshot>,
    registry: Registry,
    generation: AtomicU64,
    active_requests: AtomicUsize,
    /// Serialises reloads so two triggers never interleave their builds.
    reload_lock: Mutex<()>,
}

/// Counts one request from its context's creation to its drop.
#[derive(Debug)]
pub struct ActiveRequest {
    shared: Shared,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.shared
            .inner
            .active_requests
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a reload did.
#[derive(Debug)]
pub struct ReloadOutcome {
    pub generation: u64,
    /// Restart-only fields that differ from the running process; they were not applied.
    pub restart_required: Vec<&'static str>,
}

impl Shared {
    pub fn new(config_path: &Path, config: Config) -> Shared {
        let registry = Registry::default();
        let snapshot = Snapshot::build(config, 1, &registry);
        Shared {
            inner: Arc::new(Inner {
                config_path: config_path.to_path_buf(),
                snapshot: ArcSwap::from_pointee(snapshot),
                registry,
                generation: AtomicU64::new(1),
                active_requests: AtomicUsize::new(0),
                reload_lock: Mutex::new(()),
            }),
        }
    }

    /// The snapshot a new request should use for its whole life.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    pub fn start_request(&self) -> ActiveRequest {
        self.inner.active_requests.fetch_add(1, Ordering::Relaxed);
        ActiveRequest {
            shared: self.clone(),
        }
    }

    pub fn active_requests(&self) -> usize {
        self.inner.active_requests.load(Ordering::Relaxed)
    }

    /// Re-reads the config file and swaps in a new snapshot; on any error the running one
    /// stays. Restart-only fields keep their running values.
    ///
    /// # Errors
    /// Every problem of the new file.
    pub fn reload(&self) -> Result<ReloadOutcome, ConfigError> {
        let _guard = match self.inner.reload_lock.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut config = Config::load(&self.inner.config_path)?;
        let running = self.snapshot();
        let mut restart_required = Vec::new();
        if config.proxy.listen != running.config.proxy.listen {
            restart_required.push("proxy.listen");
        }
        if config.proxy.admin_listen != running.config.proxy.admin_listen {
            restart_required.push("proxy.admin_listen");
        }
        if config.proxy.threads != running.config.proxy.threads {
            restart_required.push("proxy.threads");
        }
        config.proxy.listen = running.config.proxy.listen.clone();
        config.proxy.admin_listen = running.config.proxy.admin_listen;
        config.proxy.threads = running.config.proxy.threads;
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot = Snapshot::build(config, generation, &self.inner.registry);
        self.inner.snapshot.store(Arc::new(snapshot));
        let current = self.snapshot();
        self.inner.registry.retain(|group, addr| {
            current
                .pool(group)
                .is_some_and(|pool| pool.servers.iter().any(|s| s.state.addr == addr))
        });
        Ok(ReloadOutcome {
            generation,
            restart_required,
        })
    }
}

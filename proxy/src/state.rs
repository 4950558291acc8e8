//! `Shared`: the state every part of the proxy sees: the current `Snapshot` behind an
//! `ArcSwap`, the server registry that outlives snapshots, the count of requests in flight
//! (for draining on SIGTERM) and the reload entry point.

use crate::config::{Config, ConfigError};
use crate::reload::{self, Journal, Outcome, Record, Trigger};
use crate::snapshot::Snapshot;
use crate::upstream::Registry;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use scalelab_common::sync::lock;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    loaded: Mutex<Loaded>,
    journal: Journal,
    /// The response cache store; it follows reloads and outlives snapshots.
    cache: Arc<crate::cache::CacheHandle>,
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

/// The config that is serving, as `GET /admin/config` shows it. Kept together under one lock
/// so the generation, hash and load time always describe the same snapshot.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub snapshot: Arc<Snapshot>,
    /// sha256 of the file text this snapshot was built from.
    pub sha256: String,
    /// RFC 3339, UTC.
    pub loaded_at: String,
    pub loaded_unix_ms: u64,
}

impl Shared {
    /// State for a config whose file text is unknown (its hash is then empty, so the first
    /// file event always reloads).
    pub fn new(config_path: &Path, config: Config) -> Shared {
        Shared::with_source(config_path, config, None)
    }

    /// State for `config`, parsed from `text` (the bytes whose hash `GET /admin/config` shows
    /// and the file watcher compares against).
    pub fn with_source(config_path: &Path, config: Config, text: Option<&str>) -> Shared {
        let registry = Registry::default();
        let snapshot = Arc::new(Snapshot::build(config, 1, &registry));
        let sha256 = text.map(reload::sha256_hex).unwrap_or_default();
        let (loaded_at, loaded_unix_ms) = reload::now();
        let journal = Journal::default();
        journal.push(Record {
            generation: 1,
            time: loaded_at.clone(),
            unix_ms: loaded_unix_ms,
            trigger: Trigger::Startup,
            result: Outcome::Applied,
            sha256: sha256.clone(),
            duration_us: 0,
            errors: Vec::new(),
            changes: Vec::new(),
        });
        Shared {
            inner: Arc::new(Inner {
                config_path: config_path.to_path_buf(),
                snapshot: ArcSwap::new(snapshot.clone()),
                registry,
                generation: AtomicU64::new(1),
                active_requests: AtomicUsize::new(0),
                reload_lock: Mutex::new(()),
                loaded: Mutex::new(Loaded {
                    snapshot,
                    sha256,
                    loaded_at,
                    loaded_unix_ms,
                }),
                journal,
                cache: Arc::new(crate::cache::CacheHandle::default()),
            }),
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.inner.config_path
    }

    /// The serving config with its hash and load time.
    pub fn loaded(&self) -> Loaded {
        lock(&self.inner.loaded).clone()
    }

    /// Reload counts since start, for the metrics.
    pub fn reload_totals(&self) -> crate::reload::Totals {
        self.inner.journal.totals()
    }

    /// The reload journal, newest first.
    pub fn reloads(&self) -> Vec<Record> {
        self.inner.journal.records()
    }

    /// The response cache store (shared by the proxy service and the admin API).
    pub fn cache(&self) -> &Arc<crate::cache::CacheHandle> {
        &self.inner.cache
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
    /// stays. This is the one entry point of every trigger; see `apply`.
    pub fn reload(&self, trigger: Trigger) -> Record {
        let read =
            std::fs::read_to_string(&self.inner.config_path).map_err(|source| ConfigError::Read {
                path: self.inner.config_path.clone(),
                source,
            });
        self.apply(trigger, read)
    }

    /// Applies file text that was already read (the watcher reads it itself to decide whether
    /// to retry). All or nothing: validate, build the new snapshot, then swap it in with one
    /// atomic store, so each request sees either the old config or the new one. Restart-only
    /// fields keep their running values and are reported as "restart required". Every call
    /// that is not a no-op lands in the journal.
    ///
    /// A file event whose text hashes the same as the running config is skipped without a
    /// journal entry, because editors and our own reads produce such events all the time.
    pub fn apply(&self, trigger: Trigger, read: Result<String, ConfigError>) -> Record {
        let _guard = lock(&self.inner.reload_lock);
        let started = Instant::now();
        let (time, unix_ms) = reload::now();
        let running = self.loaded();
        let mut record = Record {
            generation: running.snapshot.generation,
            time,
            unix_ms,
            trigger,
            result: Outcome::Rejected,
            sha256: String::new(),
            duration_us: 0,
            errors: Vec::new(),
            changes: Vec::new(),
        };
        let parsed = read.and_then(|text| {
            record.sha256 = reload::sha256_hex(&text);
            if record.sha256 == running.sha256 {
                return Ok(None);
            }
            crate::config::parse(&self.inner.config_path, &text).map(Some)
        });
        let mut config = match parsed {
            Ok(Some(config)) => config,
            Ok(None) => {
                record.result = Outcome::Unchanged;
                record.duration_us = started.elapsed().as_micros() as u64;
                if trigger != Trigger::File {
                    tracing::info!(
                        trigger = trigger.name(),
                        "config file unchanged; nothing to reload"
                    );
                    self.inner.journal.push(record.clone());
                }
                return record;
            }
            Err(error) => {
                record.errors = reload::problems(&error);
                record.duration_us = started.elapsed().as_micros() as u64;
                for problem in &record.errors {
                    tracing::error!(
                        trigger = trigger.name(),
                        path = %problem.path,
                        line = ?problem.line,
                        "config reload rejected: {}",
                        problem.message
                    );
                }
                tracing::warn!(
                    generation = record.generation,
                    "keeping the running config after a rejected reload"
                );
                self.inner.journal.push(record.clone());
                return record;
            }
        };

        record.changes = reload::diff(&running.snapshot.config, &config);
        let current = &running.snapshot.config.proxy;
        config.proxy.listen = current.listen.clone();
        config.proxy.admin_listen = current.admin_listen;
        config.proxy.threads = current.threads;
        config.proxy.shutdown_timeout = current.shutdown_timeout;

        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot = Arc::new(Snapshot::build(config, generation, &self.inner.registry));
        // Servers this reload adds start unhealthy; check them once before the swap so they
        // take traffic (if they pass) as soon as the new config serves.
        let added: Vec<_> = snapshot
            .pools
            .iter()
            .filter_map(|pool| Some((pool, pool.config.health_check.as_ref()?)))
            .flat_map(|(pool, check)| {
                let old_pool = running.snapshot.pool(pool.name());
                pool.servers
                    .iter()
                    .filter(move |server| {
                        !old_pool.is_some_and(|old| {
                            old.servers
                                .iter()
                                .any(|s| s.state.addr == server.state.addr)
                        })
                    })
                    .map(move |server| (server.state.clone(), check.clone()))
            })
            .collect();
        crate::health::first_checks_blocking(added);
        self.inner.snapshot.store(snapshot.clone());
        // Servers that left every group lose their state (and so their admin entries); their
        // in-flight requests still hold the state through the old snapshot and finish.
        self.inner.registry.retain(|group, addr| {
            snapshot
                .pool(group)
                .is_some_and(|pool| pool.servers.iter().any(|s| s.state.addr == addr))
        });
        *lock(&self.inner.loaded) = Loaded {
            snapshot,
            sha256: record.sha256.clone(),
            loaded_at: record.time.clone(),
            loaded_unix_ms: record.unix_ms,
        };
        record.generation = generation;
        record.result = Outcome::Applied;
        record.duration_us = started.elapsed().as_micros() as u64;
        let restart_required = record.restart_required();
        tracing::info!(
            generation,
            trigger = trigger.name(),
            changes = record.changes.len(),
            took_us = record.duration_us,
            "config reloaded"
        );
        if !restart_required.is_empty() {
            tracing::warn!(
                fields = ?restart_required,
                "changed fields need a restart and were not applied"
            );
        }
        self.inner.journal.push(record.clone());
        record
    }
}

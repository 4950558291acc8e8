//! `Shared`: the state every part of the proxy sees: the current `Snapshot` behind an
//! `ArcSwap`, the server registry that outlives snapshots, the count of requests in flight
//! (for draining on SIGTERM), the reload journal and the counters read by the admin API and
//! the metrics. It only holds; `reload` changes the config and `health` checks servers.

use crate::config::Config;
use crate::https::CertificateStore;
use crate::journal::{self, Journal, Outcome, Record, Trigger};
use crate::snapshot::Snapshot;
use crate::tasks::TaskCounters;
use crate::upstream::Registry;
use arc_swap::ArcSwap;
use scalelab_common::sync::lock;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
    auth_outcomes: AuthOutcomes,
    tasks: TaskCounters,
    /// The HTTPS listeners' certificates; `publish` swaps them with the config.
    certificates: Arc<CertificateStore>,
}

/// Token checks since the process started, one counter per outcome: every
/// `scalelab_auth::Rejection` reason in `ALL_REASONS` order, then `accepted`.
#[derive(Debug)]
pub struct AuthOutcomes {
    counts: [AtomicU64; AUTH_OUTCOMES],
}

const AUTH_OUTCOMES: usize = scalelab_auth::Rejection::ALL_REASONS.len() + 1;

impl Default for AuthOutcomes {
    fn default() -> AuthOutcomes {
        AuthOutcomes {
            counts: [const { AtomicU64::new(0) }; AUTH_OUTCOMES],
        }
    }
}

impl AuthOutcomes {
    /// Counts one check by its outcome label (`scalelab_auth::outcome_label`).
    pub fn count(&self, label: &str) {
        let reasons = scalelab_auth::Rejection::ALL_REASONS;
        let index = if label == scalelab_auth::ACCEPTED {
            Some(reasons.len())
        } else {
            reasons.iter().position(|reason| *reason == label)
        };
        if let Some(counter) = index.and_then(|i| self.counts.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tokens accepted since start.
    pub fn accepted(&self) -> u64 {
        let accepted = scalelab_auth::Rejection::ALL_REASONS.len();
        self.counts
            .get(accepted)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Tokens rejected since start, per reason, every reason present.
    pub fn rejected(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        scalelab_auth::Rejection::ALL_REASONS
            .iter()
            .zip(&self.counts)
            .map(|(reason, counter)| (*reason, counter.load(Ordering::Relaxed)))
    }
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
    /// Startup fields whose value in the loaded file differs from the running one: they take
    /// effect at the next start.
    pub pending_restart: Vec<crate::config::Pending>,
}

impl Shared {
    /// State for `config`, parsed from `text` (the bytes whose hash `GET /admin/config` shows
    /// and the file watcher compares against).
    pub fn with_source(config_path: &Path, config: Config, text: &str) -> Shared {
        Shared::with_discovered(
            config_path,
            config,
            text,
            crate::discovery::Table::default(),
        )
    }

    /// `with_source` with the DNS sources' first answers (`dns::run::first_round`), so
    /// the first snapshot already has their servers.
    pub fn with_discovered(
        config_path: &Path,
        config: Config,
        text: &str,
        discovered: crate::discovery::Table,
    ) -> Shared {
        let registry = Registry::with_discovered(discovered);
        let remote = config.redis().cloned().and_then(|settings| {
            crate::cache::RemoteTier::new(settings)
                .map(Arc::new)
                .map_err(
                    |error| tracing::error!(%error, "cannot use [redis]; the redis tier stays off"),
                )
                .ok()
        });
        let certificates = Arc::new(CertificateStore::new(config.tls()));
        let snapshot = Arc::new(Snapshot::build(config, 1, &registry));
        let sha256 = journal::sha256_hex(text);
        let (loaded_at, loaded_unix_ms) = journal::now();
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
            dns: None,
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
                    pending_restart: Vec::new(),
                }),
                journal,
                cache: Arc::new(crate::cache::CacheHandle::new(remote)),
                auth_outcomes: AuthOutcomes::default(),
                tasks: TaskCounters::default(),
                certificates,
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
    pub fn reload_totals(&self) -> journal::Totals {
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

    /// Serialises reloads so two triggers never interleave their builds.
    pub(crate) fn reload_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.inner.reload_lock)
    }

    /// The next config generation number.
    pub(crate) fn next_generation(&self) -> u64 {
        self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Server state that outlives snapshots.
    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    /// Makes `loaded` the serving config: one atomic store, so each request sees either the
    /// old snapshot or this one. Servers that left every group lose their state (and so their
    /// admin entries); their in-flight requests still hold it through the old snapshot.
    pub(crate) fn publish(&self, loaded: Loaded) {
        self.inner.snapshot.store(loaded.snapshot.clone());
        let snapshot = &loaded.snapshot;
        self.inner.certificates.publish(snapshot.config.tls());
        self.inner
            .registry
            .retain(|group, addr| snapshot.lists(group, addr));
        *lock(&self.inner.loaded) = loaded;
    }

    /// The certificates the HTTPS listeners serve.
    pub fn certificates(&self) -> &Arc<CertificateStore> {
        &self.inner.certificates
    }

    /// Token checks counted by outcome since start.
    pub fn auth_outcomes(&self) -> &AuthOutcomes {
        &self.inner.auth_outcomes
    }

    /// Restarts of background tasks since start.
    pub fn tasks(&self) -> &TaskCounters {
        &self.inner.tasks
    }
}

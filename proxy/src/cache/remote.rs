//! The shared cache tier on Redis (`kind = "redis"`, the last tier): objects one proxy stored,
//! found by every proxy of the fleet; purges published to all of them; and a short fill lock so
//! that a cold key is fetched from the origin once for the whole fleet.
//!
//! Redis is never on the critical path of an answer: every command has the `[redis]`
//! `command_timeout`, a failure counts as a miss (or "no lock": fetch it yourself), and after a
//! few failures in a row the `Breaker` skips the tier for a back-off. Keys, under
//! `key_prefix` + `cache:{<hash of the primary key>}:` (one Cluster slot per cache key, see
//! `key`): `obj:<storage key>` (the `codec` bytes, expiring with the object's TTL plus its longer
//! stale window), `hits:<storage key>` (fleet-wide hit count), `var:<key>` (its variants' storage
//! keys, for purges), `lock:<storage key>` (the fill lock), `varies:<key>` (the `variants`
//! marker of a key whose responses vary); and under `key_prefix` + `cache:`, `tag:<tag>` (the
//! storage keys carrying a tag).

mod breaker;
mod connection;
mod purge;
pub mod subscriber;
mod usage;
mod variants;

use super::codec::{self, Decoded};
use super::entry::Entry;
use crate::config::RedisSettings;
use breaker::Breaker;
use connection::Connection;
use redis::{AsyncCommands, Script};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What each kind of command did, for `/cache/stats` and the metrics.
#[derive(Debug, Default)]
pub struct RemoteCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub sets: AtomicU64,
    /// Commands that failed or timed out.
    pub errors: AtomicU64,
    /// Commands not sent because the breaker was open.
    pub skipped: AtomicU64,
    pub purged: AtomicU64,
    /// Objects copied from Redis into this proxy's memory.
    pub promotions: AtomicU64,
    pub locks_won: AtomicU64,
    pub locks_waited: AtomicU64,
    /// Sum and count of command latencies, in microseconds.
    pub latency_micros: AtomicU64,
    pub commands: AtomicU64,
    /// The Redis server's used memory at the last sample (see `usage`).
    pub used_bytes: AtomicU64,
    /// Whether that is over the tier's `max_bytes`, so nothing new is stored.
    pub full: AtomicBool,
    /// Objects not stored because the tier was full or they were larger than `max_bytes`.
    pub refused: AtomicU64,
}

/// What a lookup in the shared tier found.
#[derive(Debug)]
pub enum Lookup {
    /// The object, with its hit count across the fleet.
    Found(Box<Decoded>, u64),
    /// No object under the primary key, but the key varies on these request headers.
    Varies(Vec<String>),
    Miss,
}

/// Whether this proxy may fetch a cold key from the origin.
#[derive(Debug, PartialEq, Eq)]
pub enum Lock {
    /// It holds the fleet's fill lock, with this token.
    Won(String),
    /// Another proxy is fetching the key.
    Held,
    /// Redis did not answer: fetch it without a lock.
    Unavailable,
}

struct Scripts {
    gcra: Script,
    lookup: Script,
    store: Script,
    tag: Script,
    purge: Script,
    unlock: Script,
}

/// The connection to the shared tier and what it counts.
pub struct RemoteTier {
    /// Drives the connection. Pingora runs each service on its own runtime; the connection's
    /// driver task lives here, so it outlives none of them and serves all of them.
    runtime: Option<tokio::runtime::Runtime>,
    connection: Connection,
    client: redis::Client,
    settings: RedisSettings,
    /// Tells this proxy's own purges apart from other proxies' on the channel.
    pub(super) instance: String,
    scripts: Scripts,
    breaker: Breaker,
    /// The tier's `max_bytes` (see `usage`), and whether its sampler runs.
    usage_limit: AtomicU64,
    sampling: AtomicBool,
    pub counters: RemoteCounters,
}

impl std::fmt::Debug for RemoteTier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RemoteTier")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

/// Unix time in milliseconds.
pub(super) fn unix_ms() -> u64 {
    (scalelab_common::clock::unix_secs_f64() * 1000.0).max(0.0) as u64
}

impl RemoteTier {
    /// A tier that connects on first use and reconnects by itself, so a proxy starts (and
    /// serves from its memory tiers and the origin) while Redis is down.
    ///
    /// # Errors
    /// A malformed URL (validation already refuses those).
    pub fn new(settings: RedisSettings) -> Result<RemoteTier, redis::RedisError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("redis")
            .enable_all()
            .build()
            .map_err(|error| {
                redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "cannot start the redis runtime",
                    error.to_string(),
                ))
            })?;
        let (connection, client) = {
            let _entered = runtime.enter();
            connection::connect(&settings)?
        };
        Ok(RemoteTier {
            runtime: Some(runtime),
            connection,
            client,
            instance: format!("{}-{}", std::process::id(), unix_ms()),
            settings,
            scripts: Scripts {
                gcra: Script::new(include_str!("remote/gcra.lua")),
                lookup: Script::new(include_str!("remote/lookup.lua")),
                store: Script::new(include_str!("remote/store.lua")),
                tag: Script::new(include_str!("remote/tag.lua")),
                purge: Script::new(include_str!("remote/purge.lua")),
                unlock: Script::new(include_str!("remote/unlock.lua")),
            },
            breaker: Breaker::default(),
            usage_limit: AtomicU64::new(u64::MAX),
            sampling: AtomicBool::new(false),
            counters: RemoteCounters::default(),
        })
    }

    /// The key of one of a cache key's records. Every record of one primary key (its object,
    /// variants, hit counts, fill locks and variants marker) carries the same hash tag, a hash
    /// of the primary key, so a Redis Cluster keeps them in one slot and a script may touch them
    /// together; the brace also tells this layout from the one before it, which had none.
    fn key(&self, kind: &str, name: &str) -> String {
        let primary = name.split(super::VARIANT_SEPARATOR).next().unwrap_or(name);
        let mut hasher = fnv::FnvHasher::default();
        std::hash::Hasher::write(&mut hasher, primary.as_bytes());
        let slot = std::hash::Hasher::finish(&hasher);
        format!(
            "{}cache:{{{slot:016x}}}:{kind}:{name}",
            self.settings.key_prefix
        )
    }

    /// The set of storage keys carrying `tag` (one per tag, in whatever slot it falls).
    fn tag_key(&self, tag: &str) -> String {
        format!("{}cache:tag:{tag}", self.settings.key_prefix)
    }

    /// The channel purges are published on.
    pub(super) fn channel(&self) -> String {
        format!("{}cache:invalidations", self.settings.key_prefix)
    }

    pub(super) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether the breaker is open (Redis failing).
    pub fn is_failing(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs one command under the breaker and the command timeout; `None` when it was skipped,
    /// failed or timed out (counted, and fed to the breaker).
    async fn run<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allows() {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(
            self.settings.command_timeout,
            command(self.connection.clone()),
        )
        .await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters
            .latency_micros
            .fetch_add(micros, Ordering::Relaxed);
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(Ok(value)) => {
                self.breaker.success();
                Some(value)
            }
            Ok(Err(error)) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure(&error.to_string());
                None
            }
            Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure("command timed out");
                None
            }
        }
    }

    /// The object stored under `storage_key`, with the fleet's hit count for it. A proxy that
    /// does not know whether the key varies (`storage_key` is the primary key) passes
    /// `ask_variants`, and learns from the same round trip which headers the key varies on.
    pub async fn get(&self, storage_key: &str, ask_variants: bool) -> Lookup {
        let object = self.key("obj", storage_key);
        let hits = self.key("hits", storage_key);
        let marker = ask_variants.then(|| self.key("varies", storage_key));
        let reply: Option<(Vec<u8>, u64, Vec<u8>)> = self
            .run(|mut connection| async move {
                let mut invocation = self.scripts.lookup.key(object);
                invocation.key(hits);
                if let Some(marker) = marker {
                    invocation.key(marker);
                }
                invocation.invoke_async(&mut connection).await
            })
            .await;
        let Some((bytes, hits, marker)) = reply else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss;
        };
        if bytes.is_empty() {
            // A key that varies is not a miss yet: the caller asks again for its variant.
            return match variants::decode(&marker) {
                Some(names) => Lookup::Varies(names),
                None => {
                    self.counters.misses.fetch_add(1, Ordering::Relaxed);
                    Lookup::Miss
                }
            };
        }
        match codec::decode(&bytes, unix_ms()) {
            Ok(decoded) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Found(Box::new(decoded), hits)
            }
            Err(error) => {
                // Written by a newer format or damaged: a miss, and the next store replaces it.
                tracing::warn!(key = storage_key, %error, "unreadable object in the redis tier");
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
        }
    }

    /// Stores `entry` for its TTL plus its longer stale window, and lets go of the fill lock
    /// `token` (if this proxy won it).
    pub async fn put(&self, entry: &Entry, lifetime: Duration, token: Option<&str>) {
        let bytes = codec::encode(entry, unix_ms().saturating_sub(millis(entry.age())), false);
        let lifetime_ms = millis(lifetime).max(1);
        let mut invocation = self.scripts.store.prepare_invoke();
        invocation
            .key(self.key("obj", &entry.key))
            .key(self.key("hits", &entry.key))
            .key(self.key("var", entry.primary_key()))
            .key(self.key("lock", &entry.key))
            .key(self.key("varies", entry.primary_key()));
        invocation
            .arg(bytes)
            .arg(lifetime_ms)
            .arg(&*entry.key)
            .arg(token.unwrap_or(""))
            .arg(if entry.vary.is_empty() {
                Vec::new()
            } else {
                let names: Vec<String> = entry.vary.iter().map(|(name, _)| name.clone()).collect();
                variants::encode(&names)
            });
        let stored: Option<u8> = self
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await;
        if stored.is_none() {
            return;
        }
        self.counters.sets.fetch_add(1, Ordering::Relaxed);
        // Each tag's set is its own key (in a cluster, in its own slot), so each is one more
        // command, sent together.
        let tags = entry.tags.iter().map(|tag| {
            let key = self.tag_key(tag);
            self.run(move |mut connection| async move {
                let mut invocation = self.scripts.tag.key(key);
                invocation.arg(&*entry.key).arg(lifetime_ms);
                invocation.invoke_async::<u8>(&mut connection).await
            })
        });
        futures::future::join_all(tags).await;
    }

    /// Tries to win the fleet's fill lock for `storage_key` for at most `hold`.
    pub async fn lock(&self, storage_key: &str, hold: Duration) -> Lock {
        let token = format!("{}-{}", self.instance, fastrand::u64(..));
        let key = self.key("lock", storage_key);
        let won: Option<Option<String>> = self
            .run(|mut connection| {
                let token = token.clone();
                async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(token)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(hold).max(1))
                        .query_async(&mut connection)
                        .await
                }
            })
            .await;
        match won {
            Some(Some(_)) => {
                self.counters.locks_won.fetch_add(1, Ordering::Relaxed);
                Lock::Won(token)
            }
            Some(None) => {
                self.counters.locks_waited.fetch_add(1, Ordering::Relaxed);
                Lock::Held
            }
            None => Lock::Unavailable,
        }
    }

    /// Lets go of a fill lock this proxy won and did not store under (the fetch failed or
    /// was not cacheable), so the fleet's waiters go to the origin at once.
    pub async fn unlock(&self, storage_key: &str, token: &str) {
        let key = self.key("lock", storage_key);
        let _: Option<u8> = self
            .run(|mut connection| async move {
                self.scripts
                    .unlock
                    .key(key)
                    .arg(token)
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
    }

    /// Decides one request of a rate limit shared by the fleet (the bucket `bucket`, under the
    /// key prefix): `Some((allowed, remaining or retry-after, reset))` in microseconds, or
    /// `None` when Redis did not answer.
    pub async fn rate_limit(
        &self,
        bucket: &[u8],
        interval_us: u64,
        burst: u32,
    ) -> Option<(bool, u64, u64)> {
        let mut key = self.settings.key_prefix.as_bytes().to_vec();
        key.extend_from_slice(bucket);
        let reply: Option<Vec<u64>> = self
            .run(|mut connection| async move {
                self.scripts
                    .gcra
                    .key(key)
                    .arg(interval_us.max(1))
                    .arg(burst)
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
        match reply?.as_slice() {
            [1, remaining, reset] => Some((true, *remaining, *reset)),
            [0, retry_after] => Some((false, *retry_after, 0)),
            _ => None,
        }
    }

    /// Whether the fill lock for `storage_key` is still held (by anyone).
    pub async fn locked(&self, storage_key: &str) -> bool {
        let key = self.key("lock", storage_key);
        let exists: Option<bool> = self
            .run(|mut connection| async move { connection.exists(key).await })
            .await;
        exists.unwrap_or(false)
    }
}

impl Drop for RemoteTier {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; this may run on one of Pingora's.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

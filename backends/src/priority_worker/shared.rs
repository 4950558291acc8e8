//! The shared task queue on Redis: several `scalelab-worker` processes take tasks from one queue.
//!
//! [`RedisTasks`] is both the [`TaskStore`] (records, stats) and the [`Backlog`] (which task runs next). Every step
//! that changes more than one key is one Lua script (`shared/*.lua`), so Redis runs it atomically and two workers
//! never take the same task:
//! - `task:<id>`: a hash with the record's fields; `seq`: the id counter;
//! - `lane:<priority>`: a list of waiting ids, FIFO;
//! - `running`: a sorted set of claimed ids scored by their claim's deadline (unix ms). A worker renews its claims
//!   while it runs them; a claim past its deadline (its worker died) goes back to the front of its lane at the next
//!   claim by any worker, and `attempts` counts the starts;
//! - `stats`: counters; `waits:<priority>`: the latest 10,000 waits per level.
//!
//! Redis Cluster needs all these keys in one slot: give the prefix a hash tag, e.g. `scalelab:{tasks}:`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::backlog::{Backlog, Claim};
use super::queue::Priority;
use super::store::{Status, StoreError, StoreStats, TaskRecord, TaskSpec, TaskStore};

impl From<redis::RedisError> for StoreError {
    fn from(error: redis::RedisError) -> Self {
        Self(format!("redis: {error}"))
    }
}

/// Where the shared queue lives and how long its claims last.
#[derive(Debug, Clone)]
pub struct SharedSettings {
    /// `redis://host:port/db` (or `rediss://` for TLS).
    pub url: String,
    /// A PEM file of the CA that signed a `rediss://` server's certificate (else the system's).
    pub ca: Option<std::path::PathBuf>,
    /// Prepended to every key, so several labs can share one Redis.
    pub key_prefix: String,
    /// Connecting gives up after this long.
    pub connect_timeout: Duration,
    /// A command gives up after this long.
    pub command_timeout: Duration,
    /// A claim not renewed for this long is given to another worker.
    pub visibility_timeout: Duration,
    /// A task waiting this long overtakes fresh tasks of any level.
    pub aging: Duration,
    /// How often an idle worker looks for tasks other processes queued.
    pub poll_interval: Duration,
}

/// The task store and backlog on Redis.
#[derive(Clone)]
pub struct RedisTasks {
    connection: ConnectionManager,
    settings: SharedSettings,
    /// The aging bound in ms; `PUT /admin/workers` changes it live (for this worker's claims).
    aging_ms: Arc<AtomicU64>,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisTasks {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisTasks")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Scripts {
    insert: Script,
    claim: Script,
    renew: Script,
    finish: Script,
    stats: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            insert: Script::new(include_str!("shared/insert.lua")),
            claim: Script::new(include_str!("shared/claim.lua")),
            renew: Script::new(include_str!("shared/renew.lua")),
            finish: Script::new(include_str!("shared/finish.lua")),
            stats: Script::new(include_str!("shared/stats.lua")),
        }
    }
}

/// The fields a claim returns: id, priority, queued_at, task_type, duration, fail, attempt.
type ClaimReply = Option<(String, String, String, String, String, String, u32)>;

/// The stats script's reply; see `shared/stats.lua`.
type StatsReply = (
    String,
    String,
    String,
    String,
    Vec<u64>,
    Vec<u64>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// The client for `settings`' URL: over TLS checked against `ca` when one is given.
fn client(settings: &SharedSettings) -> Result<redis::Client, StoreError> {
    // The ring provider, as in the proxy; an error only says one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(ca) = &settings.ca else {
        return Ok(redis::Client::open(settings.url.as_str())?);
    };
    let root_cert = std::fs::read(ca)
        .map_err(|error| StoreError(format!("redis: cannot read {}: {error}", ca.display())))?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    };
    Ok(redis::Client::build_with_tls(
        settings.url.as_str(),
        certificates,
    )?)
}

impl RedisTasks {
    /// Connects (within `connect_timeout`) and checks the server answers.
    ///
    /// # Errors
    /// A malformed URL, or Redis cannot be reached.
    pub async fn connect(settings: SharedSettings) -> Result<Self, StoreError> {
        let client = client(&settings)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(2);
        let mut connection = tokio::time::timeout(
            settings.connect_timeout,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| {
            StoreError(format!(
                "redis: no connection to {} within {:?}",
                settings.url, settings.connect_timeout
            ))
        })??;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        let cluster: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut connection)
            .await?;
        if cluster.contains("cluster_enabled:1") {
            // Every step of the queue is one script over several keys (lanes, claims, task
            // hashes), which a cluster would need in one slot, that is on one node anyway.
            return Err(StoreError(format!(
                "redis: {} is a Redis Cluster node; the shared task queue needs one Redis \
                 server (a primary, or Sentinel's), not a cluster",
                settings.url
            )));
        }
        Ok(Self {
            connection,
            aging_ms: Arc::new(AtomicU64::new(
                u64::try_from(settings.aging.as_millis()).unwrap_or(u64::MAX),
            )),
            settings,
            scripts: Scripts::load(),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.key_prefix)
    }

    fn deadline_ms(&self, now: f64) -> u64 {
        let timeout =
            u64::try_from(self.settings.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        unix_ms(now).saturating_add(timeout)
    }
}

fn unix_ms(seconds: f64) -> u64 {
    // Unix time in ms fits f64's 53-bit mantissa exactly for millions of years.
    (seconds * 1000.0).max(0.0) as u64
}

fn parse_f64(field: &str, text: &str) -> Result<f64, StoreError> {
    text.parse()
        .map_err(|_| StoreError(format!("redis: field {field} is not a number: {text:?}")))
}

fn parse_priority(text: &str) -> Result<Priority, StoreError> {
    text.parse().map_err(StoreError)
}

/// A task hash read back into a record.
fn record_from(task_id: &str, fields: &HashMap<String, String>) -> Result<TaskRecord, StoreError> {
    let field = |name: &str| {
        fields
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| StoreError(format!("redis: task {task_id} has no {name}")))
    };
    let optional = |name: &str| -> Result<Option<f64>, StoreError> {
        fields
            .get(name)
            .map(|text| parse_f64(name, text))
            .transpose()
    };
    Ok(TaskRecord {
        task_id: task_id.to_owned(),
        seq: field("seq")?
            .parse()
            .map_err(|_| StoreError(format!("redis: task {task_id} has a bad seq")))?,
        priority: parse_priority(field("priority")?)?,
        spec: TaskSpec {
            task_type: field("task_type")?.to_owned(),
            duration: parse_f64("duration", field("duration")?)?,
            fail: field("fail")? == "1",
        },
        status: Status::parse(field("status")?)?,
        queued_at: parse_f64("queued_at", field("queued_at")?)?,
        started_at: optional("started_at")?,
        finished_at: optional("finished_at")?,
        error: fields.get("error").cloned(),
        attempts: field("attempts")?
            .parse()
            .map_err(|_| StoreError(format!("redis: task {task_id} has bad attempts")))?,
    })
}

fn sorted_waits(texts: &[String]) -> Result<Vec<f64>, StoreError> {
    let mut waits = texts
        .iter()
        .map(|text| parse_f64("wait", text))
        .collect::<Result<Vec<_>, _>>()?;
    waits.sort_by(f64::total_cmp);
    Ok(waits)
}

#[async_trait]
impl TaskStore for RedisTasks {
    async fn insert(
        &self,
        priority: Priority,
        spec: TaskSpec,
        queued_at: f64,
    ) -> Result<TaskRecord, StoreError> {
        let mut connection = self.connection.clone();
        let (seq, _waiting): (u64, u64) = self
            .scripts
            .insert
            .arg(&self.settings.key_prefix)
            .arg(priority.as_str())
            .arg(&spec.task_type)
            .arg(spec.duration.to_string())
            .arg(if spec.fail { "1" } else { "0" })
            .arg(queued_at.to_string())
            .invoke_async(&mut connection)
            .await?;
        Ok(TaskRecord::accepted(seq, priority, spec, queued_at))
    }

    async fn mark_running(&self, task_id: &str, started_at: f64) -> Result<(), StoreError> {
        // The claim script records starts; this is for callers outside the backlog.
        let mut connection = self.connection.clone();
        let key = self.key(&format!("task:{task_id}"));
        let () = connection
            .hset_multiple(
                key,
                &[
                    ("status", "running".to_owned()),
                    ("started_at", started_at.to_string()),
                ],
            )
            .await?;
        Ok(())
    }

    async fn mark_finished(
        &self,
        task_id: &str,
        finished_at: f64,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let key = self.key(&format!("task:{task_id}"));
        let status = if error.is_some() {
            "failed"
        } else {
            "completed"
        };
        let mut fields = vec![
            ("status", status.to_owned()),
            ("finished_at", finished_at.to_string()),
        ];
        if let Some(error) = error {
            fields.push(("error", error));
        }
        let () = connection.hset_multiple(key, &fields).await?;
        Ok(())
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let mut connection = self.connection.clone();
        let fields: HashMap<String, String> = connection
            .hgetall(self.key(&format!("task:{task_id}")))
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        record_from(task_id, &fields).map(Some)
    }

    async fn recover(&self) -> Result<Vec<TaskRecord>, StoreError> {
        // Nothing to load into memory: waiting tasks stay in Redis, and the claim script gives expired claims
        // back to their lanes.
        Ok(Vec::new())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut connection = self.connection.clone();
        let (total, completed, failed, run_seconds, queued, running, high, normal, low): StatsReply =
            self.scripts
                .stats
                .arg(&self.settings.key_prefix)
                .invoke_async(&mut connection)
                .await?;
        let completed: u64 = completed.parse().unwrap_or(0);
        let failed: u64 = failed.parse().unwrap_or(0);
        let finished = completed + failed;
        let run_seconds = parse_f64("run_seconds", &run_seconds)?;
        let per_level = |counts: &[u64]| -> BTreeMap<Priority, u64> {
            Priority::ALL
                .into_iter()
                .zip(counts.iter().copied())
                .collect()
        };
        Ok(StoreStats {
            total: total.parse().unwrap_or(0),
            completed,
            failed,
            avg_processing_time: if finished == 0 {
                0.0
            } else {
                run_seconds / finished as f64
            },
            queued: per_level(&queued),
            running: per_level(&running),
            waits: Priority::ALL
                .into_iter()
                .zip([high, normal, low])
                .map(|(priority, texts)| Ok((priority, sorted_waits(&texts)?)))
                .collect::<Result<_, StoreError>>()?,
        })
    }
}

#[async_trait]
impl Backlog for RedisTasks {
    async fn push(&self, record: &TaskRecord) -> Result<usize, StoreError> {
        // `insert` already queued the task atomically with storing it; report its lane's length.
        let mut connection = self.connection.clone();
        let waiting: usize = connection
            .llen(self.key(&format!("lane:{}", record.priority.as_str())))
            .await?;
        Ok(waiting)
    }

    async fn claim(&self, now: f64) -> Result<Option<Claim>, StoreError> {
        let mut connection = self.connection.clone();
        let reply: ClaimReply = self
            .scripts
            .claim
            .arg(&self.settings.key_prefix)
            .arg(now.to_string())
            .arg(self.aging().as_secs_f64().to_string())
            .arg(unix_ms(now))
            .arg(u64::try_from(self.settings.visibility_timeout.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut connection)
            .await?;
        let Some((task_id, priority, queued_at, task_type, duration, fail, attempt)) = reply else {
            return Ok(None);
        };
        Ok(Some(Claim {
            priority: parse_priority(&priority)?,
            enqueued_at: parse_f64("queued_at", &queued_at)?,
            spec: TaskSpec {
                task_type,
                duration: parse_f64("duration", &duration)?,
                fail: fail == "1",
            },
            attempt,
            task_id,
        }))
    }

    async fn renew(&self, claim: &Claim) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let renewed: u8 = self
            .scripts
            .renew
            .arg(&self.settings.key_prefix)
            .arg(&claim.task_id)
            .arg(claim.attempt)
            .arg(self.deadline_ms(super::unix_now()))
            .invoke_async(&mut connection)
            .await?;
        Ok(renewed == 1)
    }

    async fn finish(
        &self,
        claim: &Claim,
        finished_at: f64,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let failed = if error.is_some() { "1" } else { "0" };
        let finished: u8 = self
            .scripts
            .finish
            .arg(&self.settings.key_prefix)
            .arg(&claim.task_id)
            .arg(claim.attempt)
            .arg(finished_at.to_string())
            .arg(failed)
            .arg(error.unwrap_or_default())
            .invoke_async(&mut connection)
            .await?;
        Ok(finished == 1)
    }

    async fn depths(&self) -> Result<[usize; 3], StoreError> {
        let mut connection = self.connection.clone();
        let mut pipe = redis::pipe();
        for priority in Priority::ALL {
            pipe.llen(self.key(&format!("lane:{}", priority.as_str())));
        }
        let (high, normal, low): (usize, usize, usize) = pipe.query_async(&mut connection).await?;
        Ok([high, normal, low])
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(self.settings.poll_interval)
    }

    fn renew_interval(&self) -> Option<Duration> {
        // Three renewals per timeout: one lost or late renewal does not cost the claim.
        Some(self.settings.visibility_timeout / 3)
    }

    fn set_aging(&self, aging: Duration) {
        let millis = u64::try_from(aging.as_millis()).unwrap_or(u64::MAX);
        self.aging_ms.store(millis, Ordering::Relaxed);
    }

    fn aging(&self) -> Duration {
        Duration::from_millis(self.aging_ms.load(Ordering::Relaxed))
    }
}

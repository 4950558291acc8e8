//! Durable task storage behind the [`TaskStore`] trait, with the SQLite implementation the worker uses.
//!
//! Invariant: a task is in the store before its 202 is sent, and a task that is queued or was running when the process
//! died is returned by [`TaskStore::recover`], so every accepted task runs at least once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::queue::Priority;

/// A storage failure; the detail is logged, clients get a generic 500.
#[derive(Debug, thiserror::Error)]
#[error("task store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self(error.to_string())
    }
}

/// What to run: the seed's task fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSpec {
    /// `cpu_intensive`, `io_intensive` or anything else.
    pub task_type: String,
    /// Seconds, in (0, 300].
    pub duration: f64,
    /// Fail on purpose.
    pub fail: bool,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a worker.
    Queued,
    /// A worker is running it (or was, when the process died).
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
}

impl Status {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError(format!("unknown status {other:?}"))),
        }
    }
}

/// One stored task, as `GET /tasks/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRecord {
    /// `task-<seq>`.
    pub task_id: String,
    /// Global enqueue order.
    #[serde(skip)]
    pub seq: u64,
    /// The task's level.
    pub priority: Priority,
    /// What to run.
    #[serde(flatten)]
    pub spec: TaskSpec,
    /// Where it is.
    pub status: Status,
    /// Unix seconds when accepted.
    pub queued_at: f64,
    /// Unix seconds of the latest start.
    pub started_at: Option<f64>,
    /// Unix seconds when it finished.
    pub finished_at: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// How many times a worker started it (more than 1 after a crash).
    pub attempts: u32,
}

impl TaskRecord {
    /// A task just accepted: queued, never started.
    #[must_use]
    pub fn accepted(seq: u64, priority: Priority, spec: TaskSpec, queued_at: f64) -> Self {
        Self {
            task_id: task_id(seq),
            seq,
            priority,
            spec,
            status: Status::Queued,
            queued_at,
            started_at: None,
            finished_at: None,
            error: None,
            attempts: 0,
        }
    }
}

/// Aggregates for `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Every task ever accepted.
    pub total: u64,
    /// Finished successfully.
    pub completed: u64,
    /// Finished with an error.
    pub failed: u64,
    /// Mean run time in seconds over every finished task.
    pub avg_processing_time: f64,
    /// Waiting tasks per level.
    pub queued: BTreeMap<Priority, u64>,
    /// Running tasks per level.
    pub running: BTreeMap<Priority, u64>,
    /// Sorted waits (start minus enqueue, seconds) of every started task, per level.
    pub waits: BTreeMap<Priority, Vec<f64>>,
}

/// Durable storage for the task queue. SQLite implements it today; the trait keeps room for a Redis backend.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Stores a new queued task and returns it with its id and seq. Must be durable when it returns.
    async fn insert(
        &self,
        priority: Priority,
        spec: TaskSpec,
        queued_at: f64,
    ) -> Result<TaskRecord, StoreError>;
    /// Records that a worker started the task.
    async fn mark_running(&self, task_id: &str, started_at: f64) -> Result<(), StoreError>;
    /// Records the outcome; `error` is `Some` exactly for failures.
    async fn mark_finished(
        &self,
        task_id: &str,
        finished_at: f64,
        error: Option<String>,
    ) -> Result<(), StoreError>;
    /// The task, if the id is known.
    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// Puts interrupted (running) tasks back to queued and returns every queued task in seq order.
    async fn recover(&self) -> Result<Vec<TaskRecord>, StoreError>;
    /// Aggregates for the stats endpoint.
    async fn stats(&self) -> Result<StoreStats, StoreError>;
}

impl std::fmt::Debug for dyn TaskStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TaskStore")
    }
}

/// The file name of the queue inside the data dir.
pub const FILE_NAME: &str = "worker.sqlite3";

/// [`TaskStore`] on one SQLite file with `synchronous = FULL`, so an accepted task survives even a machine crash.
#[derive(Debug, Clone)]
pub struct SqliteTaskStore {
    connection: Arc<Mutex<Connection>>,
}

const COLUMNS: &str =
    "seq, priority, task_type, duration, fail, status, queued_at, started_at, finished_at, error, attempts";

impl SqliteTaskStore {
    /// Opens or creates `<data_dir>/worker.sqlite3`.
    ///
    /// # Errors
    /// The directory cannot be created or SQLite fails.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|error| StoreError(format!("creating {}: {error}", data_dir.display())))?;
        let connection = Connection::open(data_dir.join(FILE_NAME))?;
        connection.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS tasks (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 priority TEXT NOT NULL,
                 task_type TEXT NOT NULL,
                 duration REAL NOT NULL,
                 fail INTEGER NOT NULL,
                 status TEXT NOT NULL,
                 queued_at REAL NOT NULL,
                 started_at REAL,
                 finished_at REAL,
                 error TEXT,
                 attempts INTEGER NOT NULL DEFAULT 0
             );
             CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status);",
        )?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs a closure on the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // SQLite keeps its own state consistent, so a panic elsewhere while holding the lock is no reason to stop.
            let mut guard = scalelab_common::sync::lock(&connection);
            call(&mut guard)
        })
        .await
        .map_err(|error| StoreError(error.to_string()))?
    }
}

/// Turns `task-<seq>` back into the seq; anything else is an unknown id.
fn parse_id(task_id: &str) -> Option<i64> {
    task_id
        .strip_prefix("task-")?
        .parse()
        .ok()
        .filter(|seq| *seq > 0)
}

fn task_id(seq: u64) -> String {
    format!("task-{seq}")
}

/// A row as SQLite returns it, before the text columns are parsed.
type RawRecord = (
    i64,
    String,
    TaskSpec,
    String,
    [Option<f64>; 3],
    Option<String>,
    u32,
);

fn read_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        TaskSpec {
            task_type: row.get(2)?,
            duration: row.get(3)?,
            fail: row.get(4)?,
        },
        row.get(5)?,
        [Some(row.get(6)?), row.get(7)?, row.get(8)?],
        row.get(9)?,
        row.get(10)?,
    ))
}

fn to_record(raw: RawRecord) -> Result<TaskRecord, StoreError> {
    let (seq, priority, spec, status, [queued_at, started_at, finished_at], error, attempts) = raw;
    let seq = u64::try_from(seq).map_err(|error| StoreError(error.to_string()))?;
    Ok(TaskRecord {
        task_id: task_id(seq),
        seq,
        priority: priority.parse().map_err(StoreError)?,
        spec,
        status: Status::parse(&status)?,
        queued_at: queued_at.unwrap_or_default(),
        started_at,
        finished_at,
        error,
        attempts,
    })
}

#[async_trait]
impl TaskStore for SqliteTaskStore {
    async fn insert(
        &self,
        priority: Priority,
        spec: TaskSpec,
        queued_at: f64,
    ) -> Result<TaskRecord, StoreError> {
        self.with(move |connection| {
            connection.execute(
                "INSERT INTO tasks (priority, task_type, duration, fail, status, queued_at)
                 VALUES (?1, ?2, ?3, ?4, 'queued', ?5)",
                params![
                    priority.as_str(),
                    spec.task_type,
                    spec.duration,
                    spec.fail,
                    queued_at
                ],
            )?;
            let seq = u64::try_from(connection.last_insert_rowid())
                .map_err(|error| StoreError(error.to_string()))?;
            Ok(TaskRecord::accepted(seq, priority, spec, queued_at))
        })
        .await
    }

    async fn mark_running(&self, task_id: &str, started_at: f64) -> Result<(), StoreError> {
        let seq = parse_id(task_id).ok_or_else(|| StoreError(format!("bad task id {task_id}")))?;
        self.with(move |connection| {
            connection.execute(
                "UPDATE tasks SET status = 'running', started_at = ?2, attempts = attempts + 1 WHERE seq = ?1",
                params![seq, started_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_finished(
        &self,
        task_id: &str,
        finished_at: f64,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let seq = parse_id(task_id).ok_or_else(|| StoreError(format!("bad task id {task_id}")))?;
        let status = if error.is_some() {
            Status::Failed
        } else {
            Status::Completed
        };
        self.with(move |connection| {
            connection.execute(
                "UPDATE tasks SET status = ?2, finished_at = ?3, error = ?4 WHERE seq = ?1",
                params![seq, status.as_str(), finished_at, error],
            )?;
            Ok(())
        })
        .await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let Some(seq) = parse_id(task_id) else {
            return Ok(None);
        };
        self.with(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {COLUMNS} FROM tasks WHERE seq = ?1"),
                    [seq],
                    read_record,
                )
                .optional()?
                .map(to_record)
                .transpose()
        })
        .await
    }

    async fn recover(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.with(|connection| {
            let transaction = connection.transaction()?;
            let interrupted = transaction.execute(
                "UPDATE tasks SET status = 'queued' WHERE status = 'running'",
                [],
            )?;
            let records = {
                let mut select = transaction.prepare(&format!(
                    "SELECT {COLUMNS} FROM tasks WHERE status = 'queued' ORDER BY seq"
                ))?;
                let rows = select.query_map([], read_record)?;
                rows.map(|row| to_record(row?))
                    .collect::<Result<Vec<_>, _>>()?
            };
            transaction.commit()?;
            if interrupted > 0 || !records.is_empty() {
                tracing::info!(
                    interrupted,
                    queued = records.len(),
                    "recovered unfinished tasks"
                );
            }
            Ok(records)
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.with(|connection| {
            let mut stats = StoreStats::default();
            let mut counts = connection.prepare("SELECT priority, status, COUNT(*) FROM tasks GROUP BY priority, status")?;
            let rows = counts.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, u64>(2)?)))?;
            for row in rows {
                let (priority, status, count) = row?;
                let priority: Priority = priority.parse().map_err(StoreError)?;
                stats.total += count;
                match Status::parse(&status)? {
                    Status::Queued => *stats.queued.entry(priority).or_default() += count,
                    Status::Running => *stats.running.entry(priority).or_default() += count,
                    Status::Completed => stats.completed += count,
                    Status::Failed => stats.failed += count,
                }
            }
            stats.avg_processing_time = connection.query_row(
                "SELECT COALESCE(AVG(finished_at - started_at), 0.0) FROM tasks WHERE finished_at IS NOT NULL",
                [],
                |row| row.get(0),
            )?;
            let mut waits = connection.prepare(
                "SELECT priority, started_at - queued_at AS wait FROM tasks WHERE started_at IS NOT NULL ORDER BY wait",
            )?;
            let rows = waits.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, f64>(1)?)))?;
            for row in rows {
                let (priority, wait) = row?;
                let priority: Priority = priority.parse().map_err(StoreError)?;
                stats.waits.entry(priority).or_default().push(wait);
            }
            Ok(stats)
        })
        .await
    }
}

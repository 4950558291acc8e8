//! The [`Backlog`] seam: the tasks waiting to run, which one runs next, and the record of a run's start and end.
//!
//! The pool only talks to a `Backlog`. [`LocalBacklog`] keeps the waiting tasks in this process's memory (the
//! [`Queue`] policy) and records starts and ends in the [`TaskStore`]; a shared backlog (Redis, see `shared`) keeps
//! them where several worker processes can claim from one queue. Either way the pick follows `queue::next_lane`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use scalelab_common::sync::lock;

use super::queue::{Entry, Priority, Queue};
use super::store::{StoreError, TaskRecord, TaskSpec, TaskStore};

/// A task a worker has taken: what to run and the attempt it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// `task-<seq>`.
    pub task_id: String,
    /// The task's level.
    pub priority: Priority,
    /// Unix seconds when the task was accepted.
    pub enqueued_at: f64,
    /// What to run.
    pub spec: TaskSpec,
    /// Which start of the task this is (1 on the first run). A shared backlog accepts the outcome only from the
    /// latest attempt, so a task reclaimed from a dead worker finishes once.
    pub attempt: u32,
}

/// Where waiting tasks live and how a worker takes one.
#[async_trait]
pub trait Backlog: Send + Sync + 'static {
    /// Makes a stored task available to the workers; returns how many tasks now wait at its level.
    async fn push(&self, record: &TaskRecord) -> Result<usize, StoreError>;
    /// Takes the task to run next at `now` (unix seconds) and records its start, or `None` when nothing waits.
    async fn claim(&self, now: f64) -> Result<Option<Claim>, StoreError>;
    /// Tells the backlog the claim's worker is still alive; `false` when the claim was lost (another worker
    /// reclaimed the task after the visibility timeout).
    async fn renew(&self, claim: &Claim) -> Result<bool, StoreError>;
    /// Records the outcome; `false` when the claim was lost and the outcome was dropped.
    async fn finish(
        &self,
        claim: &Claim,
        finished_at: f64,
        error: Option<String>,
    ) -> Result<bool, StoreError>;
    /// Waiting tasks per level, in `Priority::ALL` order.
    async fn depths(&self) -> Result<[usize; 3], StoreError>;
    /// How often an idle worker looks again without being woken: `None` when every new task wakes a worker
    /// (one process), `Some` when other processes add tasks this one hears nothing about.
    fn poll_interval(&self) -> Option<Duration>;
    /// How often a running task renews its claim, or `None` when claims do not expire.
    fn renew_interval(&self) -> Option<Duration>;
    /// Changes the aging bound; waiting tasks are judged by the new bound from the next claim on.
    fn set_aging(&self, aging: Duration);
    /// The aging bound.
    fn aging(&self) -> Duration;
}

/// What a local queue entry carries.
#[derive(Debug, Clone)]
struct Work {
    task_id: String,
    spec: TaskSpec,
}

/// The single-process backlog: an in-memory [`Queue`] in front of a durable [`TaskStore`].
pub struct LocalBacklog {
    queue: Mutex<Queue<Work>>,
    store: Arc<dyn TaskStore>,
}

impl std::fmt::Debug for LocalBacklog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LocalBacklog")
    }
}

impl LocalBacklog {
    /// An empty backlog; a task waiting `aging` or longer overtakes fresh tasks of any level.
    #[must_use]
    pub fn new(store: Arc<dyn TaskStore>, aging: Duration) -> Self {
        Self {
            queue: Mutex::new(Queue::new(aging)),
            store,
        }
    }
}

#[async_trait]
impl Backlog for LocalBacklog {
    async fn push(&self, record: &TaskRecord) -> Result<usize, StoreError> {
        let entry = Entry {
            seq: record.seq,
            priority: record.priority,
            enqueued_at: record.queued_at,
            item: Work {
                task_id: record.task_id.clone(),
                spec: record.spec.clone(),
            },
        };
        Ok(lock(&self.queue).push(entry))
    }

    async fn claim(&self, now: f64) -> Result<Option<Claim>, StoreError> {
        let Some(entry) = lock(&self.queue).pop(now) else {
            return Ok(None);
        };
        let claim = Claim {
            task_id: entry.item.task_id,
            priority: entry.priority,
            enqueued_at: entry.enqueued_at,
            spec: entry.item.spec,
            // One process runs each task once per start; the store counts attempts across restarts.
            attempt: 1,
        };
        // If the start cannot be recorded the task still runs: at-least-once allows a second run after a crash.
        if let Err(error) = self.store.mark_running(&claim.task_id, now).await {
            tracing::error!(task_id = claim.task_id, %error, "could not record the task start");
        }
        Ok(Some(claim))
    }

    async fn renew(&self, _claim: &Claim) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn finish(
        &self,
        claim: &Claim,
        finished_at: f64,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        self.store
            .mark_finished(&claim.task_id, finished_at, error)
            .await?;
        Ok(true)
    }

    async fn depths(&self) -> Result<[usize; 3], StoreError> {
        let queue = lock(&self.queue);
        Ok(Priority::ALL.map(|priority| queue.len(priority)))
    }

    fn poll_interval(&self) -> Option<Duration> {
        None
    }

    fn renew_interval(&self) -> Option<Duration> {
        None
    }

    fn set_aging(&self, aging: Duration) {
        lock(&self.queue).set_aging(aging);
    }

    fn aging(&self) -> Duration {
        lock(&self.queue).aging()
    }
}

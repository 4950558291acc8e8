//! The worker pool: N tokio tasks that claim from the [`Backlog`], run tasks, and record outcomes in the
//! backlog and the metrics. The pool size changes live; a shrinking pool lets running tasks finish.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use tokio::sync::Notify;

use super::backlog::{Backlog, Claim};
use super::queue::Priority;
use super::store::{StoreError, TaskRecord, TaskSpec};
use super::unix_now;
use crate::microservice::burn_cpu;

/// Buckets for queue waits and run times in seconds; tasks last up to 300 s x 1.5.
const TASK_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The worker's own metrics, all prefixed `scalelab_worker_`: `_total` counters and `_seconds` histograms.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    queue_depth: IntGaugeVec,
    /// `scalelab_worker_tasks_total{priority,outcome}`; the pool counts `completed` and `failed`, the HTTP layer
    /// counts `rejected` under priority `none`.
    pub tasks: IntCounterVec,
    wait: HistogramVec,
    run: HistogramVec,
    workers: IntGauge,
}

/// The outcomes of a task that ran, as counted in `scalelab_worker_tasks_total`.
const RUN_OUTCOMES: [&str; 2] = ["completed", "failed"];

/// The priority label of a rejected task: a request that failed validation has no trustworthy priority.
pub const REJECTED_PRIORITY: &str = "none";

/// The outcome label of a task refused before it was stored.
pub const REJECTED_OUTCOME: &str = "rejected";

impl WorkerMetrics {
    /// Creates and registers the metrics, with every series the worker can produce already present at zero.
    ///
    /// # Errors
    /// A registration conflict.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            queue_depth: IntGaugeVec::new(
                Opts::new(
                    "scalelab_worker_queue_depth",
                    "Tasks waiting to start, per priority",
                ),
                &["priority"],
            )?,
            tasks: IntCounterVec::new(
                Opts::new(
                    "scalelab_worker_tasks_total",
                    "Tasks by priority and outcome (completed, failed, rejected)",
                ),
                &["priority", "outcome"],
            )?,
            wait: HistogramVec::new(
                HistogramOpts::new(
                    "scalelab_worker_task_wait_seconds",
                    "Time from a task's acceptance to its start",
                )
                .buckets(TASK_BUCKETS.to_vec()),
                &["priority"],
            )?,
            run: HistogramVec::new(
                HistogramOpts::new(
                    "scalelab_worker_task_run_seconds",
                    "Time from a task's start to its end",
                )
                .buckets(TASK_BUCKETS.to_vec()),
                &["priority"],
            )?,
            workers: IntGauge::new("scalelab_worker_pool_size", "Workers the pool is sized to")?,
        };
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.tasks.clone()))?;
        registry.register(Box::new(metrics.wait.clone()))?;
        registry.register(Box::new(metrics.run.clone()))?;
        registry.register(Box::new(metrics.workers.clone()))?;
        // Every series exists from the start: a dashboard then shows 0 rather than no data before the first task,
        // and rate() sees a counter's first increment, which it misses on a series that appears already at 1.
        for priority in Priority::ALL {
            let level = priority.as_str();
            metrics.queue_depth.with_label_values(&[level]).set(0);
            for outcome in RUN_OUTCOMES {
                metrics.tasks.with_label_values(&[level, outcome]);
            }
            metrics.wait.with_label_values(&[level]);
            metrics.run.with_label_values(&[level]);
        }
        metrics
            .tasks
            .with_label_values(&[REJECTED_PRIORITY, REJECTED_OUTCOME]);
        Ok(metrics)
    }
}

#[derive(Debug, Default)]
struct Size {
    desired: usize,
    live: usize,
}

struct Inner {
    backlog: Arc<dyn Backlog>,
    wakeup: Notify,
    size: Mutex<Size>,
    busy: AtomicUsize,
    /// The ids of the tasks this process is running, for `GET /admin/workers`.
    running: Mutex<BTreeSet<String>>,
    metrics: WorkerMetrics,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Pool")
    }
}

/// A handle to the pool; cheap to clone.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

// The size counters cannot be left half-updated by a panic, so a poisoned lock is still usable.
use scalelab_common::sync::lock;

/// How long a worker waits before claiming again after the backlog failed (a shared store that is down).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

impl Pool {
    /// An empty pool with no workers; call [`Pool::resize`] to start them.
    #[must_use]
    pub fn new(backlog: Arc<dyn Backlog>, metrics: WorkerMetrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                backlog,
                wakeup: Notify::new(),
                size: Mutex::new(Size::default()),
                busy: AtomicUsize::new(0),
                running: Mutex::new(BTreeSet::new()),
                metrics,
            }),
        }
    }

    /// Makes a stored task available and wakes a worker; returns the number now waiting at its level.
    ///
    /// # Errors
    /// The backlog could not take the task (a shared store that is down).
    pub async fn enqueue(&self, record: &TaskRecord) -> Result<usize, StoreError> {
        let position = self.inner.backlog.push(record).await?;
        self.inner.update_depths().await;
        self.inner.wakeup.notify_one();
        Ok(position)
    }

    /// Sets the number of workers; extra workers exit after their current task.
    pub fn resize(&self, workers: usize) {
        {
            let mut size = lock(&self.inner.size);
            size.desired = workers;
            while size.live < size.desired {
                size.live += 1;
                tokio::spawn(work(Arc::clone(&self.inner)));
            }
        }
        self.inner
            .metrics
            .workers
            .set(i64::try_from(workers).unwrap_or(i64::MAX));
        // Idle workers re-check the size; surplus ones exit.
        self.inner.wakeup.notify_waiters();
    }

    /// The size the pool is set to.
    #[must_use]
    pub fn workers(&self) -> usize {
        lock(&self.inner.size).desired
    }

    /// Changes the aging bound of the queue (see [`Queue::set_aging`]).
    pub fn set_aging(&self, aging: Duration) {
        self.inner.backlog.set_aging(aging);
    }

    /// The queue's aging bound.
    #[must_use]
    pub fn aging(&self) -> Duration {
        self.inner.backlog.aging()
    }

    /// How many workers are running a task right now.
    #[must_use]
    pub fn busy(&self) -> usize {
        self.inner.busy.load(Ordering::Relaxed)
    }

    /// The ids of the tasks this process is running right now, in id order.
    #[must_use]
    pub fn running(&self) -> Vec<String> {
        lock(&self.inner.running).iter().cloned().collect()
    }
}

impl Inner {
    async fn update_depths(&self) {
        // The gauge is best effort: a backlog that cannot say its depth leaves the last known value.
        let Ok(depths) = self.backlog.depths().await else {
            return;
        };
        for (priority, depth) in Priority::ALL.into_iter().zip(depths) {
            self.metrics
                .queue_depth
                .with_label_values(&[priority.as_str()])
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// Whether this worker is surplus; if so it is counted out here, under the same lock `resize` uses.
    fn should_exit(&self) -> bool {
        let mut size = lock(&self.size);
        if size.live > size.desired {
            size.live -= 1;
            true
        } else {
            false
        }
    }
}

/// One worker's loop.
async fn work(inner: Arc<Inner>) {
    loop {
        if inner.should_exit() {
            return;
        }
        // Register interest before looking at the backlog, so an enqueue between the check and the wait is not missed.
        let wakeup = inner.wakeup.notified();
        tokio::pin!(wakeup);
        wakeup.as_mut().enable();
        match inner.backlog.claim(unix_now()).await {
            Ok(Some(claim)) => {
                inner.update_depths().await;
                inner.busy.fetch_add(1, Ordering::Relaxed);
                lock(&inner.running).insert(claim.task_id.clone());
                let task_id = claim.task_id.clone();
                run(&inner, claim).await;
                lock(&inner.running).remove(&task_id);
                inner.busy.fetch_sub(1, Ordering::Relaxed);
            }
            Ok(None) => match inner.backlog.poll_interval() {
                Some(interval) => {
                    let _ = tokio::time::timeout(interval, wakeup).await;
                }
                None => wakeup.await,
            },
            Err(error) => {
                tracing::warn!(%error, "could not claim a task; retrying in 1 s");
                tokio::time::sleep(RETRY_AFTER_ERROR).await;
            }
        }
    }
}

async fn run(inner: &Inner, claim: Claim) {
    let priority = claim.priority.as_str();
    let task_id = claim.task_id.as_str();
    let started_at = unix_now();
    inner
        .metrics
        .wait
        .with_label_values(&[priority])
        .observe((started_at - claim.enqueued_at).max(0.0));
    tracing::info!(
        task_id,
        priority,
        task_type = claim.spec.task_type,
        attempt = claim.attempt,
        "task started"
    );
    let started = Instant::now();
    let traced = crate::traced::unpark(task_id).map(|waited| {
        use scalelab_common::trace::export::{Attribute, Kind};
        let run = waited.sibling("run", Kind::Internal);
        let ended = waited.end(
            vec![Attribute::new("scalelab.task.priority", priority)],
            None,
        );
        run.starting_at(ended)
    });
    // The task runs in its own tokio task, so even a panic inside it cannot take this worker down.
    let mut execution = tokio::spawn(execute(claim.spec.clone()));
    let outcome = loop {
        let renew_after = inner.backlog.renew_interval().unwrap_or(Duration::MAX);
        tokio::select! {
            joined = &mut execution => break match joined {
                Ok(result) => result,
                Err(error) => Err(format!("task crashed: {error}")),
            },
            () = tokio::time::sleep(renew_after) => match inner.backlog.renew(&claim).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(task_id, "claim lost: another worker took the task over"),
                Err(error) => tracing::warn!(task_id, %error, "could not renew the claim"),
            },
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    inner
        .metrics
        .run
        .with_label_values(&[priority])
        .observe(elapsed);
    let [completed, failed] = RUN_OUTCOMES;
    let label = if outcome.is_ok() { completed } else { failed };
    inner
        .metrics
        .tasks
        .with_label_values(&[priority, label])
        .inc();
    tracing::info!(task_id, priority, outcome = label, elapsed, "task finished");
    if let Some(run) = traced {
        use scalelab_common::trace::export::Attribute;
        run.end(
            vec![
                Attribute::new("scalelab.task.type", claim.spec.task_type.clone()),
                Attribute::new("scalelab.task.attempt", i64::from(claim.attempt)),
            ],
            outcome.as_ref().err().cloned(),
        );
    }
    match inner
        .backlog
        .finish(&claim, unix_now(), outcome.err())
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            task_id,
            attempt = claim.attempt,
            "outcome dropped: a later attempt owns the task"
        ),
        Err(error) => tracing::error!(task_id, %error, "could not record the task outcome"),
    }
}

/// The seed's task semantics: `cpu_intensive` burns CPU for duration x 0.5 on the blocking pool, `io_intensive` waits
/// duration x 1.5, anything else waits duration; `fail` fails the task once its work is done.
async fn execute(spec: TaskSpec) -> Result<(), String> {
    match spec.task_type.as_str() {
        "cpu_intensive" => {
            let budget = Duration::from_secs_f64(spec.duration * 0.5);
            tokio::task::spawn_blocking(move || burn_cpu(budget))
                .await
                .map_err(|error| format!("cpu work crashed: {error}"))?;
        }
        "io_intensive" => tokio::time::sleep(Duration::from_secs_f64(spec.duration * 1.5)).await,
        _ => tokio::time::sleep(Duration::from_secs_f64(spec.duration)).await,
    }
    if spec.fail {
        return Err("simulated failure".to_owned());
    }
    Ok(())
}

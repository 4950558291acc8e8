//! The worker pool: N tokio tasks that pop from the in-memory [`Queue`], run tasks, and record outcomes in the
//! [`TaskStore`] and the metrics. The pool size changes live; a shrinking pool lets running tasks finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use tokio::sync::Notify;

use super::queue::{Entry, Priority, Queue};
use super::store::{TaskRecord, TaskSpec, TaskStore};
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

/// What a queue entry carries.
#[derive(Debug, Clone)]
struct Work {
    task_id: String,
    spec: TaskSpec,
}

#[derive(Debug, Default)]
struct Size {
    desired: usize,
    live: usize,
}

#[derive(Debug)]
struct Inner {
    queue: Mutex<Queue<Work>>,
    wakeup: Notify,
    size: Mutex<Size>,
    busy: AtomicUsize,
    store: Arc<dyn TaskStore>,
    metrics: WorkerMetrics,
}

impl std::fmt::Debug for dyn TaskStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TaskStore")
    }
}

/// A handle to the pool; cheap to clone.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

// Neither the queue nor the size counters can be left half-updated by a panic, so a poisoned
// lock is still usable.
use scalelab_common::sync::lock;

impl Pool {
    /// An empty pool with no workers; call [`Pool::resize`] to start them.
    #[must_use]
    pub fn new(store: Arc<dyn TaskStore>, metrics: WorkerMetrics, aging: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                queue: Mutex::new(Queue::new(aging)),
                wakeup: Notify::new(),
                size: Mutex::new(Size::default()),
                busy: AtomicUsize::new(0),
                store,
                metrics,
            }),
        }
    }

    /// Queues a stored task and wakes a worker; returns the number now waiting at its level.
    pub fn enqueue(&self, record: &TaskRecord) -> usize {
        let entry = Entry {
            seq: record.seq,
            priority: record.priority,
            enqueued_at: record.queued_at,
            item: Work {
                task_id: record.task_id.clone(),
                spec: record.spec.clone(),
            },
        };
        let position = {
            let mut queue = lock(&self.inner.queue);
            let position = queue.push(entry);
            self.inner.set_depth(&queue);
            position
        };
        self.inner.wakeup.notify_one();
        position
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
        lock(&self.inner.queue).set_aging(aging);
    }

    /// The queue's aging bound.
    #[must_use]
    pub fn aging(&self) -> Duration {
        lock(&self.inner.queue).aging()
    }

    /// How many workers are running a task right now.
    #[must_use]
    pub fn busy(&self) -> usize {
        self.inner.busy.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn set_depth(&self, queue: &Queue<Work>) {
        for priority in Priority::ALL {
            let depth = i64::try_from(queue.len(priority)).unwrap_or(i64::MAX);
            self.metrics
                .queue_depth
                .with_label_values(&[priority.as_str()])
                .set(depth);
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

    fn pop(&self) -> Option<Entry<Work>> {
        let mut queue = lock(&self.queue);
        let entry = queue.pop(unix_now());
        self.set_depth(&queue);
        entry
    }
}

/// One worker's loop.
async fn work(inner: Arc<Inner>) {
    loop {
        if inner.should_exit() {
            return;
        }
        // Register interest before looking at the queue, so an enqueue between the check and the wait is not missed.
        let wakeup = inner.wakeup.notified();
        tokio::pin!(wakeup);
        wakeup.as_mut().enable();
        match inner.pop() {
            Some(entry) => {
                inner.busy.fetch_add(1, Ordering::Relaxed);
                run(&inner, entry).await;
                inner.busy.fetch_sub(1, Ordering::Relaxed);
            }
            None => wakeup.await,
        }
    }
}

async fn run(inner: &Inner, entry: Entry<Work>) {
    let priority = entry.priority.as_str();
    let Work { task_id, spec } = entry.item;
    let started_at = unix_now();
    inner
        .metrics
        .wait
        .with_label_values(&[priority])
        .observe((started_at - entry.enqueued_at).max(0.0));
    // If the start cannot be recorded the task still runs: at-least-once allows a second run after a crash.
    if let Err(error) = inner.store.mark_running(&task_id, started_at).await {
        tracing::error!(task_id, %error, "could not record the task start");
    }
    tracing::info!(
        task_id,
        priority,
        task_type = spec.task_type,
        "task started"
    );
    let started = Instant::now();
    // The task runs in its own tokio task, so even a panic inside it cannot take this worker down.
    let outcome = match tokio::spawn(execute(spec)).await {
        Ok(result) => result,
        Err(error) => Err(format!("task crashed: {error}")),
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
    if let Err(error) = inner
        .store
        .mark_finished(&task_id, unix_now(), outcome.err())
        .await
    {
        tracing::error!(task_id, %error, "could not record the task outcome");
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

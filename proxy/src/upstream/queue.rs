//! `WaitQueue`: where a group's requests wait, in arrival order, while every candidate server is
//! at its `max_connections`. A request holds a `Ticket` while it waits; a `Lease` given back
//! wakes the head of the queue, which tries to pick again. Dropping a ticket (a pick, a
//! timeout, or a request whose task went away) takes it out of the queue and passes the wake
//! on, so neither a slot nor a wake-up is ever lost.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec};
use prometheus::{IntGauge, IntGaugeVec, Opts};
use scalelab_common::sync::lock;
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Notify;

/// Why a request was refused without reaching a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue already held `queue.max` requests.
    QueueFull,
    /// The request waited `queue.timeout` without a free slot.
    QueueTimeout,
    /// The group's `circuit` had `max_requests` in flight and `max_pending` waiting.
    CircuitOpen,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::QueueFull => "queue_full",
            Refused::QueueTimeout => "queue_timeout",
            Refused::CircuitOpen => "circuit_open",
        }
    }
}

/// One group's queue of waiting requests.
#[derive(Debug)]
pub struct WaitQueue {
    waiters: Mutex<VecDeque<Arc<Notify>>>,
    /// `waiters.len()`, kept under the lock and read without it: every request's pick and
    /// every lease's return look at it, and with no one waiting they take no lock.
    waiting: AtomicUsize,
    metrics: Option<QueueMetrics>,
}

/// A place in the queue; dropping it leaves the queue.
#[derive(Debug)]
pub struct Ticket<'q> {
    queue: &'q WaitQueue,
    waiter: Arc<Notify>,
}

impl WaitQueue {
    pub fn new(group: &str) -> WaitQueue {
        WaitQueue {
            waiters: Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            metrics: QueueMetrics::new(group),
        }
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// No one waits: a new request may pick at once without passing anyone.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Joins the end of the queue, unless `max` requests already wait.
    pub fn join(&self, max: usize) -> Option<Ticket<'_>> {
        let mut waiters = lock(&self.waiters);
        if waiters.len() >= max {
            return None;
        }
        let waiter = Arc::new(Notify::new());
        waiters.push_back(waiter.clone());
        self.set_length(waiters.len());
        drop(waiters);
        // Pairs with the fence in `wake_head`: either the lease given back meanwhile sees this
        // waiter, or this waiter's next pick sees the slot it gave back.
        fence(Ordering::SeqCst);
        Some(Ticket {
            queue: self,
            waiter,
        })
    }

    /// A slot was given back: the head of the queue may pick again. The wake is kept if the
    /// head is not waiting yet (`Notify` stores one permit), so none is lost.
    pub fn wake_head(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Some(head) = lock(&self.waiters).front() {
            head.notify_one();
        }
    }

    /// Counts a refusal and, for a request that waited, how long.
    pub fn record(&self, outcome: Result<(), Refused>, waited: Option<std::time::Duration>) {
        if let Some(metrics) = &self.metrics {
            if let Some(waited) = waited {
                metrics.wait.observe(waited.as_secs_f64());
            }
            match outcome {
                Err(Refused::QueueFull) => metrics.queue_full.inc(),
                Err(Refused::QueueTimeout) => metrics.queue_timeout.inc(),
                Err(Refused::CircuitOpen) => metrics.circuit_open.inc(),
                Ok(()) => {}
            }
        }
    }

    /// Called with the lock held, after every change of `waiters`.
    fn set_length(&self, length: usize) {
        self.waiting.store(length, Ordering::SeqCst);
        if let Some(metrics) = &self.metrics {
            metrics.length.set(length as i64);
        }
    }
}

impl Ticket<'_> {
    /// First in line: the one request that may pick.
    pub fn is_head(&self) -> bool {
        lock(&self.queue.waiters)
            .front()
            .is_some_and(|head| Arc::ptr_eq(head, &self.waiter))
    }

    /// Waits for a wake (a slot given back, or having become the head).
    pub async fn woken(&self) {
        self.waiter.notified().await;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut waiters = lock(&self.queue.waiters);
        waiters.retain(|w| !Arc::ptr_eq(w, &self.waiter));
        self.queue.set_length(waiters.len());
        // The next in line may pick now; if it cannot, it waits again.
        if let Some(head) = waiters.front() {
            head.notify_one();
        }
    }
}

/// A group's queue series, resolved once.
#[derive(Debug)]
struct QueueMetrics {
    length: IntGauge,
    wait: Histogram,
    queue_full: IntCounter,
    queue_timeout: IntCounter,
    circuit_open: IntCounter,
}

struct Vectors {
    length: IntGaugeVec,
    wait: HistogramVec,
    refused: IntCounterVec,
}

/// Queue wait durations, in seconds: 1 ms to 10 s.
const WAIT_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

static VECTORS: OnceLock<Option<Vectors>> = OnceLock::new();

/// Removes the queue series of groups `keep` refuses (groups a reload removed).
pub fn prune(keep: &dyn Fn(&str) -> bool) {
    let Some(Some(vectors)) = VECTORS.get() else {
        return;
    };
    let keep_labels = |labels: &crate::telemetry::Labels| {
        labels
            .iter()
            .find(|(name, _)| *name == "upstream")
            .is_none_or(|(_, group)| keep(group))
    };
    crate::telemetry::prune_vec(&vectors.length, &keep_labels);
    crate::telemetry::prune_vec(&vectors.wait, &keep_labels);
    crate::telemetry::prune_vec(&vectors.refused, &keep_labels);
}

impl QueueMetrics {
    fn new(group: &str) -> Option<QueueMetrics> {
        let vectors = VECTORS.get_or_init(|| vectors().ok()).as_ref()?;
        Some(QueueMetrics {
            length: vectors.length.with_label_values(&[group]),
            wait: vectors.wait.with_label_values(&[group]),
            queue_full: vectors
                .refused
                .with_label_values(&[group, Refused::QueueFull.label()]),
            queue_timeout: vectors
                .refused
                .with_label_values(&[group, Refused::QueueTimeout.label()]),
            circuit_open: vectors
                .refused
                .with_label_values(&[group, Refused::CircuitOpen.label()]),
        })
    }
}

/// Builds the queue vectors and registers them in Prometheus' default registry (a failure to
/// register is logged; they still record).
fn vectors() -> Result<Vectors, prometheus::Error> {
    let length = IntGaugeVec::new(
        Opts::new(
            "scalelab_upstream_queue_length",
            "Requests waiting for a server under its max_connections.",
        ),
        &["upstream"],
    )?;
    let wait = HistogramVec::new(
        HistogramOpts::new(
            "scalelab_upstream_queue_wait_seconds",
            "How long queued requests waited, whether they got a server or not.",
        )
        .buckets(WAIT_BUCKETS.to_vec()),
        &["upstream"],
    )?;
    let refused = IntCounterVec::new(
        Opts::new(
            "scalelab_upstream_refused_requests_total",
            "Requests answered 503 without reaching a server, by reason (queue_full, \
             queue_timeout).",
        ),
        &["upstream", "reason"],
    )?;
    for collector in [
        Box::new(length.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(wait.clone()),
        Box::new(refused.clone()),
    ] {
        if let Err(error) = prometheus::register(collector) {
            tracing::warn!(%error, "queue metrics not registered");
        }
    }
    Ok(Vectors {
        length,
        wait,
        refused,
    })
}

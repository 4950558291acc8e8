//! The proxy's background tasks (health checker, config file watcher, cache sweeper, SIGHUP
//! handler) run for the life of the process. One that ends early or panics is noticed here:
//! logged, counted (`scalelab_background_task_restarts_total`) and restarted after a short
//! pause, so the proxy never serves on silently without, say, its health checks.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Pause before a restart, so a task that fails at once does not spin.
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// The supervised tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    HealthChecker,
    ConfigWatcher,
    CacheSweeper,
    SignalHandler,
    /// Applies other proxies' cache purges (only with a `kind = "redis"` tier).
    CachePurges,
    /// Re-resolves the DNS names of upstream servers (`discovery`).
    Discovery,
}

impl Task {
    pub const ALL: [Task; 6] = [
        Task::HealthChecker,
        Task::ConfigWatcher,
        Task::CacheSweeper,
        Task::SignalHandler,
        Task::CachePurges,
        Task::Discovery,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::HealthChecker => "health_checker",
            Task::ConfigWatcher => "config_watcher",
            Task::CacheSweeper => "cache_sweeper",
            Task::SignalHandler => "signal_handler",
            Task::CachePurges => "cache_purges",
            Task::Discovery => "dns_discovery",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Restarts per task since the process started.
#[derive(Debug, Clone, Default)]
pub struct TaskCounters {
    restarts: Arc<[AtomicU64; Task::ALL.len()]>,
}

impl TaskCounters {
    pub fn restarts(&self, task: Task) -> u64 {
        self.restarts[task.index()].load(Ordering::Relaxed)
    }

    fn restarted(&self, task: Task) {
        self.restarts[task.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `start()` until shutdown, starting it again whenever it returns or panics before
/// shutdown began.
pub async fn supervise<F, Fut>(
    task: Task,
    counters: TaskCounters,
    mut shutdown: watch::Receiver<bool>,
    start: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let ended = tokio::spawn(start()).await;
        if *shutdown.borrow() {
            return;
        }
        match ended {
            Ok(()) => tracing::error!(
                task = task.name(),
                "background task stopped unexpectedly; restarting it"
            ),
            Err(error) if error.is_panic() => tracing::error!(
                task = task.name(),
                "background task panicked; restarting it"
            ),
            // Cancelled: the runtime is going away, and the task with it.
            Err(_) => return,
        }
        counters.restarted(task);
        tokio::select! {
            _ = tokio::time::sleep(RESTART_DELAY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn a_task_that_panics_is_counted_and_started_again_until_shutdown() {
        let counters = TaskCounters::default();
        let (stop, shutdown) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let supervisor = {
            let (counters, starts, shutdown) = (counters.clone(), starts.clone(), shutdown.clone());
            tokio::spawn(supervise(
                Task::CacheSweeper,
                counters,
                shutdown.clone(),
                move || {
                    let starts = starts.clone();
                    let mut shutdown = shutdown.clone();
                    async move {
                        // The first run dies; the second runs until shutdown, as a healthy task does.
                        if starts.fetch_add(1, Ordering::SeqCst) == 0 {
                            panic!("the sweeper hit a bug");
                        }
                        let _ = shutdown.changed().await;
                    }
                },
            ))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while starts.load(Ordering::SeqCst) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "never restarted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counters.restarts(Task::CacheSweeper), 1);
        assert_eq!(counters.restarts(Task::HealthChecker), 0);
        let _ = stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), supervisor)
            .await
            .expect("the supervisor ends at shutdown")
            .expect("the supervisor does not panic");
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "not restarted after shutdown"
        );
    }

    #[tokio::test]
    async fn a_task_that_returns_early_is_restarted_too() {
        let counters = TaskCounters::default();
        let (stop, shutdown) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let supervisor = {
            let (counters, starts) = (counters.clone(), starts.clone());
            tokio::spawn(supervise(
                Task::ConfigWatcher,
                counters,
                shutdown,
                move || {
                    let starts = starts.clone();
                    async move {
                        starts.fetch_add(1, Ordering::SeqCst);
                    }
                },
            ))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while counters.restarts(Task::ConfigWatcher) < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not restarted twice"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), supervisor).await;
        assert!(starts.load(Ordering::SeqCst) >= 2);
    }
}

//! Polling with a deadline instead of sleeping for a guessed time.

use std::time::{Duration, Instant};

use crate::patience::patient;

/// How long `eventually` waits between two probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `probe` every [`POLL_INTERVAL`] until it yields `Some`, and returns that value.
///
/// `deadline` is the bound on a quiet machine; it is scaled by [`crate::patience`] here, so
/// callers pass the unscaled value. Past it the test fails, naming `what` it waited for.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = patient(deadline);
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`eventually`] for synchronous tests: the same deadline scaling, the same failure, but the
/// thread sleeps between probes.
pub fn eventually_blocking<T, F>(deadline: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Option<T>,
{
    let deadline = patient(deadline);
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

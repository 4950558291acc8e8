//! The shared tier's circuit breaker: after a few failed Redis commands in a row the tier is
//! skipped (requests use the local tiers and the origin) until a back-off passes; then the next
//! commands try again, and one success closes it. Each change of state is logged once.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Failures in a row that open the breaker.
pub const THRESHOLD: u32 = 3;

/// How long the tier is skipped once open; short, so a restarted Redis is used again within
/// a couple of seconds.
pub const BACK_OFF: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Breaker {
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the tier is skipped.
    open_until: AtomicU64,
    epoch: Instant,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a command may be sent now.
    pub fn allows(&self) -> bool {
        self.now_ms() >= self.open_until.load(Ordering::Relaxed)
    }

    /// Whether the breaker is open (failing and not yet recovered).
    pub fn is_open(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= THRESHOLD
    }

    /// A command succeeded: close the breaker.
    pub fn success(&self) {
        if self.failures.swap(0, Ordering::Relaxed) >= THRESHOLD {
            tracing::warn!("redis cache tier reachable again; using it");
        }
    }

    /// A command failed or timed out: open the breaker once failures reach the threshold, and
    /// again after every failed retry.
    pub fn failure(&self, error: &str) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures >= THRESHOLD {
            let back_off = u64::try_from(BACK_OFF.as_millis()).unwrap_or(u64::MAX);
            self.open_until
                .store(self.now_ms().saturating_add(back_off), Ordering::Relaxed);
        }
        if failures == THRESHOLD {
            tracing::warn!(
                error,
                "redis cache tier failing; skipping it (local tiers and the origin serve) and retrying every {BACK_OFF:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_a_success() {
        let breaker = Breaker::default();
        for _ in 1..THRESHOLD {
            breaker.failure("refused");
            assert!(breaker.allows() && !breaker.is_open());
        }
        breaker.failure("refused");
        assert!(breaker.is_open());
        assert!(!breaker.allows(), "skipped during the back-off");
        breaker.success();
        assert!(!breaker.is_open());
    }
}

//! Wall-clock time as Unix timestamps, for journals, tokens and JSON answers. Durations and
//! deadlines use `Instant` instead; these are only for values a person or another process reads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch; zero if the system clock is set before 1970, which no caller
/// can do anything useful about.
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    since_epoch().as_secs()
}

/// Seconds since the Unix epoch with their fraction, for timestamps compared at sub-second
/// precision (token lifetimes, queue aging).
pub fn unix_secs_f64() -> f64 {
    since_epoch().as_secs_f64()
}

/// Milliseconds since the Unix epoch (saturating; u64 milliseconds last 584 million years).
pub fn unix_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let ms = unix_ms();
        let secs = unix_secs();
        // Taken a moment apart, so the seconds may have ticked once in between.
        assert!(secs == ms / 1000 || secs == ms / 1000 + 1, "{secs} vs {ms}");
        // After 2020-01-01: the clock is read, not defaulted.
        assert!(secs > 1_577_836_800);
    }
}

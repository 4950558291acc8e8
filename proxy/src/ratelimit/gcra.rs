//! GCRA (the generic cell rate algorithm) as pure arithmetic on one number per key: the
//! theoretical arrival time (TAT), in nanoseconds since a process epoch. A key whose TAT is in
//! the past has its whole burst available, so forgetting it changes nothing: that is what lets
//! idle keys expire without a timer.

/// A rate and burst in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// The time one request costs (the period divided by the rate's count).
    pub interval_ns: u64,
    /// How many requests may arrive back to back from an idle key.
    pub burst: u32,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let through: store `tat`; `remaining` more requests would pass right now, and the key
    /// is idle again (full burst) after `reset_ns`.
    Allow {
        tat: u64,
        remaining: u32,
        reset_ns: u64,
    },
    /// Refused; the next request passes after `retry_after_ns`.
    Deny { retry_after_ns: u64 },
}

impl Gcra {
    /// The window a whole burst refills in: what the `RateLimit-Policy` header calls `w`.
    pub fn tolerance_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.burst))
    }

    /// Decides a request arriving at `now` for a key whose stored TAT is `tat` (0 for a key
    /// never seen).
    pub fn decide(&self, tat: u64, now: u64) -> Decision {
        let next = tat.max(now).saturating_add(self.interval_ns);
        let ahead = next - now;
        let tolerance = self.tolerance_ns();
        if ahead > tolerance {
            Decision::Deny {
                retry_after_ns: ahead - tolerance,
            }
        } else {
            let remaining = (tolerance - ahead)
                .checked_div(self.interval_ns)
                .unwrap_or(u64::from(self.burst));
            Decision::Allow {
                tat: next,
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                reset_ns: ahead,
            }
        }
    }
}

/// Whole seconds, rounded up, as `Retry-After` and the `RateLimit` header give them: a client
/// that waits that long is let through.
pub fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

//! Outlier detection's arithmetic: which answers count as failures, when a run of them ejects
//! a server, for how long, and whether the group can spare it. Pure; `upstream::ejection`
//! keeps the counters and applies the verdicts.

#[cfg(test)]
mod tests;

use std::time::Duration;

/// Why a server was ejected, as the metric's `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Consecutive5xx,
    ConsecutiveGatewayErrors,
    ErrorRate,
}

impl Reason {
    pub const ALL: [Reason; 3] = [
        Reason::Consecutive5xx,
        Reason::ConsecutiveGatewayErrors,
        Reason::ErrorRate,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::Consecutive5xx => "consecutive_5xx",
            Reason::ConsecutiveGatewayErrors => "consecutive_gateway_errors",
            Reason::ErrorRate => "error_rate",
        }
    }
}

/// What one outcome counts as: `(is a 5xx, is a gateway error)`. `None` is a failure to get
/// any response (reset, timeout), which counts as both, as in Envoy.
pub fn classify(status: Option<u16>) -> (bool, bool) {
    match status {
        None => (true, true),
        Some(code) => (code >= 500, matches!(code, 502..=504)),
    }
}

/// The rule a run of `fives` consecutive 5xx and `gateway` consecutive gateway errors breaks,
/// if any (a threshold of 0 is off); the gateway rule is named first, being the more specific.
pub fn broken_rule(fives: u32, gateway: u32, max_5xx: u32, max_gateway: u32) -> Option<Reason> {
    if max_gateway > 0 && gateway >= max_gateway {
        Some(Reason::ConsecutiveGatewayErrors)
    } else if max_5xx > 0 && fives >= max_5xx {
        Some(Reason::Consecutive5xx)
    } else {
        None
    }
}

/// Whether `errors` of `total` answers in the current window break an error-rate rule of
/// `threshold_percent`, counted once the window holds `min_requests` answers.
pub fn rate_breaks(errors: u32, total: u32, threshold_percent: u32, min_requests: u32) -> bool {
    total >= min_requests.max(1)
        && u64::from(errors) * 100 >= u64::from(threshold_percent) * u64::from(total)
}

/// How long the `times`-th ejection (1 for the first) lasts: `base x times`, at most ten times
/// `base` (Envoy's default cap, 300 s, is ten times its default base, 30 s).
pub fn ejection_time(base: Duration, times: u32) -> Duration {
    base * times.clamp(1, 10)
}

/// Whether one more server of a group of `size` may be ejected while `ejected` are out and
/// `available` take traffic: never the last available one, and never past `max_percent` of
/// the group (rounded down, so 50% of 3 is one server).
pub fn may_eject(size: usize, ejected: usize, available: usize, max_percent: u32) -> bool {
    available > 1 && (ejected + 1) * 100 <= size * max_percent as usize
}

//! Latency-aware selection: the power of two random choices (Mitzenmacher), by in-flight
//! requests (`p2c`) or by peak EWMA cost (`ewma`, Finagle's and Linkerd's), and the peak EWMA
//! arithmetic itself. Pure: the caller passes the time, the observations and a random seed.

#[cfg(test)]
mod tests;

use super::Candidate;

/// The two servers a power-of-two pick compared, and their loads (lower wins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoChoices {
    pub winner: usize,
    /// The other candidate; `None` when only one server was eligible.
    pub other: Option<usize>,
    pub winner_load: f64,
    pub other_load: f64,
}

/// The weight a server has for sampling and for dividing its load: its weight scaled by its
/// slow-start share, so a ramping server is both drawn less often and looks busier.
pub fn effective_weight(candidate: &Candidate) -> f64 {
    f64::from(candidate.weight.max(1)) * f64::from(candidate.ramp_tenths.clamp(1, 10)) / 10.0
}

/// Draws two distinct eligible servers, each with probability proportional to its effective
/// weight, and returns the one with the lower `load(i) / effective weight` (the first drawn
/// on a tie). `seed` is any well-mixed number; the same seed gives the same draw.
pub fn pick_two(
    candidates: &[Candidate],
    seed: u64,
    load: impl Fn(usize) -> f64,
) -> Option<TwoChoices> {
    let total: f64 = candidates
        .iter()
        .filter(|c| c.eligible())
        .map(effective_weight)
        .sum();
    if total <= 0.0 {
        return None;
    }
    let first = draw(candidates, unit(seed) * total, None)?;
    let rest = total - effective_weight(&candidates[first]);
    let second = (rest > 0.0)
        .then(|| {
            draw(
                candidates,
                unit(mix(seed ^ 0xA5A5_A5A5_A5A5_A5A5)) * rest,
                Some(first),
            )
        })
        .flatten();
    let score = |i: usize| load(i) / effective_weight(&candidates[i]);
    let first_load = score(first);
    Some(match second {
        Some(second) if score(second) < first_load => TwoChoices {
            winner: second,
            other: Some(first),
            winner_load: score(second),
            other_load: first_load,
        },
        Some(second) => TwoChoices {
            winner: first,
            other: Some(second),
            winner_load: first_load,
            other_load: score(second),
        },
        None => TwoChoices {
            winner: first,
            other: None,
            winner_load: first_load,
            other_load: 0.0,
        },
    })
}

/// The eligible server (other than `skip`) in whose share of the cumulative weights `point`
/// falls; the last eligible one absorbs rounding.
fn draw(candidates: &[Candidate], point: f64, skip: Option<usize>) -> Option<usize> {
    let mut cumulative = 0.0;
    let mut last = None;
    for (i, candidate) in candidates.iter().enumerate() {
        if !candidate.eligible() || skip == Some(i) {
            continue;
        }
        cumulative += effective_weight(candidate);
        last = Some(i);
        if point < cumulative {
            return Some(i);
        }
    }
    last
}

/// splitmix64's finaliser: a counter in, a well-mixed 64-bit number out.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) from the top 53 bits of `x`.
fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a server that has no observation yet (cost 0) but requests in flight costs: more than
/// any measured server, so a new server gets one request at a time until its first answer
/// (Finagle's `Penalty`).
pub const UNMEASURED_PENALTY_US: f64 = 1.0e9;

/// A peak EWMA estimate, `age_ms` after it was last updated, decayed towards zero with time
/// constant `decay_ms`: an idle server's cost fades, so a server once slow is tried again.
pub fn decayed(cost_us: f64, age_ms: f64, decay_ms: f64) -> f64 {
    if decay_ms <= 0.0 {
        return cost_us;
    }
    cost_us * (-age_ms.max(0.0) / decay_ms).exp()
}

/// The estimate after observing `rtt_us`, `age_ms` after the last update. A response slower
/// than the decayed estimate replaces it at once (the peak); a faster one is blended into the
/// stored estimate with the weight time gives it, `w = exp(-age / decay)`:
/// `cost x w + rtt x (1 - w)`, so the estimate falls only as fast as time passes.
pub fn observe(cost_us: f64, age_ms: f64, decay_ms: f64, rtt_us: f64) -> f64 {
    if rtt_us > decayed(cost_us, age_ms, decay_ms) {
        return rtt_us;
    }
    let weight = decayed(1.0, age_ms, decay_ms);
    cost_us * weight + rtt_us * (1.0 - weight)
}

/// Peak EWMA's load: the cost of one more request, `cost x (in flight + 1)`; a server never
/// measured costs nothing while idle and `UNMEASURED_PENALTY_US` per request in flight.
pub fn ewma_load(cost_us: f64, in_flight: usize) -> f64 {
    if cost_us <= 0.0 {
        return in_flight as f64 * UNMEASURED_PENALTY_US;
    }
    cost_us * (in_flight as f64 + 1.0)
}

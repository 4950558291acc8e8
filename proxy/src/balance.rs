//! Server selection policies as pure functions: round robin, smooth weighted round robin
//! (nginx's algorithm), least connections, and in their own modules the power of two choices
//! and peak EWMA (`latency`), consistent hashing by ring or Maglev table (`hashing`) and
//! outlier detection's arithmetic (`outlier`). No IO, no locks, no clocks; `upstream` feeds
//! them a view of each server and a rotation counter.

pub mod hashing;
pub mod latency;
pub mod outlier;
pub mod splitting;
#[cfg(test)]
mod tests;

use serde::Serialize;

/// A balancing strategy, per upstream group and overridable per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    Weighted,
    LeastConnections,
    /// Power of two random choices by in-flight requests per unit of weight.
    P2c,
    /// Power of two choices by peak EWMA of response time times (in-flight + 1).
    Ewma,
    /// Consistent hashing on the group's `hash.key`.
    Hash,
}

impl Strategy {
    pub const NAMES: [&'static str; 6] = [
        "round_robin",
        "weighted",
        "least_connections",
        "p2c",
        "ewma",
        "hash",
    ];

    pub fn parse(text: &str) -> Option<Strategy> {
        match text {
            "round_robin" => Some(Strategy::RoundRobin),
            "weighted" => Some(Strategy::Weighted),
            "least_connections" => Some(Strategy::LeastConnections),
            "p2c" => Some(Strategy::P2c),
            "ewma" => Some(Strategy::Ewma),
            "hash" => Some(Strategy::Hash),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::Weighted => "weighted",
            Strategy::LeastConnections => "least_connections",
            Strategy::P2c => "p2c",
            Strategy::Ewma => "ewma",
            Strategy::Hash => "hash",
        }
    }
}

/// What the selectors may know about one server at the moment of a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub weight: u32,
    pub in_flight: usize,
    pub healthy: bool,
    /// Already tried by this request (a retry must go elsewhere).
    pub excluded: bool,
    /// At its `max_connections`: skipped until a slot is given back.
    pub full: bool,
    /// Slow start: the share of its weight it has now, in tenths (10 is all of it).
    pub ramp_tenths: u32,
}

impl Candidate {
    pub fn eligible(&self) -> bool {
        self.healthy && !self.excluded && !self.full
    }
}

/// The order in which a set of servers is visited: for round robin each server once, for
/// weighted the smooth interleaving nginx produces. It is built for one set of eligible servers
/// (`mask`), so the hot path only indexes into it with an atomic counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub mask: u64,
    pub order: Vec<u8>,
    /// The weights it was built for (empty for plain round robin), so a slow start's changing
    /// weights rebuild it.
    pub weights: Vec<u32>,
}

impl Schedule {
    /// The round-robin order over the servers in `mask`.
    pub fn round_robin(mask: u64, count: usize) -> Schedule {
        let order = (0..count.min(64))
            .filter(|&i| mask & (1 << i) != 0)
            .map(|i| i as u8)
            .collect();
        Schedule {
            mask,
            order,
            weights: Vec::new(),
        }
    }

    /// nginx's smooth weighted round robin over the servers in `mask`: each step adds every
    /// weight to its server's current value, picks the largest (first on ties) and subtracts the
    /// total from it. One period is `sum(weights)` picks long and gives each server exactly its
    /// weight, interleaved.
    pub fn smooth_weighted(mask: u64, weights: &[u32]) -> Schedule {
        let members: Vec<usize> = (0..weights.len().min(64))
            .filter(|&i| mask & (1 << i) != 0)
            .collect();
        let total: i64 = members.iter().map(|&i| i64::from(weights[i])).sum();
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best: Option<usize> = None;
            for &i in &members {
                current[i] += i64::from(weights[i]);
                if best.is_none_or(|b| current[i] > current[b]) {
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                current[b] -= total;
                order.push(b as u8);
            }
        }
        Schedule {
            mask,
            order,
            weights: weights.to_vec(),
        }
    }

    /// The pick for rotation step `step`: the scheduled server, or when it is excluded by a
    /// retry, the next eligible one in the schedule.
    pub fn pick(&self, step: usize, candidates: &[Candidate]) -> Option<usize> {
        let len = self.order.len();
        (0..len)
            .map(|offset| usize::from(self.order[(step + offset) % len]))
            .find(|&i| candidates.get(i).is_some_and(Candidate::eligible))
    }
}

/// The bit mask of servers that are healthy (exclusions are not part of it: they are per
/// request and must not rebuild shared schedules).
pub fn healthy_mask(candidates: &[Candidate]) -> u64 {
    candidates
        .iter()
        .enumerate()
        .take(64)
        .filter(|(_, c)| c.healthy)
        .fold(0, |mask, (i, _)| mask | (1 << i))
}

/// Least connections: the eligible server with the fewest requests in flight; a higher weight
/// wins a tie; remaining ties go to the first one found starting at `rotation`, so they rotate.
///
/// A server in slow start that wins is taken only `ramp_tenths` times in ten (decided by a hash
/// of `rotation`, so it is spread evenly); otherwise the best of the others is, if there is one.
/// That caps its share at its ramp fraction of a fair share.
pub fn pick_least_connections(candidates: &[Candidate], rotation: usize) -> Option<usize> {
    let best = least_connections_except(candidates, rotation, None)?;
    let tenths = candidates[best].ramp_tenths;
    if tenths >= 10 || ramp_admits(rotation, tenths) {
        return Some(best);
    }
    least_connections_except(candidates, rotation, Some(best)).or(Some(best))
}

/// Whether pick number `rotation` may go to a server at `tenths` of its ramp: true for
/// `tenths` of every ten consecutive values of a well-mixed hash of `rotation`.
pub fn ramp_admits(rotation: usize, tenths: u32) -> bool {
    let mixed = (rotation as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    mixed % 10 < u64::from(tenths)
}

/// Slow start: the share of its weight a server has `elapsed` into a `window`, in tenths,
/// from 1 (10%) at the start to 10 (100%) at the end: linear, in 10% steps, so that a
/// schedule built for one step serves until the next.
pub fn ramp_tenths(elapsed: std::time::Duration, window: std::time::Duration) -> u32 {
    if window.is_zero() || elapsed >= window {
        return 10;
    }
    let progress = (elapsed.as_nanos() * 9 / window.as_nanos()) as u32;
    1 + progress.min(9)
}

/// Weights divided by their greatest common divisor, so that equal weights make the shortest
/// schedule whatever their scale.
pub fn normalized(weights: &mut [u32]) {
    let divisor = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    for weight in weights {
        *weight /= divisor;
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn least_connections_except(
    candidates: &[Candidate],
    rotation: usize,
    skip: Option<usize>,
) -> Option<usize> {
    let len = candidates.len();
    if len == 0 {
        return None;
    }
    let mut best: Option<usize> = None;
    for offset in 0..len {
        let i = (rotation + offset) % len;
        let candidate = &candidates[i];
        if !candidate.eligible() || skip == Some(i) {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => {
                let current = &candidates[b];
                (candidate.in_flight, std::cmp::Reverse(candidate.weight))
                    < (current.in_flight, std::cmp::Reverse(current.weight))
            }
        };
        if better {
            best = Some(i);
        }
    }
    best
}

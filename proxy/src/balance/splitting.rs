//! Which group of a route's split takes a request (a canary): the first target whose `match`
//! pins the request, else a draw over the weights, random per request or the hash of the
//! route's `split_key` so one user stays on one side. Pure: the caller passes the request's
//! header and cookie lookups, the key's hash and a random number.
//!
//! A draw maps onto the weights as a fraction of the whole (`draw / 2^64` of the total), not as
//! `draw % total`, so a key's side depends only on where the weights divide the line: raising
//! the last group's weight (5 -> 25 -> 100, the usual rollout with the canary listed last)
//! only moves keys onto it, and a user who saw the canary keeps seeing it.

#[cfg(test)]
mod tests;

/// One group of a split.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SplitTarget {
    pub group: String,
    /// Its share is `weight / sum of weights`; 0 takes only the requests its `match` pins.
    pub weight: u32,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
}

/// `match = { header = { NAME = VALUE }, cookie = { NAME = VALUE } }`: a request that has
/// every one of these values goes to the target's group whatever the weights say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    /// Header names lower-cased (HTTP/2 sends them so); values compared exactly.
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
}

/// Why a request went to its group (for the explain header and the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its headers or cookies matched the target's `match`.
    Pinned,
    /// A random draw over the weights.
    Weight,
    /// The hash of its `split_key` over the weights.
    Key,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Pinned => "match",
            Reason::Weight => "weight",
            Reason::Key => "key",
        }
    }
}

/// The target (an index into `split.targets`) and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub target: usize,
    pub reason: Reason,
}

/// Chooses the target of one request: pins first, in the file's order; then `key` (the hash
/// of the route's `split_key`) when the request carries one, else `random`. Validation leaves at
/// least one weight above zero, so the draw always lands; `None` only for an invalid split.
pub fn choose<'a>(
    targets: &[SplitTarget],
    header: impl Fn(&str) -> Option<&'a str>,
    cookie: impl Fn(&str) -> Option<&'a str>,
    key: Option<u64>,
    random: u64,
) -> Option<Choice> {
    if let Some(target) = targets.iter().position(|t| {
        t.pin
            .as_ref()
            .is_some_and(|pin| pins(pin, &header, &cookie))
    }) {
        return Some(Choice {
            target,
            reason: Reason::Pinned,
        });
    }
    let (draw, reason) = match key {
        // Re-mixed with a salt: a group that balances by consistent hashing on the same key
        // must not see only the keys of one end of the hash line.
        Some(hash) => (salted(hash), Reason::Key),
        None => (random, Reason::Weight),
    };
    let target = by_weight(targets.iter().map(|t| t.weight), draw)?;
    Some(Choice { target, reason })
}

/// Whether a request has every header and cookie value `pin` names.
pub fn pins<'a>(
    pin: &Pin,
    header: &impl Fn(&str) -> Option<&'a str>,
    cookie: &impl Fn(&str) -> Option<&'a str>,
) -> bool {
    pin.headers
        .iter()
        .all(|(name, value)| header(name) == Some(value.as_str()))
        && pin
            .cookies
            .iter()
            .all(|(name, value)| cookie(name) == Some(value.as_str()))
}

/// The index whose share of the line `[0, total)` holds `draw / 2^64` of the total; `None`
/// when every weight is zero.
pub fn by_weight(weights: impl Iterator<Item = u32> + Clone, draw: u64) -> Option<usize> {
    let total: u64 = weights.clone().map(u64::from).sum();
    if total == 0 {
        return None;
    }
    // The high bits of the product: `draw` scaled onto `[0, total)` without the bias of `%`.
    let point = ((u128::from(draw) * u128::from(total)) >> 64) as u64;
    let mut end = 0u64;
    for (index, weight) in weights.enumerate() {
        end += u64::from(weight);
        if point < end {
            return Some(index);
        }
    }
    None
}

/// Whether a request is copied to the mirror: `random` (uniform over `u64`) falls in the first
/// `percent` of the line.
pub fn mirrored(percent: f64, random: u64) -> bool {
    if percent >= 100.0 {
        return true;
    }
    // Exact enough: f64 carries 53 bits, and a share is compared, not counted.
    (random as f64) < percent / 100.0 * (u64::MAX as f64)
}

/// splitmix64's finaliser over the key's hash with a constant of the split's own.
fn salted(hash: u64) -> u64 {
    let mut z = hash ^ 0x5bd1_e995_c0ff_ee11;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

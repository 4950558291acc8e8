//! The explain header's account of a pick: every candidate with its weight (and slow-start
//! share), in-flight count (and limit) and state, then the winner and why.

use super::PoolServer;
use crate::balance::latency::TwoChoices;
use crate::balance::{Candidate, Strategy};

/// Why the winner won, beyond its strategy's rule.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Why {
    /// The strategy's own rule (the schedule, fewest in flight).
    Plain,
    /// A power-of-two pick: the two servers drawn and their loads.
    Two(TwoChoices),
    /// A hash pick: `owner` is false when the key's owner was unavailable to this request.
    Hash { owner: bool },
    /// `strategy = "hash"` but the request has no key.
    NoKey,
    /// The sticky cookie named this server.
    Sticky,
    /// The sticky cookie named a server that is unavailable (or none of this group's).
    Rebalanced(Box<Why>),
}

pub(super) fn explain_pick(
    strategy: Strategy,
    servers: &[PoolServer],
    candidates: &[Candidate],
    winner: usize,
    why: Why,
) -> String {
    // Built with `push_str` from the preformatted addresses and `itoa`, not `write!`: some
    // clients (and the benchmark) ask for the explain header on every request, and formatting
    // addresses through `fmt` cost about 6,000 instructions per request.
    let address = |i: usize| servers[i].state.addr_header.to_str().unwrap_or("-");
    let mut number = itoa::Buffer::new();
    let mut text = String::with_capacity(80 * candidates.len() + 96);
    text.push_str("strategy=");
    text.push_str(strategy.name());
    text.push_str("; candidates=");
    for (i, c) in candidates.iter().enumerate() {
        let health = if !c.healthy {
            "down"
        } else if c.excluded {
            "tried"
        } else if c.full {
            "full"
        } else {
            "up"
        };
        if i > 0 {
            text.push(',');
        }
        text.push_str(address(i));
        text.push_str("(w=");
        text.push_str(number.format(c.weight));
        if c.ramp_tenths < 10 {
            text.push_str(",slow_start=");
            text.push_str(number.format(c.ramp_tenths * 10));
            text.push('%');
        }
        text.push_str(",inflight=");
        text.push_str(number.format(c.in_flight));
        if let Some(limit) = servers[i].max_connections {
            text.push('/');
            text.push_str(number.format(limit));
        }
        if strategy == Strategy::Ewma {
            text.push_str(",ewma_us=");
            text.push_str(number.format(servers[i].state.ewma_us() as u64));
        }
        text.push(',');
        text.push_str(health);
        text.push(')');
    }
    text.push_str("; winner=");
    text.push_str(address(winner));
    text.push_str(" (");
    reason(&mut text, strategy, &why, &address);
    text.push(')');
    text
}

fn reason<'a>(
    text: &mut String,
    strategy: Strategy,
    why: &Why,
    address: &impl Fn(usize) -> &'a str,
) {
    match why {
        Why::Plain => text.push_str(match strategy {
            Strategy::RoundRobin => "next in round-robin order among healthy servers",
            Strategy::Weighted => "next in the smooth weighted round-robin schedule",
            _ => "fewest in flight; higher weight breaks ties, then rotation",
        }),
        Why::Two(two) => {
            let unit = if strategy == Strategy::Ewma {
                "peak EWMA us x (in flight + 1) / weight"
            } else {
                "in flight / weight"
            };
            text.push_str("power of two choices by ");
            text.push_str(unit);
            text.push_str(": ");
            text.push_str(address(two.winner));
            text.push_str(&format!(" load={:.2}", two.winner_load));
            match two.other {
                Some(other) => {
                    text.push_str(" beat ");
                    text.push_str(address(other));
                    text.push_str(&format!(" load={:.2}", two.other_load));
                    if two.winner_load >= two.other_load {
                        text.push_str(" (a tie goes to the first drawn)");
                    }
                }
                None => text.push_str(", the only eligible server"),
            }
        }
        Why::Hash { owner: true } => text.push_str("owner of the key's hash"),
        Why::Hash { owner: false } => {
            text.push_str("the key's owner is unavailable to this request; next one along")
        }
        Why::NoKey => text.push_str("no hash key in the request; round robin"),
        Why::Sticky => text.push_str("the sticky cookie names it"),
        Why::Rebalanced(inner) => {
            text.push_str("sticky cookie names no available server, re-balanced: ");
            reason(text, strategy, inner, address);
        }
    }
}

//! The explain header's account of a pick: every candidate with its weight (and slow-start
//! share), in-flight count (and limit) and state, then the winner and why.

use super::PoolServer;
use crate::balance::{Candidate, Strategy};

pub(super) fn explain_pick(
    strategy: Strategy,
    servers: &[PoolServer],
    candidates: &[Candidate],
    winner: usize,
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
        text.push(',');
        text.push_str(health);
        text.push(')');
    }
    let reason = match strategy {
        Strategy::RoundRobin => "next in round-robin order among healthy servers",
        Strategy::Weighted => "next in the smooth weighted round-robin schedule",
        Strategy::LeastConnections => "fewest in flight; higher weight breaks ties, then rotation",
    };
    text.push_str("; winner=");
    text.push_str(address(winner));
    text.push_str(" (");
    text.push_str(reason);
    text.push(')');
    text
}

//! The explain header's account of a pick: every candidate with its weight (and slow-start
//! share), in-flight count (and limit) and state, then the winner and why.

use super::PoolServer;
use crate::balance::{Candidate, Strategy};
use std::fmt::Write as _;

pub(super) fn explain_pick(
    strategy: Strategy,
    servers: &[PoolServer],
    candidates: &[Candidate],
    winner: usize,
) -> String {
    let mut text = String::with_capacity(64 * candidates.len());
    let _ = write!(text, "strategy={}; candidates=", strategy.name());
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
        let ramp = if c.ramp_tenths < 10 {
            format!(",slow_start={}%", c.ramp_tenths * 10)
        } else {
            String::new()
        };
        let limit = servers[i]
            .max_connections
            .map_or(String::new(), |m| format!("/{m}"));
        let _ = write!(
            text,
            "{}{}(w={}{ramp},inflight={}{limit},{})",
            if i == 0 { "" } else { "," },
            servers[i].state.addr,
            c.weight,
            c.in_flight,
            health
        );
    }
    let reason = match strategy {
        Strategy::RoundRobin => "next in round-robin order among healthy servers",
        Strategy::Weighted => "next in the smooth weighted round-robin schedule",
        Strategy::LeastConnections => "fewest in flight; higher weight breaks ties, then rotation",
    };
    let _ = write!(text, "; winner={} ({reason})", servers[winner].state.addr);
    text
}

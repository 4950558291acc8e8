//! Circuit breaking per group (Envoy's `circuit_breakers`): at most `max_requests` in flight
//! across all of a group's servers, whatever each server's own `max_connections`. The count
//! lives in the `Registry` by group, so requests in flight across a reload count against the
//! new config's limit too. A `CircuitSlot` is one request's place under the limit; the
//! `Lease` gives it back before it wakes the group's queue, so the woken request finds it free.

use super::UpstreamPool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One group's requests in flight under its circuit.
#[derive(Debug, Default)]
pub struct Circuit {
    in_flight: AtomicUsize,
}

impl Circuit {
    /// Takes a place unless `max` are taken; exact under concurrency (a compare and swap).
    pub(super) fn try_enter(self: &Arc<Circuit>, max: u32) -> Option<CircuitSlot> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max as usize).then_some(n + 1)
            })
            .ok()
            .map(|_| CircuitSlot(self.clone()))
    }

    /// Whether `max` requests are in flight now (the circuit refuses more).
    pub fn is_full(&self, max: u32) -> bool {
        self.in_flight.load(Ordering::Relaxed) >= max as usize
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// One request's place under its group's circuit; dropping it gives the place back.
#[derive(Debug)]
pub struct CircuitSlot(Arc<Circuit>);

impl Drop for CircuitSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl UpstreamPool {
    /// The circuit's state for `/admin/upstreams`: `null` without one, else its limits, the
    /// requests in flight under it and whether it refuses more now.
    pub fn circuit_report(&self) -> serde_json::Value {
        match self.config.balancing.circuit {
            None => serde_json::Value::Null,
            Some(circuit) => serde_json::json!({
                "max_requests": circuit.max_requests,
                "max_pending": circuit.max_pending,
                "in_flight": self.circuit.in_flight(),
                "open": self.circuit.is_full(circuit.max_requests),
            }),
        }
    }
}

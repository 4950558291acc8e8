//! Each server's peak EWMA of response time, kept in its `ServerState` (so it survives
//! reloads like the other state) as one atomic word; the arithmetic is `balance::latency`'s.

use super::{now_ms, ServerState};
use crate::balance::latency;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl ServerState {
    /// The peak EWMA estimate now, in microseconds: the stored one decayed by its age. Zero
    /// for a server never measured.
    pub fn ewma_us(&self) -> f64 {
        let (cost, age) = self.ewma_and_age();
        latency::decayed(cost, age, self.ewma_decay_ms.load(Ordering::Relaxed) as f64)
    }

    fn ewma_and_age(&self) -> (f64, f64) {
        let packed = self.ewma.load(Ordering::Relaxed);
        let cost = f64::from(f32::from_bits((packed >> 32) as u32));
        let stamp = packed as u32;
        let age = (now_ms() as u32).wrapping_sub(stamp);
        (cost, f64::from(age))
    }

    /// Feeds one response time (the time to the response head, or to a failure) into the peak
    /// EWMA; lock-free, a compare-and-swap loop on one word.
    pub fn observe_latency(&self, rtt: Duration) {
        let rtt_us = rtt.as_secs_f64() * 1e6;
        let decay = self.ewma_decay_ms.load(Ordering::Relaxed) as f64;
        let _ = self
            .ewma
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
                let cost = f64::from(f32::from_bits((packed >> 32) as u32));
                let now = now_ms() as u32;
                let age = f64::from(now.wrapping_sub(packed as u32));
                let next = latency::observe(cost, age, decay, rtt_us) as f32;
                Some((u64::from(next.to_bits()) << 32) | u64::from(now))
            });
    }

    pub(super) fn set_ewma_decay(&self, decay: Duration) {
        self.ewma_decay_ms
            .store(decay.as_millis().max(1) as u64, Ordering::Relaxed);
    }
}

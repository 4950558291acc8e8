//! Exemplars of the request-duration histogram (issue 29): for each series and bucket, the
//! latest sampled request that landed in it (its trace id, its duration and when it ended), so
//! a latency panel can link a slow bucket to one trace of it.
//!
//! prometheus 0.14 has no exemplars, so they are kept here, beside the histogram, and joined
//! to its buckets when the OpenMetrics exposition is written (`metrics::openmetrics`). The
//! request path writes a bucket's slot with a few atomic stores and no lock: a slot is a small
//! sequence lock whose writer takes it with one compare-and-swap, and a writer that finds
//! another one inside gives its exemplar up (the other one is just as recent), so a writer
//! never waits. A reader (a scrape) retries a few times and otherwise leaves the bucket without
//! an exemplar. Only a sampled request writes; an unsampled one does not reach this module.

use scalelab_common::sync;
use scalelab_common::trace::TraceId;
use std::collections::HashMap;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// One exemplar: the trace of a request, its observed value and when it was recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub trace_id: TraceId,
    pub value: f64,
    /// Unix time in milliseconds.
    pub unix_ms: u64,
}

/// One bucket's latest exemplar. `seq` is even when the slot is stable and odd while a writer
/// is inside; 0 means never written.
#[derive(Debug, Default)]
struct Slot {
    seq: AtomicU64,
    trace_high: AtomicU64,
    trace_low: AtomicU64,
    value: AtomicU64,
    unix_ms: AtomicU64,
}

impl Slot {
    fn store(&self, exemplar: &Exemplar) {
        let seq = self.seq.load(Ordering::Relaxed);
        // Another writer is inside, or took the slot between the load and the swap: its
        // exemplar is as recent as this one, and waiting for it would be a lock.
        if seq & 1 == 1
            || self
                .seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Orders the odd sequence before the data, so a reader that sees any of the new data
        // also sees that the slot changed (the seqlock of Boehm, "Can seqlocks get along with
        // programming language memory models?").
        fence(Ordering::Release);
        let id = u128::from_be_bytes(exemplar.trace_id.0);
        self.trace_high.store((id >> 64) as u64, Ordering::Relaxed);
        self.trace_low.store(id as u64, Ordering::Relaxed);
        self.value
            .store(exemplar.value.to_bits(), Ordering::Relaxed);
        self.unix_ms.store(exemplar.unix_ms, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }

    fn load(&self) -> Option<Exemplar> {
        for _ in 0..16 {
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let high = self.trace_high.load(Ordering::Relaxed);
            let low = self.trace_low.load(Ordering::Relaxed);
            let value = self.value.load(Ordering::Relaxed);
            let unix_ms = self.unix_ms.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                let id = (u128::from(high) << 64) | u128::from(low);
                return Some(Exemplar {
                    trace_id: TraceId(id.to_be_bytes()),
                    value: f64::from_bits(value),
                    unix_ms,
                });
            }
        }
        None
    }
}

/// The latest exemplar of each bucket of one histogram series (its bounds, plus `+Inf`).
#[derive(Debug)]
pub struct SeriesExemplars {
    bounds: Box<[f64]>,
    slots: Box<[Slot]>,
}

impl SeriesExemplars {
    pub fn new(bounds: &[f64]) -> SeriesExemplars {
        SeriesExemplars {
            bounds: bounds.into(),
            slots: (0..=bounds.len()).map(|_| Slot::default()).collect(),
        }
    }

    /// Keeps `exemplar` as the latest of the bucket its value falls in (the first bound at or
    /// above it, as the histogram counts it).
    pub fn offer(&self, exemplar: &Exemplar) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| exemplar.value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(slot) = self.slots.get(bucket) {
            slot.store(exemplar);
        }
    }

    /// The latest exemplar of bucket `index` (`bounds.len()` is `+Inf`), if any.
    pub fn get(&self, index: usize) -> Option<Exemplar> {
        self.slots.get(index).and_then(Slot::load)
    }
}

/// A series: its family's name and its labels, sorted by name (as a gathered metric has them).
type SeriesKey = (String, Vec<(String, String)>);

/// Every series' exemplars, found by the exposition from a gathered metric's labels. The
/// request path never reads this map: a series' `SeriesExemplars` is looked up once, when its
/// first sampled request arrives, and then held by the route's pre-resolved slot.
fn index() -> &'static RwLock<HashMap<SeriesKey, Arc<SeriesExemplars>>> {
    static INDEX: OnceLock<RwLock<HashMap<SeriesKey, Arc<SeriesExemplars>>>> = OnceLock::new();
    INDEX.get_or_init(Default::default)
}

fn key(family: &str, labels: &[(&str, &str)]) -> SeriesKey {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    labels.sort();
    (family.to_owned(), labels)
}

/// The exemplars of the series of `family` with `labels`, made on first use. A series made
/// again after a reload finds the one it had.
pub fn series(family: &str, labels: &[(&str, &str)], bounds: &[f64]) -> Arc<SeriesExemplars> {
    let key = key(family, labels);
    if let Some(found) = sync::read(index()).get(&key) {
        return found.clone();
    }
    sync::write(index())
        .entry(key)
        .or_insert_with(|| Arc::new(SeriesExemplars::new(bounds)))
        .clone()
}

/// The exemplars of a gathered series, if any request of it was sampled.
pub fn lookup(family: &str, labels: &[(&str, &str)]) -> Option<Arc<SeriesExemplars>> {
    sync::read(index()).get(&key(family, labels)).cloned()
}

/// Forgets the series `keep` refuses (a reload removed their route), as their histogram
/// series are pruned.
pub fn prune(keep: &dyn Fn(&super::Labels) -> bool) {
    sync::write(index()).retain(|(_, labels), _| {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        keep(&pairs)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exemplar(byte: u8, value: f64) -> Exemplar {
        Exemplar {
            trace_id: TraceId([byte; 16]),
            value,
            unix_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn each_bucket_keeps_its_latest_exemplar() {
        let series = SeriesExemplars::new(&[0.1, 1.0]);
        assert_eq!(series.get(0), None);
        series.offer(&exemplar(1, 0.05));
        series.offer(&exemplar(2, 0.1));
        series.offer(&exemplar(3, 0.5));
        series.offer(&exemplar(4, 7.0));
        assert_eq!(series.get(0), Some(exemplar(2, 0.1)), "le is inclusive");
        assert_eq!(series.get(1), Some(exemplar(3, 0.5)));
        assert_eq!(series.get(2), Some(exemplar(4, 7.0)), "+Inf");
        assert_eq!(series.get(3), None);
    }

    #[test]
    fn a_trace_id_survives_the_split_into_two_words() {
        let series = SeriesExemplars::new(&[1.0]);
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = 0xf0 | i as u8;
        }
        let sent = Exemplar {
            trace_id: TraceId(id),
            value: 0.25,
            unix_ms: 42,
        };
        series.offer(&sent);
        assert_eq!(series.get(0), Some(sent));
    }

    /// A slot a writer is inside (odd sequence) is neither read nor written by anyone else: a
    /// reader gives up rather than return a half-written exemplar, and a second writer drops
    /// its exemplar rather than wait.
    #[test]
    fn a_slot_being_written_is_left_alone() {
        let series = SeriesExemplars::new(&[1.0]);
        series.offer(&exemplar(1, 0.5));
        let slot = &series.slots[0];
        let stable = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(stable + 1, Ordering::Relaxed);
        assert_eq!(series.get(0), None, "half written");
        series.offer(&exemplar(2, 0.5));
        assert_eq!(
            slot.trace_low.load(Ordering::Relaxed),
            0x0101_0101_0101_0101
        );
        slot.seq.store(stable + 2, Ordering::Relaxed);
        assert_eq!(series.get(0), Some(exemplar(1, 0.5)));
        series.offer(&exemplar(3, 0.5));
        assert_eq!(series.get(0), Some(exemplar(3, 0.5)));
    }

    /// Writers race on one slot while a reader reads it until they are done: every exemplar
    /// read is one that was written whole (its trace id's bytes, value and time all carry the
    /// writer's tag), never a mix of two.
    #[test]
    fn a_reader_never_sees_a_torn_exemplar() {
        let series = Arc::new(SeriesExemplars::new(&[1000.0]));
        let writers: Vec<_> = (1..=3u8)
            .map(|tag| {
                let series = series.clone();
                std::thread::spawn(move || {
                    for _ in 0..200_000 {
                        series.offer(&Exemplar {
                            trace_id: TraceId([tag; 16]),
                            value: f64::from(tag),
                            unix_ms: u64::from(tag),
                        });
                    }
                })
            })
            .collect();
        let mut reads = 0u64;
        while reads < 1_000 || !writers.iter().all(|writer| writer.is_finished()) {
            if let Some(read) = series.get(0) {
                let tag = read.trace_id.0[0];
                assert!(read.trace_id.0.iter().all(|byte| *byte == tag), "{read:?}");
                assert_eq!(read.value, f64::from(tag), "{read:?}");
                assert_eq!(read.unix_ms, u64::from(tag), "{read:?}");
                reads += 1;
            }
        }
        for writer in writers {
            writer.join().unwrap();
        }
    }

    #[test]
    fn series_are_shared_by_labels_and_pruned() {
        let family = "exemplars_test_shared_seconds";
        let first = series(family, &[("route", "a"), ("cache", "hit")], &[1.0]);
        let again = series(family, &[("cache", "hit"), ("route", "a")], &[1.0]);
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same series, labels in any order"
        );
        first.offer(&exemplar(9, 0.5));
        let found = lookup(family, &[("route", "a"), ("cache", "hit")]).unwrap();
        assert_eq!(found.get(0), Some(exemplar(9, 0.5)));
        assert!(lookup(family, &[("route", "b"), ("cache", "hit")]).is_none());
        prune(&|labels| !labels.contains(&("route", "a")));
        assert!(lookup(family, &[("route", "a"), ("cache", "hit")]).is_none());
    }
}

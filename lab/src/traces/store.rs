//! The receiver's memory: recent traces in arrival order, bounded twice, by traces and by spans,
//! because one deep trace (a fan-out of hundreds of calls) must not hold the memory a thousand
//! small ones would. When either bound is passed the trace that arrived first goes, whole, and
//! is counted; a trace never outgrows `max_spans` alone (its further spans are dropped and
//! counted). Pure: no IO, no clock.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{ReceivedSpan, Trace, TraceList, TraceSummary};

/// How much the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_traces: usize,
    pub max_spans: usize,
}

impl Default for Bounds {
    /// A bench run of a thousand uncached `/data/complex` requests (nine spans each) fits whole.
    /// Measured: 2,000 such traces (18,000 spans) grew `up`'s resident memory from 19 MB to
    /// 46 MB, about 1.5 KB a span, so the span bound is about 50 MB.
    fn default() -> Self {
        Bounds {
            max_traces: 2_000,
            max_spans: 32_768,
        }
    }
}

/// The held traces.
#[derive(Debug)]
pub struct Store {
    bounds: Bounds,
    traces: HashMap<String, Vec<ReceivedSpan>>,
    /// Trace ids by the arrival of their first span, oldest first.
    order: VecDeque<String>,
    spans: usize,
    evicted_traces: u64,
    evicted_spans: u64,
}

impl Store {
    /// An empty store; a bound of zero is taken as one.
    pub fn new(bounds: Bounds) -> Store {
        Store {
            bounds: Bounds {
                max_traces: bounds.max_traces.max(1),
                max_spans: bounds.max_spans.max(1),
            },
            traces: HashMap::new(),
            order: VecDeque::new(),
            spans: 0,
            evicted_traces: 0,
            evicted_spans: 0,
        }
    }

    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Adds spans (one export: any traces, in any order), evicting the oldest traces as needed.
    pub fn insert(&mut self, spans: Vec<ReceivedSpan>) {
        for span in spans {
            let id = span.trace_id.clone();
            let order = &mut self.order;
            let held = self.traces.entry(id.clone()).or_insert_with(|| {
                order.push_back(id.clone());
                Vec::new()
            });
            if held.len() >= self.bounds.max_spans {
                self.evicted_spans += 1;
                continue;
            }
            held.push(span);
            self.spans += 1;
            self.evict_beside(&id);
        }
    }

    /// Evicts the oldest traces but `keep` (the one just written to, which alone is within the
    /// bounds) until both bounds hold.
    fn evict_beside(&mut self, keep: &str) {
        while self.traces.len() > self.bounds.max_traces || self.spans > self.bounds.max_spans {
            let Some(index) = self.order.iter().position(|id| id != keep) else {
                return;
            };
            let Some(id) = self.order.remove(index) else {
                return;
            };
            if let Some(spans) = self.traces.remove(&id) {
                self.spans -= spans.len();
                self.evicted_spans += spans.len() as u64;
                self.evicted_traces += 1;
            }
        }
    }

    /// One trace's spans by start time, or `None` when it is not held.
    pub fn trace(&self, id: &str) -> Option<Trace> {
        let mut spans = self.traces.get(id)?.clone();
        spans.sort_by_key(|span| (span.start_ns, std::cmp::Reverse(span.end_ns)));
        Some(Trace {
            trace_id: id.to_owned(),
            spans,
        })
    }

    /// Every held trace, newest first, with the counts.
    pub fn list(&self) -> TraceList {
        let traces = self
            .order
            .iter()
            .rev()
            .filter_map(|id| {
                let spans = self.traces.get(id)?;
                let root = root(spans)?;
                Some(TraceSummary {
                    trace_id: id.clone(),
                    root: root.name.clone(),
                    service: root.service.clone(),
                    start_ns: root.start_ns,
                    duration_ns: root.duration_ns(),
                    spans: spans.len(),
                })
            })
            .collect();
        TraceList {
            traces,
            held_spans: self.spans,
            max_traces: self.bounds.max_traces,
            max_spans: self.bounds.max_spans,
            evicted_traces: self.evicted_traces,
            evicted_spans: self.evicted_spans,
        }
    }
}

/// The root of a trace: of the spans whose parent is not held (none, or a caller's span that
/// was never exported), the earliest, and of those the longest.
pub fn root(spans: &[ReceivedSpan]) -> Option<&ReceivedSpan> {
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    spans
        .iter()
        .filter(|span| !ids.contains(span.parent_span_id.as_str()))
        .min_by_key(|span| (span.start_ns, std::cmp::Reverse(span.end_ns)))
}

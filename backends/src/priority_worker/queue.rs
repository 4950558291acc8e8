//! The worker's ordering policy, pure and without IO: high before normal before low, FIFO within a level, and aging
//! so that a task that has waited at least the aging bound goes before every fresh task (oldest aged task first).
//!
//! Entries are ordered by their sequence number, never by payload (the seed compared task dicts and crashed).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A task's priority level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Served first.
    High,
    /// The default.
    Normal,
    /// Served last unless it has aged.
    Low,
}

impl Priority {
    /// Every level, from most to least urgent; also the lane order of [`Queue`].
    pub const ALL: [Self; 3] = [Self::High, Self::Normal, Self::Low];

    /// The lowercase name used in JSON, query strings and metric labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    const fn lane(self) -> usize {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = String;

    /// Parses `high`, `normal` or `low`, ignoring case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("invalid priority {text:?}: expected high, normal or low"))
    }
}

/// One waiting task.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<T> {
    /// Global enqueue order; unique and increasing.
    pub seq: u64,
    /// The task's level.
    pub priority: Priority,
    /// Unix seconds when the task was accepted (kept across restarts, so aging survives them).
    pub enqueued_at: f64,
    /// The payload; the policy never looks at it.
    pub item: T,
}

/// What the policy needs to know about the head (oldest entry) of one lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Head {
    /// The head's sequence number.
    pub seq: u64,
    /// The head's enqueue time in unix seconds.
    pub enqueued_at: f64,
}

/// Picks the lane to serve next from the heads of the high, normal and low lanes.
///
/// Heads that have waited at least `aging_bound` seconds win, oldest (lowest seq) first; otherwise the most urgent
/// non-empty lane wins. Checking heads is enough because each lane is FIFO, so its head is its longest waiter.
#[must_use]
pub fn next_lane(heads: [Option<Head>; 3], now: f64, aging_bound: f64) -> Option<Priority> {
    let aged = Priority::ALL
        .into_iter()
        .zip(heads)
        .filter_map(|(priority, head)| head.map(|head| (priority, head)))
        .filter(|(_, head)| now - head.enqueued_at >= aging_bound)
        .min_by_key(|(_, head)| head.seq)
        .map(|(priority, _)| priority);
    aged.or_else(|| {
        Priority::ALL
            .into_iter()
            .zip(heads)
            .find_map(|(priority, head)| head.map(|_| priority))
    })
}

/// Three FIFO lanes plus the aging bound.
#[derive(Debug)]
pub struct Queue<T> {
    lanes: [VecDeque<Entry<T>>; 3],
    aging_bound: f64,
}

impl<T> Queue<T> {
    /// An empty queue; a task waiting `aging` or longer overtakes fresh tasks of any level.
    #[must_use]
    pub fn new(aging: Duration) -> Self {
        Self {
            lanes: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            aging_bound: aging.as_secs_f64(),
        }
    }

    /// Changes the aging bound; tasks already queued are judged by the new bound from the next pop on.
    pub fn set_aging(&mut self, aging: Duration) {
        self.aging_bound = aging.as_secs_f64();
    }

    /// The aging bound.
    #[must_use]
    pub fn aging(&self) -> Duration {
        Duration::from_secs_f64(self.aging_bound)
    }

    /// Adds an entry and returns how many tasks now wait at its level (the seed's `position`).
    ///
    /// Entries normally arrive in seq order; one that does not (recovery) is inserted at its seq position so each
    /// lane stays sorted.
    pub fn push(&mut self, entry: Entry<T>) -> usize {
        let lane = &mut self.lanes[entry.priority.lane()];
        let at = lane.partition_point(|waiting| waiting.seq < entry.seq);
        lane.insert(at, entry);
        lane.len()
    }

    /// Removes and returns the entry to run next at time `now` (unix seconds).
    pub fn pop(&mut self, now: f64) -> Option<Entry<T>> {
        let heads = [0, 1, 2].map(|lane| {
            self.lanes[lane].front().map(|entry| Head {
                seq: entry.seq,
                enqueued_at: entry.enqueued_at,
            })
        });
        let priority = next_lane(heads, now, self.aging_bound)?;
        self.lanes[priority.lane()].pop_front()
    }

    /// How many tasks wait at this level.
    #[must_use]
    pub fn len(&self, priority: Priority) -> usize {
        self.lanes[priority.lane()].len()
    }

    /// Whether nothing waits at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(VecDeque::is_empty)
    }
}

#[cfg(test)]
mod tests;

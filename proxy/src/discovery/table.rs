//! `Table`: the last good set of every DNS source, by (group, source), with what the latest
//! resolution said. It is read when a snapshot is built and written by the source's task, so its
//! one mutex is never taken on the request path.

use scalelab_common::sync::lock;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

/// One DNS source of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Source {
    /// A and AAAA records of `name`, each address with `port`.
    #[serde(rename = "A")]
    Name { name: String, port: u16 },
    /// SRV records of `name`, each target's addresses with the record's port.
    #[serde(rename = "SRV")]
    Srv { name: String },
}

impl Source {
    pub fn name(&self) -> &str {
        match self {
            Source::Name { name, .. } | Source::Srv { name } => name,
        }
    }

    pub fn record(&self) -> &'static str {
        match self {
            Source::Name { .. } => "A",
            Source::Srv { .. } => "SRV",
        }
    }
}

/// One server a resolution found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Found {
    pub addr: SocketAddr,
    /// The SRV record's weight (at least 1); `None` for an A/AAAA address (the entry's weight).
    pub weight: Option<u32>,
    /// The SRV record's priority; 0 for an A/AAAA address.
    pub priority: u16,
    /// The SRV record's target; empty for an A/AAAA address.
    pub target: String,
}

/// What the table keeps of one source.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The servers the group uses now: the last good answer (sorted).
    pub servers: Vec<Found>,
    /// Since when every answer has been NXDOMAIN or empty (for `max_stale`).
    pub empty_since: Option<Instant>,
    /// The latest resolution's result (`ok`, `empty`, `error`, `timeout`) and detail.
    pub last_result: &'static str,
    pub last_detail: String,
    pub resolutions: u64,
}

/// Every source's entry, and resolutions counted by (name, result) for the metrics.
#[derive(Debug, Default)]
pub struct Table {
    entries: Mutex<HashMap<(String, Source), Entry>>,
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Table {
    /// A copy of the entry of `source` in `group`, if it was ever resolved.
    pub fn entry(&self, group: &str, source: &Source) -> Option<Entry> {
        lock(&self.entries)
            .get(&(group.to_string(), source.clone()))
            .cloned()
    }

    /// Changes the entry of `source` in `group` with `change`, creating it first.
    pub fn update<T>(
        &self,
        group: &str,
        source: &Source,
        change: impl FnOnce(&mut Entry) -> T,
    ) -> T {
        let mut entries = lock(&self.entries);
        change(
            entries
                .entry((group.to_string(), source.clone()))
                .or_default(),
        )
    }

    /// Forgets the sources `keep` refuses (a reload removed them).
    pub fn retain(&self, keep: impl Fn(&str, &Source) -> bool) {
        lock(&self.entries).retain(|(group, source), _| keep(group, source));
    }

    /// Every entry, sorted, for the admin API.
    pub fn entries(&self) -> Vec<((String, Source), Entry)> {
        let mut all: Vec<_> = lock(&self.entries)
            .iter()
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Counts one resolution of `name`.
    pub fn count(&self, name: &str, result: &'static str) {
        *lock(&self.counts)
            .entry((name.to_string(), result))
            .or_default() += 1;
    }

    pub fn counts(&self) -> Vec<((String, &'static str), u64)> {
        lock(&self.counts)
            .iter()
            .map(|(key, count)| (key.clone(), *count))
            .collect()
    }
}

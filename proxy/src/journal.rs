//! The vocabulary of config reloads: what triggered one (`Trigger`), what it did (`Record`),
//! and the bounded journal that `GET /admin/reloads` shows. The state holder keeps the journal
//! and `reload` writes it, so it depends on neither.

pub use scalelab_common::problem::Problem;
use scalelab_common::sync::lock;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// How many reloads the journal keeps; older ones are dropped first.
pub const JOURNAL_CAPACITY: usize = 50;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The first load, when the process started.
    Startup,
    /// The file watcher saw the file change.
    File,
    /// SIGHUP.
    Signal,
    /// `POST /admin/reload`.
    Api,
    /// A certificate or key file of `[[tls.certificates]]` changed on disk.
    Certificate,
    /// A name's DNS answer changed (`discovery`): only that group's servers changed.
    Dns,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::File => "file",
            Trigger::Signal => "signal",
            Trigger::Api => "api",
            Trigger::Certificate => "certificate",
            Trigger::Dns => "dns",
        }
    }
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new snapshot is serving.
    Applied,
    /// The file was unreadable or invalid; the running config keeps serving.
    Rejected,
    /// The file's text, and the certificate files it names, are what is already running, so
    /// nothing was rebuilt.
    Unchanged,
}

/// Whether a changed field took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Effect {
    #[serde(rename = "applied")]
    Applied,
    #[serde(rename = "restart required")]
    RestartRequired,
}

/// One field that differs between the running config and the new one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Path in the effective config, such as `upstreams.gateways.servers[1].weight`.
    pub path: String,
    /// `null` when the field was added.
    pub old: Value,
    /// `null` when the field was removed.
    pub new: Value,
    pub effect: Effect,
}

/// One journal entry: everything a user needs to understand what a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The generation serving after this reload (the old one when nothing was applied).
    pub generation: u64,
    /// RFC 3339 with milliseconds, UTC.
    pub time: String,
    pub unix_ms: u64,
    pub trigger: Trigger,
    pub result: Outcome,
    /// sha256 of the file text this reload read (empty when it could not be read).
    pub sha256: String,
    /// Time from reading the file to the new snapshot serving.
    pub duration_us: u64,
    /// Every problem of a rejected file.
    pub errors: Vec<Problem>,
    pub changes: Vec<Change>,
    /// What a `dns` change did: the group, the name and the addresses it added and removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsChange>,
}

/// A DNS answer that changed a group's servers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsChange {
    pub upstream: String,
    pub name: String,
    /// `A` (A and AAAA) or `SRV`.
    pub record: &'static str,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The servers the name gives the group now.
    pub servers: usize,
}

impl Record {
    pub fn restart_required(&self) -> Vec<&str> {
        self.changes
            .iter()
            .filter(|change| change.effect == Effect::RestartRequired)
            .map(|change| change.path.as_str())
            .collect()
    }
}

/// The newest `JOURNAL_CAPACITY` reloads, newest first.
#[derive(Debug, Default)]
pub struct Journal {
    records: Mutex<VecDeque<Record>>,
    /// Reloads since start by outcome (applied, rejected, unchanged), for the metrics; the
    /// records themselves are bounded.
    totals: [AtomicU64; 3],
    last_applied_unix_ms: AtomicU64,
}

/// Reload counts since the process started.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub applied: u64,
    pub rejected: u64,
    pub unchanged: u64,
    pub last_applied_unix_ms: u64,
}

impl Journal {
    pub fn push(&self, record: Record) {
        let slot = match record.result {
            Outcome::Applied => 0,
            Outcome::Rejected => 1,
            Outcome::Unchanged => 2,
        };
        // The start-up load is not a reload.
        if record.trigger != Trigger::Startup {
            self.totals[slot].fetch_add(1, Ordering::Relaxed);
        }
        if record.result == Outcome::Applied {
            self.last_applied_unix_ms
                .store(record.unix_ms, Ordering::Relaxed);
        }
        let mut records = lock(&self.records);
        records.push_front(record);
        records.truncate(JOURNAL_CAPACITY);
    }

    pub fn totals(&self) -> Totals {
        let load = |i: usize| self.totals[i].load(Ordering::Relaxed);
        Totals {
            applied: load(0),
            rejected: load(1),
            unchanged: load(2),
            last_applied_unix_ms: self.last_applied_unix_ms.load(Ordering::Relaxed),
        }
    }

    /// A copy of the journal, newest first.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.records).iter().cloned().collect()
    }
}

/// The wall-clock time as (RFC 3339, unix milliseconds).
pub fn now() -> (String, u64) {
    let since_epoch = scalelab_common::clock::since_epoch();
    let now = std::time::UNIX_EPOCH + since_epoch;
    let unix_ms = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
    (humantime::format_rfc3339_millis(now).to_string(), unix_ms)
}

/// Hex sha256 of the file text, so users can tell which version of the file is running.
pub fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

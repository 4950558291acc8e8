//! The vocabulary of config reloads: what triggered one (`Trigger`), what it did (`Record`), the
//! bounded journal that `GET /admin/reloads` shows, and `diff`, which compares two configs
//! field by field so that every reload can say what changed and whether it was applied.
//!
//! The reload itself lives in `state::Shared::reload`, the single entry point that every
//! trigger (file watcher, SIGHUP, admin API) goes through.

#[cfg(test)]
mod tests;

use crate::config::{Config, ConfigError};
use scalelab_common::problem::Problem;
use scalelab_common::sync::lock;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many reloads the journal keeps; older ones are dropped first.
pub const JOURNAL_CAPACITY: usize = 50;

/// Fields that only take effect when the process starts: the listeners and the runtime are
/// built once, and pingora's grace period is fixed in its `ServerConf`. A reload reports
/// changes to them as "restart required" and keeps the running values.
pub const RESTART_ONLY: &[&str] = &[
    "proxy.listen",
    "proxy.admin_listen",
    "proxy.threads",
    "proxy.shutdown_timeout",
];

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
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::File => "file",
            Trigger::Signal => "signal",
            Trigger::Api => "api",
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
    /// The file's text is the one already running, so nothing was rebuilt.
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
    totals: [std::sync::atomic::AtomicU64; 3],
    last_applied_unix_ms: std::sync::atomic::AtomicU64,
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
        use std::sync::atomic::Ordering;
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
        use std::sync::atomic::Ordering;
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

/// Hex sha256 of the file text, so users can tell which version of the file is running.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    hex
}

/// The journal's view of a `ConfigError`: one entry per problem, with path and line kept apart;
/// an unreadable file is one problem without a path.
pub fn problems(error: &ConfigError) -> Vec<Problem> {
    match error {
        ConfigError::Read { .. } => vec![Problem::new(String::new(), error.to_string())],
        ConfigError::Invalid { problems, .. } => problems.clone(),
    }
}

/// The wall-clock time as (RFC 3339, unix milliseconds).
pub fn now() -> (String, u64) {
    let since_epoch = scalelab_common::clock::since_epoch();
    let now = std::time::UNIX_EPOCH + since_epoch;
    let unix_ms = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
    (humantime::format_rfc3339_millis(now).to_string(), unix_ms)
}

/// Whether a change at `path` needs a restart.
pub fn is_restart_only(path: &str) -> bool {
    RESTART_ONLY.iter().any(|field| {
        path == *field
            || path
                .strip_prefix(field)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// Every leaf that differs between two configs, by path. Both are compared in their
/// serialized (effective, defaults filled in) form, so the diff names the same fields that
/// `GET /admin/config` shows, and stays correct when sections are added to `Config`.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let old = serde_json::to_value(old).unwrap_or(Value::Null);
    let new = serde_json::to_value(new).unwrap_or(Value::Null);
    let mut changes = Vec::new();
    diff_values("", &old, &new, &mut changes);
    changes
}

fn diff_values(path: &str, old: &Value, new: &Value, changes: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(old_map), Value::Object(new_map)) => {
            for (key, old_value) in old_map {
                let child = join(path, key);
                match new_map.get(key) {
                    Some(new_value) => diff_values(&child, old_value, new_value, changes),
                    None => push(changes, child, old_value.clone(), Value::Null),
                }
            }
            for (key, new_value) in new_map {
                if !old_map.contains_key(key) {
                    push(changes, join(path, key), Value::Null, new_value.clone());
                }
            }
        }
        // A list of addresses is one setting, so it is reported whole; lists of tables
        // (servers, routes) are compared by position so a weight change names its server.
        (Value::Array(old_items), Value::Array(new_items))
            if old_items.iter().chain(new_items).all(Value::is_object) =>
        {
            for index in 0..old_items.len().max(new_items.len()) {
                let child = format!("{path}[{index}]");
                match (old_items.get(index), new_items.get(index)) {
                    (Some(a), Some(b)) => diff_values(&child, a, b, changes),
                    (Some(a), None) => push(changes, child, a.clone(), Value::Null),
                    (None, Some(b)) => push(changes, child, Value::Null, b.clone()),
                    (None, None) => {}
                }
            }
        }
        _ if old == new => {}
        _ => push(changes, path.to_string(), old.clone(), new.clone()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn push(changes: &mut Vec<Change>, path: String, old: Value, new: Value) {
    let effect = if is_restart_only(&path) {
        Effect::RestartRequired
    } else {
        Effect::Applied
    };
    changes.push(Change {
        path,
        old,
        new,
        effect,
    });
}

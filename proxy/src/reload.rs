//! Config reloads: `apply`/`reload`, the single path every trigger (file watcher, SIGHUP,
//! admin API) takes, and `diff`, which compares two configs field by field so that every
//! reload can say what changed and whether it was applied. What a reload did is recorded in
//! the `journal`.

mod apply;
#[cfg(test)]
mod tests;

pub use crate::journal::{
    now, sha256_hex, Change, Effect, Journal, Outcome, Problem, Record, Totals, Trigger,
};
pub use apply::{apply, reload};

use crate::config::{Config, ConfigError};
use serde_json::Value;

/// Fields that only take effect when the process starts: the listeners and the runtime are
/// built once, and pingora's grace period is fixed in its `ServerConf`. A reload reports
/// changes to them as "restart required" and keeps the running values.
pub const RESTART_ONLY: &[&str] = &[
    "proxy.listen",
    "proxy.tls_listen",
    "proxy.admin_listen",
    "proxy.threads",
    "proxy.shutdown_timeout",
    // Built into the listeners' server options and connection limits at start.
    "proxy.client_header_timeout",
    "proxy.max_connections",
    // Pingora reads it from the listener's server options, fixed when the listener is built.
    "proxy.h2c",
    // Built into the TLS listeners' rustls config at start; certificates are live.
    "tls.min_version",
];

/// The journal's view of a `ConfigError`: one entry per issue, with path and line kept apart.
pub fn problems(error: &ConfigError) -> Vec<Problem> {
    match error {
        ConfigError::Read { .. } => vec![Problem::new(String::new(), error.to_string())],
        ConfigError::Invalid { problems, .. } => problems.clone(),
    }
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

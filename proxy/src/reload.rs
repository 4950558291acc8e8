//! Config reloads: `apply`/`reload`, the single path every trigger (file watcher, SIGHUP,
//! admin API) takes, and `diff`, which compares two configs field by field so that every
//! reload can say what changed and whether it was applied. What a reload did is recorded in
//! the `journal`.

mod apply;
pub mod swap;
#[cfg(test)]
mod tests;

pub use crate::journal::{
    now, sha256_hex, Change, Effect, Journal, Outcome, Problem, Record, Totals, Trigger,
};
pub use apply::{apply, reload};

use crate::config::{Config, ConfigError};
use serde_json::Value;

/// The journal's view of a `ConfigError`: one entry per issue, with path and line kept apart.
pub fn problems(error: &ConfigError) -> Vec<Problem> {
    match error {
        ConfigError::Read { .. } => vec![Problem::new(String::new(), error.to_string())],
        ConfigError::Invalid { problems, .. } => problems.clone(),
    }
}

/// Every leaf that differs between the running config and a new one, by path. The startup
/// part (`config::Startup`: listeners, threads, TLS listener settings, client limits built
/// into the listeners) is compared field by field and each difference is "restart required";
/// the rest is compared with the startup part held at the running values, and each
/// difference is applied. Both are compared in their serialized (effective, defaults filled
/// in) form, so the diff names the same fields that `GET /admin/config` shows, and stays
/// correct when sections are added to `Config`.
pub fn diff(running: &Config, new: &Config) -> Vec<Change> {
    let running_startup = running.startup();
    let pending = running_startup.pending(&new.startup());
    let live = new.clone().with_startup(running_startup);
    let old = serde_json::to_value(running).unwrap_or(Value::Null);
    let live = serde_json::to_value(&live).unwrap_or(Value::Null);
    let mut changes = Vec::new();
    diff_values("", &old, &live, &mut changes);
    changes.extend(pending.into_iter().map(|field| Change {
        path: field.path,
        old: field.running,
        new: field.pending,
        effect: Effect::RestartRequired,
    }));
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
    changes.push(Change {
        path,
        old,
        new,
        effect: Effect::Applied,
    });
}

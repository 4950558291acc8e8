#![allow(clippy::unwrap_used)]

use super::*;
use crate::journal::JOURNAL_CAPACITY;
use std::path::Path;

fn config(weight: u32, extra_route: bool, threads: usize) -> Config {
    let mut text = format!(
        "[proxy]\nlisten = [\"127.0.0.1:8080\"]\nthreads = {threads}\n\n\
         [upstreams.gateways]\nservers = [{{ addr = \"127.0.0.1:9001\" }}, {{ addr = \"127.0.0.1:9002\", weight = {weight} }}]\n\n\
         [[routes]]\nname = \"all\"\npath = \"/\"\nupstream = \"gateways\"\n"
    );
    if extra_route {
        text.push_str("\n[[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"gateways\"\n");
    }
    crate::config::parse(Path::new("config.toml"), &text).unwrap()
}

#[test]
fn diff_names_each_changed_leaf_by_its_path() {
    let changes = diff(&config(1, false, 2), &config(5, false, 2));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].path, "upstreams.gateways.servers[1].weight");
    assert_eq!(changes[0].old, serde_json::json!(1));
    assert_eq!(changes[0].new, serde_json::json!(5));
    assert_eq!(changes[0].effect, Effect::Applied);
}

#[test]
fn diff_reports_added_and_removed_table_entries_whole() {
    let added = diff(&config(1, false, 2), &config(1, true, 2));
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].path, "routes[1]");
    assert_eq!(added[0].old, Value::Null);
    assert_eq!(added[0].new["path"], "/api");
    let removed = diff(&config(1, true, 2), &config(1, false, 2));
    assert_eq!(removed[0].path, "routes[1]");
    assert_eq!(removed[0].new, Value::Null);
}

#[test]
fn restart_only_fields_are_marked() {
    let changes = diff(&config(1, false, 2), &config(1, false, 4));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "proxy.threads");
    assert_eq!(changes[0].effect, Effect::RestartRequired);
    assert_eq!(
        serde_json::to_value(Effect::RestartRequired).unwrap(),
        "restart required"
    );
}

/// Issue 23: `client_header_timeout` and `max_connections` were missing from one of the two
/// lists of restart-only fields, and `access_log` is applied by a reload.
#[test]
fn every_startup_field_is_restart_required_and_the_rest_applied() {
    let base = "[proxy]\nlisten = [\"127.0.0.1:8080\"]\n";
    let tail = "\n[upstreams.g]\nservers = [{ addr = \"127.0.0.1:9001\" }]\n\n\
                [[routes]]\nname = \"all\"\npath = \"/\"\nupstream = \"g\"\n";
    let parse = |extra: &str| {
        crate::config::parse(Path::new("config.toml"), &format!("{base}{extra}{tail}")).unwrap()
    };
    let running = parse("");
    for (extra, path, effect) in [
        (
            "client_header_timeout = \"3s\"\n",
            "proxy.client_header_timeout",
            Effect::RestartRequired,
        ),
        (
            "max_connections = 7\n",
            "proxy.max_connections",
            Effect::RestartRequired,
        ),
        ("h2c = true\n", "proxy.h2c", Effect::RestartRequired),
        (
            "shutdown_timeout = \"3s\"\n",
            "proxy.shutdown_timeout",
            Effect::RestartRequired,
        ),
        (
            "client_body_timeout = \"3s\"\n",
            "proxy.client_body_timeout",
            Effect::Applied,
        ),
        (
            "access_log = { format = \"json\" }\n",
            "proxy.access_log.format",
            Effect::Applied,
        ),
    ] {
        let changes = diff(&running, &parse(extra));
        assert_eq!(changes.len(), 1, "{extra}: {changes:?}");
        assert_eq!(changes[0].path, path, "{extra}");
        assert_eq!(changes[0].effect, effect, "{extra}");
    }
    let both = diff(
        &running,
        &parse("max_connections = 7\nmax_header_bytes = 1024\n"),
    );
    let named: Vec<(&str, Effect)> = both.iter().map(|c| (c.path.as_str(), c.effect)).collect();
    assert_eq!(
        named,
        [
            ("proxy.max_header_bytes", Effect::Applied),
            ("proxy.max_connections", Effect::RestartRequired)
        ]
    );
}

#[test]
fn a_reload_keeps_the_running_startup_values() {
    let running = config(1, false, 2);
    let kept = config(5, false, 4).with_startup(running.startup());
    assert_eq!(kept.startup(), running.startup());
    assert_eq!(kept.proxy().threads, 2);
    assert_eq!(kept.upstreams()["gateways"].servers[1].weight, 5);
}

#[test]
fn equal_configs_have_no_diff() {
    assert!(diff(&config(3, true, 2), &config(3, true, 2)).is_empty());
}

#[test]
fn sha256_is_lowercase_hex() {
    assert_eq!(
        sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn journal_keeps_the_newest_first_and_is_bounded() {
    let journal = Journal::default();
    for generation in 0..(JOURNAL_CAPACITY as u64 + 10) {
        let (time, unix_ms) = now();
        journal.push(Record {
            generation,
            time,
            unix_ms,
            trigger: Trigger::Api,
            result: Outcome::Applied,
            sha256: String::new(),
            duration_us: 0,
            errors: Vec::new(),
            changes: Vec::new(),
            dns: None,
        });
    }
    let records = journal.records();
    assert_eq!(records.len(), JOURNAL_CAPACITY);
    assert_eq!(records[0].generation, JOURNAL_CAPACITY as u64 + 9);
    assert!(records[0].time.ends_with('Z'));
}

#[test]
fn problems_keep_path_and_line_apart() {
    let path = Path::new("config.toml");
    let error = crate::config::parse(path, "[proxy]\nthreads = 0\n").unwrap_err();
    let problems = problems(&error);
    let threads = problems.iter().find(|p| p.path == "proxy.threads").unwrap();
    assert_eq!(threads.line, Some(2));
}

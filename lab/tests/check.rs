//! `scalelab check` on the real binaries: what it prints for a file that is not TOML.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{build_siblings, scalelab};

#[test]
fn a_toml_syntax_error_is_reported_once() {
    let bin_dir = build_siblings();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[proxy]\nlisten = [\"127.0.0.1:8000\"\nbroken_marker = 1\n",
    )
    .unwrap();
    let output = Command::new(scalelab())
        .args(["check", "--config"])
        .arg(&config)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    // The proxy's check, [lab] and [auth] each used to report the same parse error; once is enough.
    let all = format!("{stdout}{stderr}");
    assert_eq!(
        all.matches("missing comma between array elements").count(),
        1,
        "{all}"
    );
    assert_eq!(all.matches("broken_marker").count(), 1, "{all}");
    assert!(
        stderr.contains("is not valid TOML, so none of its tables was checked"),
        "{stderr}"
    );
}

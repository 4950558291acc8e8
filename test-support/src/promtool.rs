//! `promtool check metrics` (Debian's `prometheus` package, installed by
//! `scripts/install-deps.sh`) on a Prometheus text exposition.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `text`, the exposition of `what`; it must exit 0 and print
/// nothing (promtool prints every lint problem it finds).
pub fn assert_promtool_clean(what: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run promtool ({error}); scripts/install-deps.sh installs it with Debian's prometheus package"
            )
        });
    // Dropping stdin after the write closes it, which is what ends promtool's read.
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("write the exposition to promtool");
    let output = child.wait_with_output().expect("promtool ran");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics on the {what} exposition: {}\n{report}",
        output.status
    );
}

//! The validated `[proxy] access_log` table: where the one line per request goes and in which
//! format. Live: a reload switches the path, the format and `enabled`
//! (`access_log::reconfigure`).

use std::path::PathBuf;

/// How an access-log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// nginx's `combined` line followed by scalelab's fields as `key=value`.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[proxy] access_log = { path = "...", format = "text" | "json", enabled = true }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AccessLogSettings {
    /// On by default; off only to measure what the log costs or when another layer logs.
    pub enabled: bool,
    /// The file lines are appended to (reopened on SIGUSR1); `None` is standard error.
    pub path: Option<PathBuf>,
    pub format: AccessLogFormat,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        AccessLogSettings {
            enabled: true,
            path: None,
            format: AccessLogFormat::Text,
        }
    }
}

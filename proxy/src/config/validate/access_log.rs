//! The `[proxy] access_log` table.

use crate::config::file::FileAccessLog;
use crate::config::{AccessLogFormat, AccessLogSettings};
use scalelab_common::problem::Problems;
use std::path::PathBuf;

pub(super) fn validate_access_log(
    file: Option<&FileAccessLog>,
    problems: &mut Problems,
) -> AccessLogSettings {
    let defaults = AccessLogSettings::default();
    let Some(file) = file else { return defaults };
    let format = match file.format.as_deref() {
        None | Some("text") => AccessLogFormat::Text,
        Some("json") => AccessLogFormat::Json,
        Some(other) => {
            problems.push(
                "proxy.access_log.format",
                format!("unknown format \"{other}\" (expected \"text\" or \"json\")"),
            );
            defaults.format
        }
    };
    let path = match file.path.as_deref() {
        Some("") => {
            problems.push(
                "proxy.access_log.path",
                "is empty (leave it out to log to standard error)",
            );
            None
        }
        other => other.map(PathBuf::from),
    };
    AccessLogSettings {
        enabled: file.enabled.unwrap_or(defaults.enabled),
        path,
        format,
    }
}

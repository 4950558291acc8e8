//! The `[tracing]` table.

use super::check::Check;
use crate::config::file::FileTracing;
use crate::config::tracing::TracingSettings;
use crate::config::units::DurationKind;
use scalelab_common::problem::Problems;
use std::time::Duration;

pub(super) fn validate_tracing(file: &FileTracing, problems: &mut Problems) -> TracingSettings {
    match file.protocol.as_deref() {
        None | Some("http/protobuf") => {}
        Some("grpc") => problems.push(
            "tracing.protocol",
            "\"grpc\" is not built into this proxy (it would bring tonic's transport); use \
             \"http/protobuf\" to the collector's OTLP/HTTP port (4318)",
        ),
        Some(other) => problems.push(
            "tracing.protocol",
            format!("unknown protocol \"{other}\" (expected \"http/protobuf\")"),
        ),
    }
    let otlp_endpoint = match file.otlp_endpoint.as_deref() {
        None => None,
        Some(text) => match text.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some() =>
            {
                Some(text.to_string())
            }
            _ => {
                problems.push(
                    "tracing.otlp_endpoint",
                    format!(
                        "\"{text}\" is not an http:// or https:// URL with a host (for example \
                         \"http://127.0.0.1:4318\")"
                    ),
                );
                None
            }
        },
    };
    let sample_ratio = match file.sample_ratio {
        None => 1.0,
        Some(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
        Some(ratio) => {
            problems.push(
                "tracing.sample_ratio",
                format!("{ratio} is not between 0 and 1"),
            );
            1.0
        }
    };
    let service_name = match file.service_name.as_deref() {
        None => "scalelab-proxy".to_string(),
        Some("") => {
            problems.push("tracing.service_name", "is empty");
            "scalelab-proxy".to_string()
        }
        Some(name) => name.to_string(),
    };
    let mut headers = Vec::new();
    for (name, value) in file.headers.iter().flatten() {
        let path = format!("tracing.headers.{name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(path, "is not a valid header name");
        } else if http::HeaderValue::from_str(value).is_err() {
            problems.push(path, "is not a valid header value");
        } else {
            headers.push((name.clone(), value.clone()));
        }
    }
    TracingSettings {
        otlp_endpoint,
        sample_ratio,
        service_name,
        headers,
        timeout: problems.duration(
            "tracing.timeout",
            file.timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(5),
        ),
    }
}

//! The validated `[tracing]` table. Live: a reload that changes it swaps the exporter
//! (`crate::trace::reconfigure`); without the table the proxy passes `traceparent` on untouched
//! and does no tracing work at all.

use sha2::{Digest, Sha256};
use std::time::Duration;

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TracingSettings {
    /// The OTLP/HTTP collector's base URL; `None`: trace context is read, started and forwarded
    /// and the access log names the trace, but no span is exported.
    pub otlp_endpoint: Option<String>,
    /// Of a request that arrives without a sampled `traceparent`: the share whose spans are
    /// recorded (parent-based: a sampled parent is always followed, an unsampled one never).
    pub sample_ratio: f64,
    pub service_name: String,
    /// Sent with every export (a collector's authorization); shown by `/admin/config` as a
    /// hash prefix, never as sent.
    #[serde(serialize_with = "redacted")]
    pub headers: Vec<(String, String)>,
    #[serde(with = "super::humantime_serde_compat")]
    pub timeout: Duration,
}

impl TracingSettings {
    /// The export's part of the settings; `None` without an endpoint.
    pub fn export(&self) -> Option<scalelab_common::trace::export::ExportSettings> {
        self.otlp_endpoint
            .as_ref()
            .map(|endpoint| scalelab_common::trace::export::ExportSettings {
                endpoint: endpoint.clone(),
                headers: self.headers.clone(),
                service_name: self.service_name.clone(),
                timeout: self.timeout,
            })
    }
}

fn redacted<S: serde::Serializer>(headers: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(headers.len()))?;
    for (name, value) in headers {
        let digest = Sha256::digest(value.as_bytes());
        let prefix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        map.serialize_entry(name, &format!("sha256:{prefix}"))?;
    }
    map.end()
}

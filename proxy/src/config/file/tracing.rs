//! `[tracing]` as written: where spans are exported and which requests are sampled.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `[tracing] otlp_endpoint = "http://127.0.0.1:4318"`, `protocol`, `sample_ratio`,
/// `service_name`, `headers = { authorization = "..." }`, `timeout`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTracing {
    pub otlp_endpoint: Option<String>,
    pub protocol: Option<String>,
    pub sample_ratio: Option<f64>,
    pub service_name: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout: Option<String>,
}

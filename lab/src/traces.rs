//! The lab's own trace collector (issue 29 §3): `scalelab up --observe` runs a small OTLP/HTTP
//! receiver unless `[lab] otlp_endpoint` names a real collector, and the lab's proxies and
//! services export their spans to it; `scalelab trace <id>` and the bench report read it back
//! and draw a trace as a waterfall (`plot::waterfall`).
//!
//! - `store`: the recent traces, bounded by traces and by spans, oldest evicted and counted; pure.
//! - `receiver`: the HTTP side: `POST /v1/traces` (protobuf, decoded by
//!   `scalelab_common::trace::received`), `GET /traces`, `GET /traces/{id}`.
//! - `client`: fetching a trace, `scalelab trace`'s file, and the slowest trace of a bench scenario.
//!
//! `up` writes the receiver's URL into the data dir (`url_file`), so the other commands, which
//! read the same config file, find it without a flag.

pub mod client;
pub mod receiver;
pub mod store;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::{ChildSpec, Stage};

pub use scalelab_common::trace::received::ReceivedSpan;

/// OTLP/HTTP's usual port, taken when it is free so that a collector configured by hand for the
/// default finds the lab's receiver; otherwise any free port, printed in the banner.
pub const PREFERRED_PORT: u16 = 4318;

/// Where `up` writes the receiver's base URL while it runs.
pub fn url_file(data_dir: &Path) -> PathBuf {
    data_dir.join("trace-receiver.url")
}

/// One held trace, as `GET /traces` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    pub trace_id: String,
    /// The root span's name and service: the span whose parent is not in the trace (the
    /// proxy's server span when the client sent a `traceparent` of its own).
    pub root: String,
    pub service: String,
    pub start_ns: u64,
    /// The root span's duration.
    pub duration_ns: u64,
    pub spans: usize,
}

/// The answer of `GET /traces`: the held traces, newest first, and the bounds that hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceList {
    pub traces: Vec<TraceSummary>,
    pub held_spans: usize,
    pub max_traces: usize,
    pub max_spans: usize,
    pub evicted_traces: u64,
    pub evicted_spans: u64,
}

/// The answer of `GET /traces/{id}`: every span held, by start time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<ReceivedSpan>,
}

/// Whether `id` is a W3C trace id: 32 lowercase hex digits, not all zero.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.bytes().any(|b| b != b'0')
}

/// Points every proxy of the lab at `endpoint` (`scalelab-proxy --otlp-endpoint`), whatever
/// its `[tracing]` table names, so the lab's receiver sees the proxy's spans too; the services
/// get it as `OTEL_EXPORTER_OTLP_ENDPOINT` from `[lab] otlp_endpoint` (`plan`).
pub fn point_proxies(children: &mut [ChildSpec], endpoint: &str) {
    for child in children
        .iter_mut()
        .filter(|child| child.stage == Stage::Proxy)
    {
        child.args.push("--otlp-endpoint".into());
        child.args.push(endpoint.into());
    }
}

/// The lines `up --observe` adds to its banner for the receiver.
pub fn banner(url: &str, bounds: store::Bounds) -> Vec<String> {
    vec![
        String::new(),
        format!(
            "traces (the lab's receiver keeps the last {} traces, at most {} spans):",
            bounds.max_traces, bounds.max_spans
        ),
        format!("  receiver     {url}/traces  (OTLP/HTTP in at {url}/v1/traces)"),
        "  see one:     curl -H 'traceparent: 00-<32 hex>-<16 hex>-01' ... then `scalelab trace <32 hex>`"
            .to_owned(),
    ]
}

#[cfg(test)]
mod tests;

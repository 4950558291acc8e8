//! The OpenMetrics 1.0 text exposition (issue 29), written from the same gathered families as
//! the classic text format, because prometheus 0.14 encodes only the latter and exemplars exist
//! only in the former. Prometheus asks for it first (`Accept: application/openmetrics-text`),
//! so every family the proxy exports must come out in a form its parser takes.
//!
//! What differs from the classic format: a counter's family is named without `_total` and its
//! sample with it; a counter whose name lacks `_total` is written as `unknown`, which keeps the
//! series name Prometheus stores from the classic format (an OpenMetrics counter's sample would
//! gain the suffix, and every query on it would lose its data); `HELP` escapes double quotes too;
//! timestamps are seconds; histogram buckets carry exemplars (`# {trace_id="..."} value
//! timestamp`); the exposition ends with `# EOF`. Bucket bounds are written as the classic
//! encoder writes them (`le="1"`, not `le="1.0"`), so that a Prometheus 2 switching formats keeps
//! the same series.

use crate::telemetry::exemplars::{Exemplar, SeriesExemplars};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use std::fmt::Write as _;
use std::sync::Arc;

/// The content type of the OpenMetrics exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic exposition.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Which exposition a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Classic,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when `accept` names `application/openmetrics-text` with a quality above 0
    /// and at least that of the classic `text/plain` (named or through a wildcard); the classic
    /// format otherwise, a missing or unreadable header included. A wildcard alone does not
    /// ask for OpenMetrics: a browser or curl gets the format they always got.
    pub fn negotiate(accept: Option<&[u8]>) -> Format {
        let Some(accept) = accept.and_then(|value| std::str::from_utf8(value).ok()) else {
            return Format::Classic;
        };
        let mut openmetrics = 0.0f64;
        let mut classic = 0.0f64;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|parameter| parameter.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, value)| value.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" | "text/*" | "*/*" => classic = classic.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= classic {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Classic => CLASSIC_CONTENT_TYPE,
            Format::OpenMetrics => CONTENT_TYPE,
        }
    }
}

/// Finds the exemplars of a histogram series from its family's name and labels.
pub type ExemplarSource<'a> = &'a dyn Fn(&str, &[(&str, &str)]) -> Option<Arc<SeriesExemplars>>;

/// `families` in the OpenMetrics text format, ending with `# EOF`.
pub fn encode(families: &[MetricFamily], exemplars: ExemplarSource<'_>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    for family in families {
        let name = family.name();
        let (family_name, kind) = match family.get_field_type() {
            MetricType::COUNTER => match name.strip_suffix("_total") {
                Some(stem) => (stem, "counter"),
                None => (name, "unknown"),
            },
            MetricType::GAUGE => (name, "gauge"),
            MetricType::HISTOGRAM => (name, "histogram"),
            MetricType::SUMMARY => (name, "summary"),
            MetricType::UNTYPED => (name, "unknown"),
        };
        let _ = writeln!(out, "# TYPE {family_name} {kind}");
        if !family.help().is_empty() {
            let _ = writeln!(out, "# HELP {family_name} {}", escape(family.help()));
        }
        for metric in family.get_metric() {
            match family.get_field_type() {
                MetricType::COUNTER => {
                    sample(
                        &mut out,
                        name,
                        "",
                        metric,
                        None,
                        metric.get_counter().value(),
                    );
                    out.push('\n');
                }
                MetricType::GAUGE => {
                    sample(&mut out, name, "", metric, None, metric.get_gauge().value());
                    out.push('\n');
                }
                MetricType::UNTYPED => {
                    sample(&mut out, name, "", metric, None, metric.untyped.value());
                    out.push('\n');
                }
                MetricType::HISTOGRAM => histogram(&mut out, name, metric, exemplars),
                MetricType::SUMMARY => {
                    let summary = metric.get_summary();
                    for quantile in summary.get_quantile() {
                        let q = number(quantile.quantile());
                        sample(
                            &mut out,
                            name,
                            "",
                            metric,
                            Some(("quantile", &q)),
                            quantile.value(),
                        );
                        out.push('\n');
                    }
                    sample(&mut out, name, "_sum", metric, None, summary.sample_sum());
                    out.push('\n');
                    let count = summary.sample_count() as f64;
                    sample(&mut out, name, "_count", metric, None, count);
                    out.push('\n');
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A histogram series: its buckets (each with its latest exemplar), `+Inf`, `_sum`, `_count`.
fn histogram(out: &mut String, name: &str, metric: &Metric, exemplars: ExemplarSource<'_>) {
    let labels: Vec<(&str, &str)> = metric
        .get_label()
        .iter()
        .map(|pair| (pair.name(), pair.value()))
        .collect();
    let series = exemplars(name, &labels);
    let histogram = metric.get_histogram();
    let mut lower = f64::NEG_INFINITY;
    let mut infinite_seen = false;
    let buckets = histogram.get_bucket();
    for (index, bucket) in buckets.iter().enumerate() {
        let upper = bucket.upper_bound();
        infinite_seen |= upper == f64::INFINITY;
        let le = number(upper);
        let count = bucket.cumulative_count() as f64;
        sample(out, name, "_bucket", metric, Some(("le", &le)), count);
        // An exemplar kept under other bounds (it cannot be, but a wrong one would mislead)
        // is left out rather than shown in a bucket its value is not in.
        let found = series.as_ref().and_then(|series| series.get(index));
        if let Some(exemplar) = found.filter(|e| e.value > lower && e.value <= upper) {
            write_exemplar(out, &exemplar);
        }
        out.push('\n');
        lower = upper;
    }
    if !infinite_seen {
        let count = histogram.get_sample_count() as f64;
        sample(out, name, "_bucket", metric, Some(("le", "+Inf")), count);
        let found = series.as_ref().and_then(|series| series.get(buckets.len()));
        if let Some(exemplar) = found.filter(|e| e.value > lower) {
            write_exemplar(out, &exemplar);
        }
        out.push('\n');
    }
    sample(out, name, "_sum", metric, None, histogram.get_sample_sum());
    out.push('\n');
    let count = histogram.get_sample_count() as f64;
    sample(out, name, "_count", metric, None, count);
    out.push('\n');
}

/// One sample line without its line feed (an exemplar may follow).
fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    metric: &Metric,
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    labels(out, metric.get_label(), extra);
    out.push(' ');
    out.push_str(&number(value));
    let millis = metric.timestamp_ms();
    if millis != 0 {
        let _ = write!(out, " {}", seconds(millis));
    }
}

fn labels(out: &mut String, pairs: &[LabelPair], extra: Option<(&str, &str)>) {
    if pairs.is_empty() && extra.is_none() {
        return;
    }
    let mut separator = '{';
    let all = pairs
        .iter()
        .map(|pair| (pair.name(), pair.value()))
        .chain(extra);
    for (name, value) in all {
        let _ = write!(out, "{separator}{name}=\"{}\"", escape(value));
        separator = ',';
    }
    out.push('}');
}

fn write_exemplar(out: &mut String, exemplar: &Exemplar) {
    let hex = exemplar.trace_id.hex();
    let trace = std::str::from_utf8(&hex).unwrap_or("");
    let _ = write!(
        out,
        " # {{trace_id=\"{trace}\"}} {} {}",
        number(exemplar.value),
        seconds(exemplar.unix_ms as i64)
    );
}

/// Milliseconds since the epoch as OpenMetrics' seconds.
fn seconds(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let millis = millis.unsigned_abs();
    format!("{sign}{}.{:03}", millis / 1000, millis % 1000)
}

/// A sample value or bucket bound: Rust's shortest round-trip decimal, as the classic encoder
/// writes it (see the module's comment), with OpenMetrics' names for infinities and NaN (Rust
/// would write `inf`).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

/// Escapes a label value or help text: backslash, double quote and line feed.
fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\\', '"', '\n']) {
        return text.into();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            _ => escaped.push(c),
        }
    }
    escaped.into()
}

#[cfg(test)]
mod tests;

use super::*;
use crate::telemetry::exemplars::{Exemplar, SeriesExemplars};
use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounter, Opts, Registry};
use scalelab_common::trace::TraceId;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn trace_id() -> TraceId {
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&TRACE[2 * i..2 * i + 2], 16).unwrap();
    }
    TraceId(id)
}

fn none(_: &str, _: &[(&str, &str)]) -> Option<Arc<SeriesExemplars>> {
    None
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn a_counter_family_drops_total_and_its_samples_keep_it() {
    let registry = Registry::new();
    let counter = CounterVec::new(
        Opts::new("app_requests_total", "Requests served."),
        &["code"],
    )
    .unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    counter.with_label_values(&["200"]).inc_by(3.0);
    let text = encode(&registry.gather(), &none);
    assert_eq!(
        lines(&text),
        [
            "# TYPE app_requests counter",
            "# HELP app_requests Requests served.",
            "app_requests_total{code=\"200\"} 3",
            "# EOF",
        ]
    );
}

/// A counter named without `_total` keeps its name as an `unknown` family: as an OpenMetrics
/// counter its sample would be stored under a new name.
#[test]
fn a_counter_without_total_keeps_its_series_name() {
    let registry = Registry::new();
    let counter = IntCounter::new("app_restarts", "Restarts.").unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    counter.inc();
    assert_eq!(
        lines(&encode(&registry.gather(), &none)),
        [
            "# TYPE app_restarts unknown",
            "# HELP app_restarts Restarts.",
            "app_restarts 1",
            "# EOF",
        ]
    );
}

#[test]
fn label_values_and_help_are_escaped() {
    let registry = Registry::new();
    let gauge = GaugeVec::new(
        Opts::new("app_info", "A \"quoted\" back\\slash\nand a new line."),
        &["path"],
    )
    .unwrap();
    registry.register(Box::new(gauge.clone())).unwrap();
    gauge.with_label_values(&["C:\\x \"y\"\nz"]).set(1.5);
    assert_eq!(
        lines(&encode(&registry.gather(), &none)),
        [
            "# TYPE app_info gauge",
            "# HELP app_info A \\\"quoted\\\" back\\\\slash\\nand a new line.",
            "app_info{path=\"C:\\\\x \\\"y\\\"\\nz\"} 1.5",
            "# EOF",
        ]
    );
}

#[test]
fn special_values_use_openmetrics_names() {
    let registry = Registry::new();
    let gauge = GaugeVec::new(Opts::new("app_value", "A value."), &["which"]).unwrap();
    registry.register(Box::new(gauge.clone())).unwrap();
    gauge.with_label_values(&["inf"]).set(f64::INFINITY);
    gauge.with_label_values(&["minus"]).set(f64::NEG_INFINITY);
    gauge.with_label_values(&["nan"]).set(f64::NAN);
    gauge.with_label_values(&["small"]).set(0.0005);
    let text = encode(&registry.gather(), &none);
    for line in [
        "app_value{which=\"inf\"} +Inf",
        "app_value{which=\"minus\"} -Inf",
        "app_value{which=\"nan\"} NaN",
        "app_value{which=\"small\"} 0.0005",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

fn latency(registry: &Registry) -> HistogramVec {
    let histogram = HistogramVec::new(
        HistogramOpts::new("app_duration_seconds", "Durations.").buckets(vec![0.0005, 0.1, 1.0]),
        &["route"],
    )
    .unwrap();
    registry.register(Box::new(histogram.clone())).unwrap();
    histogram
}

#[test]
fn a_histogram_without_exemplars_has_buckets_inf_sum_and_count() {
    let registry = Registry::new();
    let histogram = latency(&registry);
    histogram.with_label_values(&["api"]).observe(0.05);
    histogram.with_label_values(&["api"]).observe(3.0);
    assert_eq!(
        lines(&encode(&registry.gather(), &none)),
        [
            "# TYPE app_duration_seconds histogram",
            "# HELP app_duration_seconds Durations.",
            "app_duration_seconds_bucket{route=\"api\",le=\"0.0005\"} 0",
            "app_duration_seconds_bucket{route=\"api\",le=\"0.1\"} 1",
            // As the classic encoder writes the bound, so Prometheus 2 keeps one series.
            "app_duration_seconds_bucket{route=\"api\",le=\"1\"} 1",
            "app_duration_seconds_bucket{route=\"api\",le=\"+Inf\"} 2",
            "app_duration_seconds_sum{route=\"api\"} 3.05",
            "app_duration_seconds_count{route=\"api\"} 2",
            "# EOF",
        ]
    );
}

#[test]
fn a_histogram_bucket_carries_its_latest_exemplar() {
    let registry = Registry::new();
    let histogram = latency(&registry);
    histogram.with_label_values(&["api"]).observe(0.067);
    histogram.with_label_values(&["api"]).observe(3.0);
    histogram.with_label_values(&["other"]).observe(0.067);
    let series = Arc::new(SeriesExemplars::new(&[0.0005, 0.1, 1.0]));
    for (value, unix_ms) in [(0.067, 1_700_000_000_123), (3.0, 1_700_000_001_005)] {
        series.offer(&Exemplar {
            trace_id: trace_id(),
            value,
            unix_ms,
        });
    }
    let source = |family: &str, labels: &[(&str, &str)]| {
        (family == "app_duration_seconds" && labels == [("route", "api")]).then(|| series.clone())
    };
    let text = encode(&registry.gather(), &source);
    let with_exemplar: Vec<&str> = text.lines().filter(|l| l.contains(" # {")).collect();
    assert_eq!(
        with_exemplar,
        [
            format!(
                "app_duration_seconds_bucket{{route=\"api\",le=\"0.1\"}} 1 # {{trace_id=\"{TRACE}\"}} 0.067 1700000000.123"
            ),
            format!(
                "app_duration_seconds_bucket{{route=\"api\",le=\"+Inf\"}} 2 # {{trace_id=\"{TRACE}\"}} 3 1700000001.005"
            ),
        ]
    );
    assert!(text.contains("app_duration_seconds_bucket{route=\"other\",le=\"0.1\"} 1\n"));
}

/// An exemplar whose value is not in the bucket it is kept under (other bounds) is left out.
#[test]
fn an_exemplar_outside_its_bucket_is_left_out() {
    let registry = Registry::new();
    let histogram = latency(&registry);
    histogram.with_label_values(&["api"]).observe(0.05);
    let series = Arc::new(SeriesExemplars::new(&[10.0]));
    series.offer(&Exemplar {
        trace_id: trace_id(),
        value: 5.0,
        unix_ms: 1,
    });
    let source = |_: &str, _: &[(&str, &str)]| Some(series.clone());
    let text = encode(&registry.gather(), &source);
    assert!(!text.contains("trace_id"), "{text}");
}

#[test]
fn a_summary_has_quantiles_sum_and_count() {
    // prometheus 0.14 builds no summaries, so one is made by hand as a collector would.
    let mut family = prometheus::proto::MetricFamily::default();
    family.set_name("app_size_bytes".to_owned());
    family.set_help("Sizes.".to_owned());
    family.set_field_type(MetricType::SUMMARY);
    let mut quantile = prometheus::proto::Quantile::default();
    quantile.set_quantile(0.5);
    quantile.set_value(42.0);
    let mut proto = prometheus::proto::Summary::default();
    proto.set_quantile(vec![quantile]);
    proto.set_sample_count(2);
    proto.set_sample_sum(80.0);
    let mut metric = prometheus::proto::Metric::default();
    metric.set_summary(proto);
    family.set_metric(vec![metric]);
    assert_eq!(
        lines(&encode(&[family], &none)),
        [
            "# TYPE app_size_bytes summary",
            "# HELP app_size_bytes Sizes.",
            "app_size_bytes{quantile=\"0.5\"} 42",
            "app_size_bytes_sum 80",
            "app_size_bytes_count 2",
            "# EOF",
        ]
    );
}

#[test]
fn an_empty_registry_is_just_eof() {
    assert_eq!(encode(&[], &none), "# EOF\n");
}

#[test]
fn prometheus_accept_header_gets_openmetrics() {
    let cases: [(Option<&str>, Format); 9] = [
        (
            Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics,
        ),
        (Some("application/openmetrics-text"), Format::OpenMetrics),
        (Some("Application/OpenMetrics-Text; version=1.0.0"), Format::OpenMetrics),
        (None, Format::Classic),
        (Some("*/*"), Format::Classic),
        (Some("text/plain"), Format::Classic),
        (Some("application/openmetrics-text;q=0"), Format::Classic),
        (
            Some("text/plain;q=1, application/openmetrics-text;q=0.5"),
            Format::Classic,
        ),
        (Some("application/openmetrics-text;q=nonsense"), Format::Classic),
    ];
    for (accept, expected) in cases {
        assert_eq!(
            Format::negotiate(accept.map(str::as_bytes)),
            expected,
            "{accept:?}"
        );
    }
    assert_eq!(Format::OpenMetrics.content_type(), CONTENT_TYPE);
    assert_eq!(Format::Classic.content_type(), "text/plain; version=0.0.4");
}

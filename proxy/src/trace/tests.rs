use super::request::{RequestTrace, Timeline};
use http::{HeaderMap, HeaderValue};
use std::time::Instant;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).expect("test header"));
    }
    map
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn a_valid_parent_is_joined_and_its_decision_kept() {
    let trace = RequestTrace::start(
        &headers(&[("traceparent", PARENT), ("tracestate", "rojo=1")]),
        0.0,
    );
    assert_eq!(
        trace.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        trace.remote_parent.map(|s| s.to_string()).as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert!(trace.sampled, "a sampled parent is kept at ratio 0");
    assert_eq!(trace.tracestate, Some(HeaderValue::from_static("rojo=1")));
    let unsampled = PARENT.replace("-01", "-00");
    let trace = RequestTrace::start(&headers(&[("traceparent", &unsampled)]), 1.0);
    assert!(!trace.sampled, "an unsampled parent is followed at ratio 1");
}

#[test]
fn a_malformed_or_repeated_parent_starts_a_new_trace_without_its_state() {
    for sent in [
        headers(&[("traceparent", "00-xyz"), ("tracestate", "rojo=1")]),
        headers(&[("traceparent", PARENT), ("traceparent", PARENT)]),
    ] {
        let trace = RequestTrace::start(&sent, 1.0);
        assert_ne!(
            trace.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(trace.remote_parent, None);
        assert_eq!(trace.tracestate, None);
        assert!(trace.sampled, "a new trace at ratio 1 is sampled");
    }
    assert!(!RequestTrace::start(&HeaderMap::new(), 0.0).sampled);
}

#[test]
fn the_forwarded_parent_names_the_given_span() {
    let trace = RequestTrace::start(&headers(&[("traceparent", PARENT)]), 0.0);
    let value = trace.traceparent(trace.span_id).expect("header value");
    let parsed = scalelab_common::trace::parse_traceparent(value.as_bytes()).expect("valid");
    assert_eq!(parsed.trace_id, trace.trace_id);
    assert_eq!(parsed.span_id, trace.span_id);
    assert!(parsed.sampled);
}

#[test]
fn server_timing_lists_the_route_the_phases_and_the_upstream() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start);
    timeline.phase("auth", start, None);
    timeline.phase("cache", start, Some("miss"));
    timeline.attempt("g", "127.0.0.1:5000".parse().expect("addr"));
    timeline.responded(200);
    let value = timeline.server_timing("data").expect("a header value");
    let text = value.to_str().expect("ASCII");
    assert!(text.starts_with("route;desc=\"data\", auth;dur="), "{text}");
    assert!(text.contains(", cache;desc=\"miss\";dur="), "{text}");
    assert!(text.contains(", upstream;dur="), "{text}");
}

fn parse(tracing: &str) -> Result<crate::config::Config, Vec<scalelab_common::problem::Problem>> {
    let text = format!(
        "[proxy]\nlisten = [\"127.0.0.1:8000\"]\n[upstreams.g]\nservers = [{{ addr = \"127.0.0.1:5000\" }}]\n\
         [[routes]]\nname = \"all\"\npath = \"/\"\nupstream = \"g\"\n{tracing}"
    );
    crate::config::parse(std::path::Path::new("config.toml"), &text).map_err(|error| match error {
        crate::config::ConfigError::Invalid { problems, .. } => problems,
        other => panic!("{other}"),
    })
}

#[test]
fn the_tracing_table_is_read_with_its_defaults_and_hides_header_values() {
    let config = parse("[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\nheaders = { authorization = \"Bearer s3cret\" }\n")
        .expect("valid");
    let tracing = config.tracing().expect("the table");
    assert_eq!(tracing.sample_ratio, 1.0);
    assert_eq!(tracing.service_name, "scalelab-proxy");
    assert_eq!(tracing.timeout, std::time::Duration::from_secs(5));
    let export = tracing.export().expect("an exporter");
    assert_eq!(export.endpoint, "http://127.0.0.1:4318");
    let shown = serde_json::to_string(&config).expect("serializable");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("\"authorization\":\"sha256:"), "{shown}");
    assert!(parse("").expect("valid").tracing().is_none());
}

#[test]
fn every_bad_tracing_value_is_reported_with_its_path() {
    let problems = parse(
        "[tracing]\notlp_endpoint = \"127.0.0.1:4318\"\nprotocol = \"grpc\"\nsample_ratio = 1.5\n\
         service_name = \"\"\nheaders = { \"bad name\" = \"x\" }\ntimeout = \"0s\"\n",
    )
    .expect_err("invalid");
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for path in [
        "tracing.otlp_endpoint",
        "tracing.protocol",
        "tracing.sample_ratio",
        "tracing.service_name",
        "tracing.headers.bad name",
        "tracing.timeout",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
}

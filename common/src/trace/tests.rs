use super::*;

const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn parses_the_spec_example_and_writes_it_back() {
    let parent = parse_traceparent(VALID).expect("the spec's example is valid");
    assert!(parent.sampled);
    assert_eq!(
        parent.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(parent.span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(
        &format_traceparent(parent.trace_id, parent.span_id, true)[..],
        VALID
    );
    let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert_eq!(parse_traceparent(unsampled).map(|p| p.sampled), Some(false));
}

#[test]
fn refuses_every_malformed_traceparent() {
    let cases: &[&[u8]] = &[
        b"",
        b"garbage",
        // Uppercase hex.
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        // All-zero trace id and span id.
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        // Version ff, and version 00 with more after it.
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        // Wrong separators and short fields.
        b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    ];
    for case in cases {
        assert_eq!(
            parse_traceparent(case),
            None,
            "{}",
            String::from_utf8_lossy(case)
        );
    }
    // A later version may carry more fields after a dash.
    let future = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
    assert!(parse_traceparent(future).is_some());
}

#[test]
fn tracestate_is_kept_only_when_valid() {
    assert!(valid_tracestate(b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert!(valid_tracestate(b"vendor@tenant=x, other=y"));
    assert!(!valid_tracestate(b"novalue"));
    assert!(!valid_tracestate(b"UPPER=1"));
    assert!(!valid_tracestate(b"a=b=c"));
    let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    assert!(!valid_tracestate(many.join(",").as_bytes()));
    assert!(!valid_tracestate(&[b'a'; 513]));
}

#[test]
fn the_ratio_sampler_keeps_about_its_share_and_the_bounds_exactly() {
    let ids: Vec<TraceId> = (0..10_000).map(|_| TraceId::random()).collect();
    let kept = ids.iter().filter(|id| sampled_by_ratio(**id, 0.1)).count();
    assert!((700..1300).contains(&kept), "kept {kept} of 10000 at 0.1");
    assert!(ids.iter().all(|id| sampled_by_ratio(*id, 1.0)));
    assert!(ids.iter().all(|id| !sampled_by_ratio(*id, 0.0)));
}

#[test]
fn random_ids_are_never_zero() {
    for _ in 0..1000 {
        assert_ne!(TraceId::random().0, [0; 16]);
        assert_ne!(SpanId::random().0, [0; 8]);
    }
}

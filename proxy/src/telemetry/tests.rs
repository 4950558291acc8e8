use super::*;

#[test]
fn every_vector_builds_and_buckets_ascend() {
    init().expect("every metric is well formed");
    assert!(DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    assert!(SIZE_BUCKETS.windows(2).all(|w| w[0] * 4.0 == w[1]));
    assert_eq!(DURATION_BUCKETS.len(), 14);
}

#[test]
fn methods_and_codes_map_to_their_slots() {
    assert_eq!(METHODS[method_index(&http::Method::GET)], "GET");
    let custom = http::Method::from_bytes(b"PURGE").expect("method");
    assert_eq!(METHODS[method_index(&custom)], "other");
    assert!(CODES.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn error_kinds_follow_pingora_errors() {
    use pingora::ErrorType as E;
    let cases = [
        (E::ConnectRefused, "connect_refused"),
        (E::ConnectTimedout, "connect_timeout"),
        (E::ReadTimedout, "read_timeout"),
        (E::ConnectionClosed, "reset"),
        (E::InvalidHTTPHeader, "protocol"),
        (E::TLSHandshakeFailure, "tls"),
        (E::InvalidCert, "tls"),
    ];
    for (error, kind) in cases {
        assert_eq!(UpstreamError::of(&error).label(), kind, "{error:?}");
    }
}

#[test]
fn protocols_are_labelled_by_their_alpn_names_and_own_their_slots() {
    let cases = [
        (http::Version::HTTP_09, "http/1.0"),
        (http::Version::HTTP_10, "http/1.0"),
        (http::Version::HTTP_11, "http/1.1"),
        (http::Version::HTTP_2, "h2"),
    ];
    for (version, label) in cases {
        assert_eq!(Protocol::of(version).label(), label, "{version:?}");
    }
    // Each protocol's block of slots starts where the previous one ends.
    let indexes: Vec<usize> = Protocol::ALL.iter().map(|p| p.index()).collect();
    assert_eq!(indexes, [0, 1, 2]);
    let metrics = RouteMetrics::new("r");
    assert_eq!(
        metrics.requests.len(),
        Protocol::ALL.len() * METHODS.len() * CODES.len()
    );
}

/// Which series a route starts with at 0 follows from its configuration (issue 31).
#[test]
fn a_routes_expected_series_follow_its_config() {
    let text = r#"
[proxy]
listen = ["127.0.0.1:1"]
admin_listen = "127.0.0.1:2"
[auth]
algorithms = ["HS256"]
secret = "expected-series-test-secret-0123456789"
[upstreams.g]
servers = [{ addr = "127.0.0.1:3" }]
[cache]
tiers = [{ name = "l1", max_bytes = "1MiB" }]
[[routes]]
name = "plain"
path = "/plain"
upstream = "g"
[[routes]]
name = "everything"
path = "/all"
upstream = "g"
methods = ["GET", "POST"]
auth = "jwt"
cache = { default_ttl = "10s" }
rate_limits = [{ name = "r", rate = "1/s", burst = 1, key = "route" }]
"#;
    let config =
        crate::config::parse(std::path::Path::new("./config.toml"), text).expect("a valid config");
    let expected = |index: usize, h2: bool| Expected::of(config.routes().get(index), h2);
    assert_eq!(
        expected(0, false),
        Expected {
            methods: vec![http::Method::GET],
            protocols: vec![Protocol::Http11],
            codes: vec![200, 500, 502, 503, 504],
            caches: vec![CacheUse::None],
        }
    );
    assert_eq!(
        expected(1, true),
        Expected {
            methods: vec![http::Method::GET, http::Method::POST],
            protocols: vec![Protocol::Http11, Protocol::H2],
            codes: vec![200, 304, 401, 429, 500, 502, 503, 504],
            caches: vec![
                CacheUse::Hit,
                CacheUse::Miss,
                CacheUse::Stale,
                CacheUse::Bypass
            ],
        }
    );
    // Requests no route matched start with their 404.
    assert_eq!(expected(7, false).codes, vec![404]);
    // Every expected code has a pre-resolved slot (a code without one would not be made).
    for code in expected(1, true).codes {
        assert!(CODES.contains(&code), "{code}");
    }
}

/// Only a sampled request leaves an exemplar, in the bucket of its duration, found by the
/// exposition under the series' labels (issue 29).
#[test]
fn a_sampled_request_leaves_the_exemplar_of_its_bucket() {
    init().expect("every metric is well formed");
    let metrics = RouteMetrics::new("exemplar-unit");
    let labels = [("route", "exemplar-unit"), ("cache", "miss")];
    let record = |millis: u64, sampled: Option<TraceId>| {
        metrics.record(
            &http::Method::GET,
            Protocol::Http11,
            200,
            CacheUse::Miss,
            Duration::from_millis(millis),
            10,
            sampled,
        );
    };
    record(30, None);
    assert!(
        exemplars::lookup(DURATION_FAMILY, &labels).is_none(),
        "an unsampled request makes no exemplars"
    );
    let trace = TraceId([7; 16]);
    record(30, Some(trace));
    record(40, None);
    let series = exemplars::lookup(DURATION_FAMILY, &labels).expect("the series' exemplars");
    let bucket = DURATION_BUCKETS
        .iter()
        .position(|bound| 0.03 <= *bound)
        .unwrap();
    let kept = series.get(bucket).expect("the 50 ms bucket's exemplar");
    assert_eq!(kept.trace_id, trace);
    assert_eq!(kept.value, 0.03);
    assert!(kept.unix_ms > 1_600_000_000_000, "{kept:?}");
    let others = (0..=DURATION_BUCKETS.len()).filter(|i| *i != bucket);
    assert!(others.into_iter().all(|i| series.get(i).is_none()));
}

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

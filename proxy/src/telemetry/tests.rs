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
    ];
    for (error, kind) in cases {
        assert_eq!(UpstreamError::of(&error).label(), kind, "{error:?}");
    }
}

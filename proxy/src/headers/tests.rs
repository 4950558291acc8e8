use super::*;

#[test]
fn request_id_validation_table() {
    let cases: [(&[u8], bool); 7] = [
        (b"abc-123", true),
        (b"0f3c2b1a-0000:x.y_z", true),
        (b"", false),
        (b"has space", false),
        (b"new\nline", false),
        (b"semi;colon", false),
        (&[b'a'; 129], false),
    ];
    for (value, expected) in cases {
        assert_eq!(
            valid_request_id(value),
            expected,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn new_request_ids_are_unique_and_valid() {
    let a = new_request_id();
    let b = new_request_id();
    assert_ne!(a, b);
    assert!(valid_request_id(a.as_bytes()));
    assert_eq!(a.len(), 33);
    let (prefix_a, count_a) = a.to_str().unwrap().split_once('-').unwrap();
    let (prefix_b, count_b) = b.to_str().unwrap().split_once('-').unwrap();
    assert_eq!(prefix_a, prefix_b);
    assert_eq!(
        u64::from_str_radix(count_b, 16).unwrap(),
        u64::from_str_radix(count_a, 16).unwrap() + 1
    );
}

#[test]
fn forwarded_for_appends() {
    assert_eq!(forwarded_for(None, "10.0.0.1"), "10.0.0.1");
    assert_eq!(forwarded_for(Some(" "), "10.0.0.1"), "10.0.0.1");
    assert_eq!(
        forwarded_for(Some("1.2.3.4"), "10.0.0.1"),
        "1.2.3.4, 10.0.0.1"
    );
}

#[test]
fn strip_query_param_table() {
    let cases = [
        ("/data", None, None),
        ("/data", Some("a=1"), None),
        ("/data", Some("strategy=weighted"), Some("/data")),
        (
            "/data",
            Some("a=1&strategy=weighted&b=2"),
            Some("/data?a=1&b=2"),
        ),
        ("/data", Some("strategy&a=1"), Some("/data?a=1")),
        ("/data", Some("strategy=a&strategy=b"), Some("/data")),
        ("/data", Some("strategyx=1"), None),
    ];
    for (path, query, expected) in cases {
        assert_eq!(
            strip_query_param(path, query, STRATEGY_PARAM).as_deref(),
            expected,
            "{path}?{query:?}"
        );
    }
}

#[test]
fn query_param_finds_first_value() {
    assert_eq!(
        query_param("a=1&strategy=weighted", "strategy"),
        Some("weighted")
    );
    assert_eq!(query_param("strategy", "strategy"), Some(""));
    assert_eq!(query_param("a=1", "strategy"), None);
}

#[test]
fn connection_nominated_lists_extension_fields() {
    let names: Vec<String> = connection_nominated("close, X-Foo ,keep-alive,x-bar").collect();
    assert_eq!(names, vec!["x-foo", "x-bar"]);
}

#[test]
fn strip_path_prefix_table() {
    let cases = [
        ("/worker/stats", "/worker", "/stats"),
        ("/worker", "/worker", "/"),
        ("/worker/", "/worker/", "/"),
        ("/workers", "/worker", "/workers"),
        ("/a/b/c", "/a/b", "/c"),
    ];
    for (path, prefix, expected) in cases {
        assert_eq!(
            strip_path_prefix(path, prefix),
            expected,
            "{path} - {prefix}"
        );
    }
}

#[test]
fn present_lists_the_names_a_map_holds_in_their_order() {
    static NAMES: [http::HeaderName; 3] = [
        http::HeaderName::from_static("x-a"),
        http::HeaderName::from_static("x-b"),
        http::HeaderName::from_static("keep-alive"),
    ];
    let mut map = http::HeaderMap::new();
    assert_eq!(present(&map, &NAMES).count(), 0);
    map.insert("keep-alive", http::HeaderValue::from_static("timeout=5"));
    map.insert("X-A", http::HeaderValue::from_static("1"));
    map.append("x-a", http::HeaderValue::from_static("2"));
    map.insert("x-other", http::HeaderValue::from_static("3"));
    assert_eq!(
        present(&map, &NAMES)
            .map(http::HeaderName::as_str)
            .collect::<Vec<_>>(),
        vec!["x-a", "keep-alive"]
    );
}

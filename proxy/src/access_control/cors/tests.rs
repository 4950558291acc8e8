use super::*;
use http::Method;

fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
    CorsPolicy {
        origins: origins
            .iter()
            .map(|o| OriginPattern::parse(o).unwrap())
            .collect(),
        methods: vec![Method::GET, Method::POST],
        headers: vec!["x-custom".to_string(), "content-type".to_string()],
        expose_headers: vec!["x-request-id".to_string()],
        credentials,
        max_age: Some(std::time::Duration::from_secs(600)),
    }
}

#[test]
fn origin_matching_table() {
    let p = policy(
        &[
            "https://app.example",
            "*.example.com",
            "http://*.dev.test",
            "https://api.example:8443",
        ],
        true,
    );
    for (origin, expected) in [
        ("https://app.example", true),
        ("HTTPS://APP.EXAMPLE", true),
        ("http://app.example", false),
        ("https://app.example:444", false),
        ("https://app.example.evil", false),
        ("https://a.example.com", true),
        ("http://a.b.example.com:8080", true),
        ("https://example.com", false),
        ("https://evilexample.com", false),
        ("http://x.dev.test", true),
        ("https://x.dev.test", false),
        ("https://api.example:8443", true),
        ("https://api.example", false),
        ("null", false),
        ("", false),
    ] {
        assert_eq!(allowed(&p, origin), expected, "{origin}");
    }
    assert!(allowed(&policy(&["*"], false), "https://anything.test"));
}

#[test]
fn origin_patterns_refuse_what_cannot_match() {
    for bad in [
        "app.example",
        "https://app.example/path",
        "https://*",
        "https://a.*.com",
        "*.",
        "://x",
    ] {
        assert!(OriginPattern::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        OriginPattern::parse("*.Example.com").unwrap(),
        OriginPattern::Subdomains {
            scheme: None,
            suffix: ".example.com".into()
        }
    );
}

#[test]
fn preflight_echoes_the_origin_and_lists_what_is_allowed() {
    let p = policy(&["https://app.example"], true);
    let d = decide(
        &p,
        &Method::OPTIONS,
        Some("https://app.example"),
        Some("POST"),
        Some("X-Custom, Content-Type"),
    );
    let Decision::Preflight(headers) = d else {
        panic!("{d:?}")
    };
    assert!(headers.contains(&("access-control-allow-origin", "https://app.example".into())));
    assert!(headers.contains(&("access-control-allow-credentials", "true".into())));
    assert!(headers.contains(&("access-control-allow-methods", "GET, POST".into())));
    assert!(headers.contains(&(
        "access-control-allow-headers",
        "x-custom, content-type".into()
    )));
    assert!(headers.contains(&("access-control-max-age", "600".into())));
}

#[test]
fn refusals_get_no_headers() {
    let p = policy(&["https://app.example"], true);
    // Wrong origin, method not allowed, header not allowed.
    assert_eq!(
        decide(
            &p,
            &Method::OPTIONS,
            Some("https://evil.example"),
            Some("GET"),
            None
        ),
        Decision::Refused
    );
    assert_eq!(
        decide(
            &p,
            &Method::OPTIONS,
            Some("https://app.example"),
            Some("DELETE"),
            None
        ),
        Decision::Refused
    );
    assert_eq!(
        decide(
            &p,
            &Method::OPTIONS,
            Some("https://app.example"),
            Some("GET"),
            Some("x-other")
        ),
        Decision::Refused
    );
    assert_eq!(
        decide(&p, &Method::GET, Some("https://evil.example"), None, None),
        Decision::Refused
    );
    assert_eq!(
        decide(&p, &Method::GET, None, None, None),
        Decision::NotCors
    );
}

#[test]
fn actual_responses_echo_and_never_star_with_credentials() {
    let Decision::Actual(headers) = decide(
        &policy(&["*"], false),
        &Method::GET,
        Some("https://a.test"),
        None,
        None,
    ) else {
        panic!()
    };
    assert!(headers.contains(&("access-control-allow-origin", "*".into())));
    assert!(headers.contains(&("access-control-expose-headers", "x-request-id".into())));
    let Decision::Actual(headers) = decide(
        &policy(&["*.test"], true),
        &Method::GET,
        Some("https://a.test"),
        None,
        None,
    ) else {
        panic!()
    };
    assert!(headers.contains(&("access-control-allow-origin", "https://a.test".into())));
    // A plain OPTIONS (no Access-Control-Request-Method) is an actual request, not a preflight.
    assert!(matches!(
        decide(
            &policy(&["*.test"], true),
            &Method::OPTIONS,
            Some("https://a.test"),
            None,
            None
        ),
        Decision::Actual(_)
    ));
}

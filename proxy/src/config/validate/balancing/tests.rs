use crate::balance::Strategy;
use crate::config::balancing::{HashAlgorithm, HashKey, DEFAULT_EWMA_DECAY};
use std::path::Path;
use std::time::Duration;

fn group(lines: &str) -> String {
    format!(
        "[upstreams.g]\nservers = [{{ addr = \"127.0.0.1:5000\" }}]\n{lines}\n\
         [[routes]]\npath = \"/\"\nupstream = \"g\"\n"
    )
}

fn problems(lines: &str) -> Vec<(String, String)> {
    match crate::config::parse_in(&group(lines), Path::new(".")) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|p| (p.path.clone(), p.message.clone()))
            .collect(),
    }
}

#[test]
fn balancing_keys_parse_with_their_defaults() {
    let config = crate::config::parse_in(
        &group(
            "strategy = \"hash\"\nhash = { key = \"header.X-User\", algorithm = \"maglev\" }\n\
             sticky = { cookie = \"srv\", ttl = \"2h\", secure = true }\newma_decay = \"5s\"\n\
             outlier = { consecutive_gateway_errors = 0, max_ejection = \"34%\" }",
        ),
        Path::new("."),
    )
    .expect("valid");
    let g = &config.upstreams["g"];
    assert_eq!(g.strategy, Strategy::Hash);
    let hash = g.balancing.hash.as_ref().expect("hash");
    assert_eq!(hash.key, HashKey::Header("x-user".into()));
    assert_eq!(hash.algorithm, HashAlgorithm::Maglev);
    let sticky = g.balancing.sticky.as_ref().expect("sticky");
    assert_eq!(sticky.cookie, "srv");
    assert_eq!(sticky.ttl, Duration::from_secs(7200));
    assert!(sticky.secure && sticky.http_only);
    assert_eq!(g.balancing.ewma_decay, Duration::from_secs(5));
    let outlier = g.balancing.outlier.as_ref().expect("outlier");
    assert_eq!(
        (
            outlier.consecutive_5xx,
            outlier.consecutive_gateway_errors,
            outlier.base_ejection,
            outlier.max_ejection_percent
        ),
        (5, 0, Duration::from_secs(30), 34)
    );
    assert_eq!(outlier.error_rate, None);
    assert_eq!(g.balancing.circuit, None);
    let circuit = crate::config::parse_in(&group("circuit = { max_requests = 8 }"), Path::new("."))
        .expect("valid");
    assert_eq!(
        circuit.upstreams["g"].balancing.circuit,
        Some(crate::config::balancing::CircuitSettings {
            max_requests: 8,
            max_pending: 0
        })
    );
    let rated = crate::config::parse_in(
        &group("outlier = { error_rate = { threshold = \"30%\" } }"),
        Path::new("."),
    )
    .expect("valid");
    let rate = rated.upstreams["g"]
        .balancing
        .outlier
        .as_ref()
        .expect("outlier");
    let rate = rate.error_rate.as_ref().expect("error_rate");
    assert_eq!(
        (rate.threshold_percent, rate.min_requests, rate.window),
        (30, 20, Duration::from_secs(10))
    );

    let plain = crate::config::parse_in(&group("strategy = \"ewma\"\nsticky = {}"), Path::new("."))
        .expect("valid");
    let g = &plain.upstreams["g"];
    assert_eq!(g.balancing.ewma_decay, DEFAULT_EWMA_DECAY);
    assert_eq!(g.balancing.outlier, None);
    let sticky = g.balancing.sticky.as_ref().expect("sticky");
    assert_eq!(
        (sticky.cookie.as_str(), sticky.ttl, sticky.secure),
        ("scalelab_srv", Duration::from_secs(3600), false)
    );
}

#[test]
fn hash_keys_table() {
    let cases = [
        ("client_ip", Some(HashKey::ClientIp)),
        ("path", Some(HashKey::Path)),
        ("cookie.session", Some(HashKey::Cookie("session".into()))),
        ("query.user", Some(HashKey::Query("user".into()))),
        ("header.X-User", Some(HashKey::Header("x-user".into()))),
        ("header.", None),
        ("header.bad name", None),
        ("cookie.a;b", None),
        ("body.user", None),
        ("", None),
    ];
    for (text, expected) in cases {
        assert_eq!(HashKey::parse(text), expected, "{text:?}");
    }
}

#[test]
fn every_bad_balancing_value_is_reported_with_its_path() {
    let cases = [
        (
            "strategy = \"hash\"",
            "upstreams.g.hash",
            "strategy = \"hash\" needs hash",
        ),
        (
            "strategy = \"hash\"\nhash = { key = \"body.user\" }",
            "upstreams.g.hash.key",
            "unknown hash key \"body.user\"",
        ),
        (
            "hash = { key = \"path\", algorithm = \"rendezvous\" }",
            "upstreams.g.hash.algorithm",
            "unknown algorithm \"rendezvous\"; valid: ring, maglev",
        ),
        (
            "sticky = { cookie = \"a b\" }",
            "upstreams.g.sticky.cookie",
            "\"a b\" is not a valid cookie name",
        ),
        ("sticky = { ttl = \"0s\" }", "upstreams.g.sticky.ttl", ""),
        ("ewma_decay = \"soon\"", "upstreams.g.ewma_decay", ""),
        (
            "outlier = { error_rate = { threshold = \"half\", min_requests = 0 } }",
            "upstreams.g.outlier.error_rate.threshold",
            "\"half\" must be a percentage",
        ),
        (
            "outlier = { error_rate = { min_requests = 0 } }",
            "upstreams.g.outlier.error_rate.min_requests",
            "0 is out of range 1..=1000000",
        ),
        (
            "circuit = { max_requests = 0 }",
            "upstreams.g.circuit.max_requests",
            "0 is out of range 1..=1000000",
        ),
        (
            "circuit = { max_requests = 5, max_pending = -1 }",
            "upstreams.g.circuit.max_pending",
            "-1 is out of range 0..=1000000",
        ),
        (
            "outlier = { max_ejection = \"150%\" }",
            "upstreams.g.outlier.max_ejection",
            "\"150%\" must be a percentage from \"1%\" to \"100%\"",
        ),
        (
            "outlier = { consecutive_5xx = -1 }",
            "upstreams.g.outlier.consecutive_5xx",
            "-1 is out of range 0..=1000",
        ),
        (
            "outlier = { base_ejection = \"never\" }",
            "upstreams.g.outlier.base_ejection",
            "",
        ),
        (
            "strategy = \"fastest\"",
            "upstreams.g.strategy",
            "valid: round_robin, weighted, least_connections, p2c, ewma, hash",
        ),
    ];
    for (lines, path, message) in cases {
        let found = problems(lines);
        assert!(
            found.iter().any(|(p, m)| p == path && m.contains(message)),
            "{lines:?}: expected {path}: {message:?}, got {found:?}"
        );
    }
}

use super::*;
use crate::config::parse_in;
use std::path::Path;

const BASE: &str = r#"
[proxy]
listen = ["127.0.0.1:8000"]
admin_listen = "127.0.0.1:9901"

[upstreams.app]
servers = [ { addr = "127.0.0.1:5000" } ]

[[routes]]
name = "all"
path = "/"
upstream = "app"
"#;

const CACHE: &str = r#"
[cache]
[[cache.tiers]]
name = "L1"
max_entries = 10
[[cache.tiers]]
name = "L2"
max_entries = 100
"#;

const REDIS: &str = r#"
[redis]
url = "redis://127.0.0.1:1/0"
key_prefix = "mine:"
command_timeout = "70ms"
"#;

fn config(extra: &str) -> Config {
    parse_in(&format!("{BASE}{extra}"), Path::new(".")).expect("valid test config")
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

fn shared(url: &str) -> Overrides {
    Overrides::default()
        .with_shared_cache_url(url)
        .expect("valid test url")
}

#[test]
fn no_overrides_change_nothing() {
    for extra in ["", CACHE, REDIS] {
        let mut overridden = config(extra);
        Overrides::default().apply(&mut overridden);
        assert_eq!(overridden, config(extra), "with {extra:?}");
    }
}

/// (`--listen`, `--admin-listen`, expected listen, expected admin listen)
type ListenCase = (
    Vec<&'static str>,
    Option<&'static str>,
    Vec<&'static str>,
    &'static str,
);

#[test]
fn listeners_replace_the_files() {
    let table: [ListenCase; 3] = [
        (
            vec!["127.0.0.1:8001"],
            None,
            vec!["127.0.0.1:8001"],
            "127.0.0.1:9901",
        ),
        (
            vec!["127.0.0.1:8001", "127.0.0.1:8443"],
            Some("127.0.0.1:9902"),
            vec!["127.0.0.1:8001", "127.0.0.1:8443"],
            "127.0.0.1:9902",
        ),
        (
            vec![],
            Some("127.0.0.1:9903"),
            vec!["127.0.0.1:8000"],
            "127.0.0.1:9903",
        ),
    ];
    for (listen, admin, want_listen, want_admin) in table {
        let overrides = Overrides {
            listen: listen.iter().map(|a| addr(a)).collect(),
            admin_listen: admin.map(addr),
            ..Overrides::default()
        };
        let mut config = config("");
        overrides.apply(&mut config);
        let want: Vec<SocketAddr> = want_listen.iter().map(|a| addr(a)).collect();
        assert_eq!(config.proxy.listen, want, "{overrides:?}");
        assert_eq!(config.proxy.admin_listen, addr(want_admin), "{overrides:?}");
    }
}

#[test]
fn shared_cache_url_adds_or_retargets_redis_and_the_last_tier() {
    let url = "redis://127.0.0.1:6390/0";
    // (file sections, expected key prefix, expected command timeout ms, expected tier kinds)
    let table: [(String, &str, u64, Vec<TierKind>); 4] = [
        ("".into(), "scalelab:", 50, vec![]),
        (REDIS.into(), "mine:", 70, vec![]),
        (
            CACHE.into(),
            "scalelab:",
            50,
            vec![TierKind::Memory, TierKind::Redis],
        ),
        (
            format!("{REDIS}{CACHE}"),
            "mine:",
            70,
            vec![TierKind::Memory, TierKind::Redis],
        ),
    ];
    for (extra, prefix, timeout_ms, kinds) in table {
        let mut config = config(&extra);
        shared(url).apply(&mut config);
        let redis = config.redis.as_ref().expect("a [redis] table");
        assert_eq!(redis.url, url, "{extra}");
        assert_eq!(redis.key_prefix, prefix, "{extra}");
        assert_eq!(
            redis.command_timeout,
            std::time::Duration::from_millis(timeout_ms),
            "{extra}"
        );
        let got: Vec<TierKind> = config
            .cache
            .iter()
            .flat_map(|cache| cache.tiers.iter().map(|tier| tier.kind))
            .collect();
        assert_eq!(got, kinds, "{extra}");
    }
}

#[test]
fn applying_twice_is_applying_once() {
    let overrides = Overrides {
        listen: vec![addr("127.0.0.1:8001")],
        admin_listen: Some(addr("127.0.0.1:9902")),
        ..shared("redis://127.0.0.1:6390/0")
    };
    let mut once = config(CACHE);
    overrides.apply(&mut once);
    let mut twice = once.clone();
    overrides.apply(&mut twice);
    assert_eq!(once, twice);
}

#[test]
fn a_bad_shared_cache_url_is_refused_with_the_redis_url_problem() {
    for url in ["http://127.0.0.1:6379", "", "redis://[::1"] {
        let error = Overrides::default()
            .with_shared_cache_url(url)
            .expect_err(url);
        assert!(
            error.to_string().contains("redis.url: invalid Redis URL"),
            "{url}: {error}"
        );
    }
}

#[test]
fn otlp_endpoint_replaces_or_adds_the_tracing_table() {
    let overrides = Overrides {
        otlp_endpoint: Some("http://127.0.0.1:4999".to_string()),
        ..Overrides::default()
    };
    let with = |extra: &str, overrides: &Overrides| {
        let (file, problems) = crate::config::validate::decode(&format!("{BASE}{extra}"));
        assert!(problems.is_empty(), "{problems:?}");
        let mut file = file.expect("decoded test config");
        overrides.apply_to_file(&mut file);
        crate::config::validate::validate(file, Path::new("."))
    };
    // A file without `[tracing]` gets the table with its defaults (every request sampled).
    let added = with("", &overrides).expect("valid");
    let tracing = added.tracing().expect("a [tracing] table");
    assert_eq!(
        tracing.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4999")
    );
    assert!((tracing.sample_ratio - 1.0).abs() < f64::EPSILON);
    // A file's own table keeps everything but its endpoint.
    let own = "\n[tracing]\notlp_endpoint = \"http://collector:4318\"\nsample_ratio = 0.25\n";
    let replaced = with(own, &overrides).expect("valid");
    let tracing = replaced.tracing().expect("a [tracing] table");
    assert_eq!(
        tracing.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4999")
    );
    assert!((tracing.sample_ratio - 0.25).abs() < f64::EPSILON);
    // A bad endpoint is the table's own problem.
    let bad = Overrides {
        otlp_endpoint: Some("not a url".to_string()),
        ..Overrides::default()
    };
    let problems = with("", &bad).expect_err("refused");
    assert!(
        problems.iter().any(|p| p.path == "tracing.otlp_endpoint"),
        "{problems:?}"
    );
}

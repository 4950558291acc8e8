use super::*;

const VALID: &str = r#"
[proxy]
listen = ["127.0.0.1:8000"]
admin_listen = "127.0.0.1:9901"
threads = 2

[upstreams.gateways]
strategy = "weighted"
servers = [ { addr = "127.0.0.1:5000", weight = 3 }, { addr = "127.0.0.1:5003", weight = 2 } ]
connect_timeout = "500ms"
read_timeout = "30s"
retries = 2

[upstreams.gateways.health_check]
path = "/health"
interval = "2s"
timeout = "1s"
healthy_threshold = 2
unhealthy_threshold = 3

[[routes]]
name = "data"
path = "/data"
upstream = "gateways"
methods = ["get", "HEAD"]
"#;

/// Validates `source` as if it were read from `./config.toml`.
fn parse_text(source: &str) -> Result<Config, Vec<Problem>> {
    parse_in(source, Path::new("."))
}

#[test]
fn valid_config_parses_with_typed_values() {
    let config = parse_text(VALID).expect("valid");
    let upstream = &config.upstreams["gateways"];
    assert_eq!(upstream.strategy, Strategy::Weighted);
    assert_eq!(upstream.connect_timeout, Duration::from_millis(500));
    assert_eq!(upstream.servers[1].weight, 2);
    assert_eq!(
        config.routes[0].methods,
        Some(vec![Method::GET, Method::HEAD])
    );
    assert_eq!(config.proxy.shutdown_timeout, Duration::from_secs(10));
}

fn issues(source: &str) -> Vec<Problem> {
    parse_text(source).expect_err("must be invalid")
}

#[test]
fn every_problem_is_reported_at_once_with_path_and_line() {
    let broken = VALID
        .replace("\"weighted\"", "\"fastest\"")
        .replace("\"500ms\"", "\"soon\"")
        .replace("upstream = \"gateways\"", "upstream = \"nowhere\"")
        .replace("weight = 2", "weight = 0");
    let found = issues(&broken);
    let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "upstreams.gateways.strategy",
            "upstreams.gateways.servers[1].weight",
            "upstreams.gateways.connect_timeout",
            "routes[0].upstream",
        ]
    );
    let line_of = |path: &str| found.iter().find(|i| i.path == path).and_then(|i| i.line);
    assert_eq!(line_of("upstreams.gateways.strategy"), Some(8));
    assert_eq!(line_of("upstreams.gateways.servers[1].weight"), Some(9));
    assert_eq!(line_of("upstreams.gateways.connect_timeout"), Some(10));
    assert_eq!(line_of("routes[0].upstream"), Some(24));
    assert!(found[0]
        .message
        .contains("round_robin, weighted, least_connections"));
}

#[test]
fn invalid_values_table() {
    let cases = [
        ("[upstreams.a]\nservers = []\n", "upstreams.a.servers"),
        (
            "[upstreams.a]\nservers = [{ addr = \"localhost\" }]\n",
            "upstreams.a.servers[0].addr",
        ),
        (
            "[upstreams.a]\nservers = [{ addr = \"127.0.0.1:1\" }, { addr = \"127.0.0.1:1\" }]\n",
            "upstreams.a.servers[1].addr",
        ),
        (
            "[upstreams.a]\nservers = [{ addr = \"127.0.0.1:1\" }]\nretries = -1\n",
            "upstreams.a.retries",
        ),
        ("[proxy]\nthreads = 0\n", "proxy.threads"),
        ("[proxy]\nlisten = [\"nope\"]\n", "proxy.listen[0]"),
        (
            "[proxy]\naccess_log = { format = \"xml\" }\n",
            "proxy.access_log.format",
        ),
        (
            "[proxy]\naccess_log = { path = \"\" }\n",
            "proxy.access_log.path",
        ),
        (
            "[proxy]\nshutdown_timeout = \"0s\"\n",
            "proxy.shutdown_timeout",
        ),
        (
            "[[routes]]\npath = \"data\"\nupstream = \"x\"\n",
            "routes[0].path",
        ),
    ];
    for (source, path) in cases {
        let found = issues(source);
        assert!(
            found.iter().any(|i| i.path == path),
            "{source:?}: {found:?}"
        );
    }
}

#[test]
fn syntax_and_unknown_keys_are_errors_with_lines() {
    let found = issues("[proxy]\nlisten = [\"127.0.0.1:1\"]\nthreadz = 2\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("threadz"), "{found:?}");
    assert_eq!(found[0].line, Some(3));
    let found = issues("[proxy\n");
    assert_eq!(found[0].line, Some(1));
}

/// Every unknown key and every wrong type is reported at once with its full path and line,
/// then the semantic checks run on what decoded (issue 31: `--check` used to stop at the
/// first, with the path `(file)`).
#[test]
fn every_unknown_key_and_type_error_is_reported_then_the_semantic_checks() {
    let source = VALID
        .replace("threads = 2", "threads = 0\nthreadz = 2")
        .replace("retries = 2", "retriez = 2\nconnect_timeoutt = \"1s\"")
        .replace("healthy_threshold = 2", "healthy_threshold = \"two\"")
        .replace(
            "methods = [\"get\", \"HEAD\"]",
            "methods = [\"get\"]\nstrip_prefixx = true",
        );
    let found: Vec<(Option<usize>, String)> = issues(&source)
        .into_iter()
        .map(|problem| (problem.line, problem.path))
        .collect();
    assert_eq!(
        found,
        vec![
            (Some(6), "proxy.threadz".to_string()),
            (Some(13), "upstreams.gateways.retriez".to_string()),
            (Some(14), "upstreams.gateways.connect_timeoutt".to_string()),
            (
                Some(20),
                "upstreams.gateways.health_check.healthy_threshold".to_string()
            ),
            (Some(28), "routes[0].strip_prefixx".to_string()),
            // The semantic check after the decoding ones: the file's other values still count.
            (Some(5), "proxy.threads".to_string()),
        ]
    );
    // A required key with a wrong type ends the repair there (nothing to validate without it),
    // and is reported once, not also as missing.
    let found = issues(&VALID.replace("upstream = \"gateways\"", "upstream = 3\nupstreamz = 1"));
    let paths: Vec<&str> = found.iter().map(|problem| problem.path.as_str()).collect();
    assert_eq!(
        paths,
        ["routes[0].upstream", "routes[0].upstreamz"],
        "{found:?}"
    );
}

#[test]
fn shipped_config_is_valid() {
    let source = include_str!("../../../config.toml");
    parse_text(source).expect("the repository's config.toml must validate");
}

/// The shipped config protects every route the seed protected, with a dev secret long
/// enough for HS256 (RFC 7518 §3.2), and the routes the health checks and the worker use stay
/// public.
#[test]
fn shipped_config_requires_jwt_on_the_seeds_protected_routes() {
    let config = parse_text(include_str!("../../../config.toml")).expect("valid");
    let auth_of = |path: &str| {
        config
            .routes
            .iter()
            .find(|route| route.path == path)
            .map(|route| route.auth)
    };
    for path in ["/data", "/data/complex", "/cache/invalidate", "/longtask"] {
        assert_eq!(auth_of(path), Some(RouteAuth::Jwt), "{path}");
    }
    for path in ["/health", "/worker"] {
        assert_eq!(auth_of(path), Some(RouteAuth::None), "{path}");
    }
    let auth = config.auth.as_ref().expect("an [auth] table");
    match &auth.file.secret {
        Some(scalelab_auth::SecretSource::Inline(secret)) => {
            assert!(secret.len() >= 32, "{} bytes", secret.len());
        }
        other => panic!("expected an inline dev secret, got {other:?}"),
    }
    assert!(auth.verifier.settings().can_mint());
    assert_eq!(
        auth.verifier.settings().algorithms(),
        &[scalelab_auth::Algorithm::HS256]
    );
}

/// A config in which every duration setting is `"{timeout}"` (timeouts and intervals) or
/// `"{ttl}"` (TTLs and stale windows).
fn every_duration(timeout: &str, ttl: &str) -> String {
    format!(
        r#"
[proxy]
shutdown_timeout = "{timeout}"

[upstreams.a]
servers = [{{ addr = "127.0.0.1:1" }}]
connect_timeout = "{timeout}"
read_timeout = "{timeout}"
fail_timeout = "{timeout}"

[upstreams.a.health_check]
interval = "{timeout}"
timeout = "{timeout}"

[cache]
lock_timeout = "{timeout}"

[[cache.tiers]]
name = "L1"
ttl = "{ttl}"

[[routes]]
path = "/"
upstream = "a"
cache = {{ default_ttl = "{ttl}", stale_while_revalidate = "{ttl}", stale_if_error = "{ttl}" }}
"#
    )
}

/// Durations have an upper bound (a unit mistake such as "30d" for "30s", and values
/// large enough to overflow `Instant` arithmetic, are refused with the path and the maximum).
#[test]
fn durations_are_bounded() {
    let config =
        parse_text(&every_duration("1d", "365d")).expect("the maxima themselves are valid");
    assert_eq!(config.upstreams["a"].read_timeout, units::MAX_TIMEOUT);
    assert_eq!(
        config.routes[0]
            .cache
            .as_ref()
            .map(|cache| cache.stale_if_error),
        Some(units::MAX_TTL)
    );

    let found = issues(&every_duration("24h 1s", "366d"));
    let cases = [
        ("proxy.shutdown_timeout", "24h 1s", "1d", 3),
        ("upstreams.a.connect_timeout", "24h 1s", "1d", 7),
        ("upstreams.a.read_timeout", "24h 1s", "1d", 8),
        ("upstreams.a.fail_timeout", "24h 1s", "1d", 9),
        ("upstreams.a.health_check.interval", "24h 1s", "1d", 12),
        ("upstreams.a.health_check.timeout", "24h 1s", "1d", 13),
        ("cache.lock_timeout", "24h 1s", "1d", 16),
        ("cache.tiers[0].ttl", "366d", "365d", 20),
        ("routes[0].cache.default_ttl", "366d", "365d", 25),
        ("routes[0].cache.stale_while_revalidate", "366d", "365d", 25),
        ("routes[0].cache.stale_if_error", "366d", "365d", 25),
    ];
    assert_eq!(found.len(), cases.len(), "{found:#?}");
    for (path, text, max, line) in cases {
        let problem = found
            .iter()
            .find(|problem| problem.path == path)
            .unwrap_or_else(|| panic!("no problem at {path}: {found:#?}"));
        assert_eq!(
            problem.to_string(),
            format!("line {line}: {path}: \"{text}\" is more than the maximum of {max}")
        );
    }
}

#[test]
fn a_redis_tier_needs_redis_and_the_last_place() {
    let tiers = |first: &str, last: &str| {
        format!(
            "[cache]\n[[cache.tiers]]\nname = \"L1\"\nkind = \"{first}\"\n[[cache.tiers]]\nname = \"L2\"\nkind = \"{last}\"\n"
        )
    };
    let redis = |url: &str| format!("[redis]\nurl = \"{url}\"\n");
    let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            tiers("memory", "redis") + &redis("redis://127.0.0.1:6379/0"),
            vec![],
        ),
        (
            tiers("memory", "redis"),
            vec![("cache.tiers[1].kind", "needs a [redis] table")],
        ),
        (
            tiers("redis", "memory") + &redis("redis://127.0.0.1:6379/0"),
            vec![("cache.tiers[0].kind", "only the last tier")],
        ),
        (
            tiers("memory", "disk") + &redis("redis://127.0.0.1:6379/0"),
            vec![("cache.tiers[1].kind", "unknown tier kind \"disk\"")],
        ),
        (
            tiers("memory", "redis") + &redis("http://127.0.0.1:6379"),
            vec![("redis.url", "invalid Redis URL")],
        ),
        (
            tiers("memory", "redis") + &redis("rediss://cache.example:6380"),
            vec![],
        ),
        (
            tiers("memory", "redis")
                + "[redis]\nurl = [\"redis://10.0.0.1:7000\", \"redis://10.0.0.2:7001\"]\n",
            vec![],
        ),
        (
            tiers("memory", "redis") + "[redis]\nurl = []\n",
            vec![("redis.url", "at least one seed node")],
        ),
        (
            tiers("memory", "redis")
                + "[redis]\nurl = [\"redis://10.0.0.1:7000\", \"rediss://10.0.0.2:7001\"]\n",
            vec![("redis.url", "mix redis:// and rediss://")],
        ),
        (
            tiers("memory", "redis")
                + "[redis]\nurl = \"redis://10.0.0.1:6379\"\nca = \"/nonexistent/ca.pem\"\n",
            vec![
                ("redis.ca", "only applies to rediss://"),
                ("redis.ca", "cannot read /nonexistent/ca.pem"),
            ],
        ),
    ];
    for (extra, expected) in cases {
        let text = format!("{VALID}\n{extra}");
        match parse_text(&text) {
            Ok(config) => {
                assert!(expected.is_empty(), "{extra}: accepted");
                assert_eq!(config.cache.unwrap().tiers[1].kind, TierKind::Redis);
                assert_eq!(
                    config.redis.unwrap().command_timeout,
                    Duration::from_millis(50)
                );
            }
            Err(problems) => {
                assert_eq!(problems.len(), expected.len(), "{extra}: {problems:?}");
                for ((path, message), problem) in expected.iter().zip(&problems) {
                    assert_eq!(problem.path, *path, "{extra}");
                    assert!(
                        problem.message.contains(message),
                        "{extra}: {}",
                        problem.message
                    );
                }
            }
        }
    }
}

#[test]
fn the_access_log_is_on_by_default_text_to_stderr() {
    let config = parse_text(VALID).expect("valid");
    assert_eq!(config.proxy.access_log, AccessLogSettings::default());
    assert_eq!(
        AccessLogSettings::default(),
        AccessLogSettings {
            enabled: true,
            path: None,
            format: AccessLogFormat::Text
        }
    );
    let set = VALID.replace(
        "threads = 2",
        "threads = 2\naccess_log = { path = \"/var/log/a.log\", format = \"json\", enabled = false }",
    );
    assert_eq!(
        parse_text(&set).expect("valid").proxy.access_log,
        AccessLogSettings {
            enabled: false,
            path: Some(PathBuf::from("/var/log/a.log")),
            format: AccessLogFormat::Json
        }
    );
}

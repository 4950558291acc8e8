use super::*;

#[test]
fn rates_parse_or_say_how_to_write_them() {
    let second = Duration::from_secs(1);
    let minute = Duration::from_secs(60);
    // (text, Ok((count, period)) or Err(part of the message))
    type Case<'a> = (&'a str, Result<(u32, Duration), &'a str>);
    let cases: [Case; 9] = [
        ("20/s", Ok((20, second))),
        ("600/min", Ok((600, minute))),
        ("1/m", Ok((1, minute))),
        ("1000/h", Ok((1000, Duration::from_secs(3600)))),
        (" 5 / second", Ok((5, second))),
        ("0/s", Err("must be in 1..=1000000")),
        ("20", Err("invalid rate")),
        ("x/s", Err("invalid count")),
        ("20/day", Err("unknown unit \"day\"")),
    ];
    for (text, expected) in cases {
        match (parse_rate(text), expected) {
            (Ok(rate), Ok((count, period))) => {
                assert_eq!((rate.count, rate.period), (count, period), "{text}")
            }
            (Err(message), Err(part)) => assert!(message.contains(part), "{text}: {message}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn keys_parse_and_claims_need_a_verified_token() {
    let cases: [(&str, bool, Result<LimitKey, &str>); 8] = [
        ("client_ip", false, Ok(LimitKey::ClientIp)),
        ("route", false, Ok(LimitKey::Route)),
        (
            "header.X-User",
            false,
            Ok(LimitKey::Header(http::HeaderName::from_static("x-user"))),
        ),
        ("query.user", false, Ok(LimitKey::Query("user".into()))),
        ("jwt.sub", true, Ok(LimitKey::Claim("sub".into()))),
        ("jwt.sub", false, Err("needs auth = \"jwt\"")),
        ("header.", false, Err("unknown key")),
        ("cookie.x", false, Err("unknown key")),
    ];
    for (text, jwt, expected) in cases {
        match (parse_key(text, jwt), expected) {
            (Ok(key), Ok(want)) => assert_eq!(key, want, "{text}"),
            (Err(message), Err(part)) => assert!(message.contains(part), "{text}: {message}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }
}

/// A config with one group and one route whose table ends with `route_extra` and whose group's
/// ends with `group_extra`; `proxy_extra` goes in `[proxy]`.
fn config_with(proxy_extra: &str, group_extra: &str, route_extra: &str) -> String {
    format!(
        "[proxy]\n{proxy_extra}\n[upstreams.g]\nservers = [{{ addr = \"127.0.0.1:5000\", max_connections = 2 }}]\n{group_extra}\n[[routes]]\nname = \"data\"\npath = \"/data\"\nupstream = \"g\"\n{route_extra}\n"
    )
}

fn problems_of(text: &str) -> Vec<(String, String)> {
    match crate::config::parse_in(text, std::path::Path::new(".")) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| (p.path, p.message)).collect(),
    }
}

#[test]
fn traffic_keys_parse_into_the_config() {
    let text = config_with(
        "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]",
        "queue = { max = 5, timeout = \"300ms\" }\nslow_start = \"30s\"",
        "rate_limits = [{ name = \"per-client\", rate = \"20/s\", burst = 40 }, { name = \"all\", rate = \"600/min\", key = \"route\" }]",
    );
    let config = crate::config::parse_in(&text, std::path::Path::new(".")).expect("valid");
    let group = &config.upstreams["g"];
    assert_eq!(group.servers[0].max_connections, Some(2));
    assert_eq!(
        group.queue,
        QueueSettings {
            max: 5,
            timeout: Duration::from_millis(300)
        }
    );
    assert_eq!(group.slow_start, Some(Duration::from_secs(30)));
    let limits = &config.routes[0].rate_limits;
    assert_eq!(limits[0].key, LimitKey::ClientIp);
    assert_eq!((limits[0].rate.count, limits[0].burst), (20, 40));
    // The burst defaults to one period's worth.
    assert_eq!(
        (limits[1].key.clone(), limits[1].burst),
        (LimitKey::Route, 600)
    );
    assert_eq!(config.proxy.trusted_proxies.0.len(), 2);
}

#[test]
fn every_traffic_problem_is_reported_with_its_path() {
    let text = config_with(
        "trusted_proxies = [\"10.0.0.0/33\"]",
        "queue = { max = -1, timeout = \"0s\" }\nslow_start = \"forever\"",
        "rate_limits = [{ name = \"a\", rate = \"20/s\", key = \"jwt.sub\" }, { name = \"a\", rate = \"fast\", burst = 0, store = \"redis\", on_store_error = \"maybe\" }]",
    );
    let problems = problems_of(&text);
    let paths: Vec<&str> = problems.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "proxy.trusted_proxies[0]",
            "upstreams.g.queue.max",
            "upstreams.g.queue.timeout",
            "upstreams.g.slow_start",
            "routes[0].rate_limits[0].key",
            "routes[0].rate_limits[1].name",
            "routes[0].rate_limits[1].rate",
            "routes[0].rate_limits[1].burst",
            "routes[0].rate_limits[1].on_store_error",
            "routes[0].rate_limits[1].store",
        ],
        "{problems:#?}"
    );
    let message = |path: &str| {
        problems
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    assert!(message("routes[0].rate_limits[0].key").contains("needs auth = \"jwt\""));
    assert!(message("routes[0].rate_limits[1].store").contains("needs a [redis] table"));
    assert!(message("routes[0].rate_limits[1].on_store_error").contains("\"deny\""));
}

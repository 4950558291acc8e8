use crate::config::balancing::HashKey;
use crate::config::split::Pin;
use std::path::Path;

/// Groups `stable`, `canary` (clear HTTP/1.1) and `grpc` (h2c), and one route with `lines`.
fn config(lines: &str) -> String {
    format!(
        "[upstreams.stable]\nservers = [{{ addr = \"127.0.0.1:5000\" }}]\n\
         [upstreams.canary]\nservers = [{{ addr = \"127.0.0.1:5001\" }}]\n\
         [upstreams.grpc]\nprotocol = \"h2c\"\nservers = [{{ addr = \"127.0.0.1:5002\" }}]\n\
         [[routes]]\npath = \"/\"\n{lines}\n"
    )
}

fn problems(lines: &str) -> Vec<(String, String)> {
    match crate::config::parse_in(&config(lines), Path::new(".")) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|p| (p.path.clone(), p.message.clone()))
            .collect(),
    }
}

#[test]
fn a_split_its_pins_key_and_mirror_parse() {
    let parsed = crate::config::parse_in(
        &config(
            "upstream = [{ group = \"stable\", weight = 95 }, { group = \"canary\", weight = 5, \
             match = { header.\"X-Canary\" = \"1\", cookie.beta = \"yes\" } }]\n\
             split_key = \"cookie.session\"\n\
             mirror = { group = \"canary\", percent = 2.5, max_body = \"1KiB\" }",
        ),
        Path::new("."),
    )
    .expect("valid");
    let route = &parsed.routes()[0];
    // The first group stands for the route where one group is shown.
    assert_eq!(route.upstream.as_deref(), Some("stable"));
    let split = route.split.as_ref().expect("split");
    assert_eq!(split.key, Some(HashKey::Cookie("session".into())));
    let targets: Vec<(&str, u32)> = split
        .targets
        .iter()
        .map(|t| (t.group.as_str(), t.weight))
        .collect();
    assert_eq!(targets, [("stable", 95), ("canary", 5)]);
    assert_eq!(split.targets[0].pin, None);
    assert_eq!(
        split.targets[1].pin,
        Some(Pin {
            headers: vec![("x-canary".into(), "1".into())],
            cookies: vec![("beta".into(), "yes".into())],
        })
    );
    let mirror = route.mirror.as_ref().expect("mirror");
    assert_eq!(
        (mirror.group.as_str(), mirror.percent, mirror.max_body),
        ("canary", 2.5, 1024)
    );
    assert!(
        parsed
            .summary()
            .contains("-> stable 95 / canary 5 (mirror 2.5% to canary)"),
        "{}",
        parsed.summary()
    );
    // A plain name keeps working, with neither split nor mirror; an integer percent and the
    // defaults are accepted.
    let plain = crate::config::parse_in(
        &config("upstream = \"stable\"\nmirror = { group = \"canary\" }"),
        Path::new("."),
    )
    .expect("valid");
    assert_eq!(plain.routes()[0].upstream.as_deref(), Some("stable"));
    assert_eq!(plain.routes()[0].split, None);
    let mirror = plain.routes()[0].mirror.as_ref().expect("mirror");
    assert_eq!((mirror.percent, mirror.max_body), (100.0, 64 * 1024));
}

#[test]
fn every_bad_split_or_mirror_value_is_reported_with_its_path() {
    let cases = [
        (
            "upstream = [{ group = \"stable\" }, { group = \"beta\" }]",
            "routes[0].upstream[1].group",
            "unknown upstream \"beta\"; defined: [canary, grpc, stable]",
        ),
        (
            "upstream = [{ group = \"stable\" }, { group = \"stable\" }]",
            "routes[0].upstream[1].group",
            "group \"stable\" is listed twice",
        ),
        (
            "upstream = [{ group = \"stable\", weight = -1 }]",
            "routes[0].upstream[0].weight",
            "-1 is out of range 0..=10000",
        ),
        (
            "upstream = [{ group = \"stable\", weight = 0 }, { group = \"canary\", weight = 0 }]",
            "routes[0].upstream",
            "every weight is 0",
        ),
        ("upstream = []", "routes[0].upstream", "lists no group"),
        (
            "upstream = [{ group = \"stable\", match = {} }]",
            "routes[0].upstream[0].match",
            "matches nothing",
        ),
        (
            "upstream = [{ group = \"stable\", match = { header.\"a b\" = \"1\" } }]",
            "routes[0].upstream[0].match.header.a b",
            "\"a b\" is not a valid header name",
        ),
        (
            "upstream = [{ group = \"stable\", match = { cookie.\"a;b\" = \"1\" } }]",
            "routes[0].upstream[0].match.cookie.a;b",
            "\"a;b\" is not a valid cookie name",
        ),
        (
            "upstream = [{ group = \"stable\", wieght = 5 }]",
            "routes[0].upstream",
            "a group name, or a list of { group",
        ),
        (
            "upstream = [{ group = \"stable\" }]\nsplit_key = \"body.user\"",
            "routes[0].split_key",
            "unknown split key \"body.user\"",
        ),
        (
            "upstream = \"stable\"\nsplit_key = \"client_ip\"",
            "routes[0].split_key",
            "needs an `upstream` list",
        ),
        (
            "upstream = \"stable\"\nmirror = { group = \"shadow\" }",
            "routes[0].mirror.group",
            "unknown upstream \"shadow\"",
        ),
        (
            "upstream = \"stable\"\nmirror = { group = \"grpc\" }",
            "routes[0].mirror.group",
            "must speak clear-text HTTP/1.1",
        ),
        (
            "upstream = \"stable\"\nmirror = { group = \"canary\", percent = 101 }",
            "routes[0].mirror.percent",
            "101 is out of range 0..=100",
        ),
        (
            "upstream = \"stable\"\nmirror = { group = \"canary\", max_body = \"lots\" }",
            "routes[0].mirror.max_body",
            "",
        ),
        (
            "respond = { status = 204 }\nmirror = { group = \"canary\" }",
            "routes[0].mirror",
            "a route that answers by itself has no requests to mirror",
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

use super::*;

fn route(name: &str, path: &str, host: Option<&str>, methods: Option<&[&str]>) -> Route {
    Route {
        name: name.into(),
        path: path.into(),
        host: host.map(str::to_string),
        methods: methods.map(|m| {
            m.iter()
                .map(|s| Method::from_bytes(s.as_bytes()).expect("method"))
                .collect()
        }),
        upstream: "u".into(),
        cache: None,
        auth: crate::config::RouteAuth::None,
        strip_prefix: false,
        rate_limits: Vec::new(),
        max_body_bytes: None,
        upgrades: true,
    }
}

#[test]
fn resolve_table() {
    let routes = vec![
        route("root", "/", None, None),
        route("data", "/data", None, None),
        route("complex", "/data/complex", None, None),
        route("data-example", "/data", Some("example.com"), None),
        route("tasks-post", "/longtask", None, Some(&["POST"])),
    ];
    let table = RouteTable::new(&routes);
    let name = |host: Option<&str>, path: &str, method: &str| {
        table
            .resolve(
                host,
                path,
                &Method::from_bytes(method.as_bytes()).expect("method"),
            )
            .map(|i| routes[i].name.as_str())
    };
    assert_eq!(name(None, "/data", "GET"), Some("data"));
    assert_eq!(name(None, "/data/complex", "GET"), Some("complex"));
    assert_eq!(name(None, "/data/complexity", "GET"), Some("data"));
    assert_eq!(name(None, "/database", "GET"), Some("root"));
    assert_eq!(
        name(Some("example.com:8000"), "/data/x", "GET"),
        Some("data-example")
    );
    assert_eq!(
        name(Some("EXAMPLE.com"), "/data", "GET"),
        Some("data-example")
    );
    assert_eq!(name(Some("other.com"), "/data", "GET"), Some("data"));
    assert_eq!(name(None, "/longtask", "POST"), Some("tasks-post"));
    assert_eq!(name(None, "/longtask", "GET"), Some("root"));
    let no_root = RouteTable::new(&routes[1..]);
    assert_eq!(no_root.resolve(None, "/other", &Method::GET), None);
}

#[test]
fn prefix_matches_whole_segments() {
    let cases = [
        ("/data", "/data", true),
        ("/data", "/data/", true),
        ("/data", "/data/1", true),
        ("/data", "/database", false),
        ("/data/", "/data/x", true),
        ("/", "/anything", true),
        ("/data", "/dat", false),
    ];
    for (prefix, path, expected) in cases {
        assert_eq!(prefix_matches(prefix, path), expected, "{prefix} vs {path}");
    }
}

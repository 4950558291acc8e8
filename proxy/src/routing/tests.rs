use super::*;

fn route(name: &str, path: &str, host: Option<&str>, methods: Option<&[&str]>) -> Route {
    Route {
        name: name.into(),
        path: path.into(),
        hosts: host
            .map(|h| h.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        methods: methods.map(|m| {
            m.iter()
                .map(|s| Method::from_bytes(s.as_bytes()).expect("method"))
                .collect()
        }),
        upstream: Some("u".into()),
        split: None,
        mirror: None,
        redirect: None,
        respond: None,
        add_prefix: None,
        rewrite: None,
        request_headers: Default::default(),
        response_headers: Default::default(),
        https_redirect: None,
        cache: None,
        auth: crate::config::RouteAuth::None,
        strip_prefix: false,
        rate_limits: Vec::new(),
        max_body_bytes: None,
        upgrades: true,
        compress: None,
        access: Default::default(),
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

/// Issue 24: virtual hosts. Exact names beat `*.domain` wildcards (one label), which beat
/// host-less routes; within each, the longest path wins; a tier that has no route for the path
/// falls through. Case and port are ignored, and a trailing dot.
#[test]
fn virtual_hosts_own_their_paths() {
    let routes = vec![
        route("catch-all", "/", None, None),
        route("deep", "/api/v1/items", None, None),
        route(
            "shop",
            "/",
            Some("shop.example.com,www.shop.example.com"),
            None,
        ),
        route("shop-api", "/api", Some("shop.example.com"), None),
        route("any-sub", "/", Some("*.example.com"), None),
        route(
            "any-sub-admin",
            "/admin",
            Some("*.example.com"),
            Some(&["POST"]),
        ),
        route("v6", "/", Some("::1"), None),
    ];
    let table = RouteTable::new(&routes);
    let cases = [
        (
            Some("shop.example.com"),
            "/api/v1/items",
            "GET",
            Some("shop-api"),
        ),
        (Some("shop.example.com"), "/cart", "GET", Some("shop")),
        (Some("SHOP.Example.COM:8443"), "/cart", "GET", Some("shop")),
        (Some("shop.example.com."), "/cart", "GET", Some("shop")),
        (
            Some("www.shop.example.com"),
            "/api/v1/items",
            "GET",
            Some("shop"),
        ),
        // One label only: `a.b.example.com` is not under `*.example.com`.
        (
            Some("blog.example.com"),
            "/api/v1/items",
            "GET",
            Some("any-sub"),
        ),
        (
            Some("a.blog.example.com"),
            "/api/v1/items",
            "GET",
            Some("deep"),
        ),
        (Some("example.com"), "/x", "GET", Some("catch-all")),
        (
            Some("blog.example.com"),
            "/admin/x",
            "POST",
            Some("any-sub-admin"),
        ),
        (Some("blog.example.com"), "/admin/x", "GET", Some("any-sub")),
        (Some("[::1]:8000"), "/x", "GET", Some("v6")),
        (None, "/api/v1/items/7", "GET", Some("deep")),
        (None, "/api/v1/itemsX", "GET", Some("catch-all")),
        (Some(""), "/x", "GET", Some("catch-all")),
    ];
    for (host, path, method, expected) in cases {
        let found = table
            .resolve(host, path, &Method::from_bytes(method.as_bytes()).unwrap())
            .map(|i| routes[i].name.as_str());
        assert_eq!(found, expected, "{host:?} {method} {path}");
    }
}

/// The prefixes a request path offers the index are exactly those `prefix_matches` accepts,
/// longest first.
#[test]
fn path_prefixes_are_the_matching_ones_longest_first() {
    let cases: [(&str, &[&str]); 5] = [
        ("/a/b", &["/a/b", "/a/", "/a", "/"]),
        ("/a/", &["/a/", "/a", "/"]),
        ("/", &["/"]),
        ("/data/complex", &["/data/complex", "/data/", "/data", "/"]),
        ("//x", &["//x", "//", "/"]),
    ];
    for (path, expected) in cases {
        let found: Vec<&str> = prefixes(path).collect();
        assert_eq!(found, expected, "{path}");
        for prefix in &found {
            assert!(prefix_matches(prefix, path), "{prefix} of {path}");
        }
    }
}

/// The index and a plain scan agree on random route sets and paths (the scan is the old
/// rule's shape: every route, longest path first).
#[test]
fn the_index_agrees_with_a_scan() {
    let paths = ["/", "/a", "/a/", "/a/b", "/ab", "/a/b/c", "/b", "/b/a"];
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..200 {
        let routes: Vec<Route> = (0..1 + next() % 6)
            .map(|i| route(&format!("r{i}"), paths[next() % paths.len()], None, None))
            .collect();
        let table = RouteTable::new(&routes);
        for path in ["/a/b/c/d", "/a", "/ab/c", "/b/", "/c", "/a/"] {
            let scan = (0..routes.len())
                .filter(|&i| prefix_matches(&routes[i].path, path))
                .max_by_key(|&i| (routes[i].path.len(), std::cmp::Reverse(i)));
            assert_eq!(
                table.resolve(None, path, &Method::GET),
                scan,
                "{path} in {routes:?}"
            );
        }
    }
}

//! Issue 24's everyday edge toolbox against the real binary: virtual hosts, redirects, fixed
//! responses, path rewrites, header rules and `Forwarded`, over HTTP/1.1 and h2; every config
//! mistake reported by `--check` with its TOML path; a header rule reloaded under a kept-alive
//! connection.

use crate::harness::*;
use scalelab_test_support::client_builder;
use serde_json::Value;
use std::time::Duration;

/// A client for `client`'s protocol that resolves each of `names` to the proxy's address, so
/// requests carry those names as `Host` (HTTP/1.1) or `:authority` (h2).
fn named_client(client: Client, port: u16, names: &[&str]) -> reqwest::Client {
    let mut builder = client_builder()
        .timeout(patient(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none());
    builder = match client {
        Client::Http1 => builder.http1_only(),
        Client::H2c => builder.http2_prior_knowledge(),
    };
    for name in names {
        builder = builder.resolve(name, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    builder.build().unwrap()
}

fn port_of(proxy: &TestProxy) -> u16 {
    proxy.base.rsplit(':').next().unwrap().parse().unwrap()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

const NAMES: [&str; 5] = [
    "shop.example.com",
    "blog.example.com",
    "a.blog.example.com",
    "example.com",
    "other.test",
];

async fn virtual_hosts(client: Client) {
    let (a, b, c) = (
        TestBackend::start("catch-all"),
        TestBackend::start("shop"),
        TestBackend::start("sub"),
    );
    let config = TestConfig::new()
        .client(client)
        .upstream(UpstreamSpec::new("a", "round_robin", &[&a], &[1]))
        .upstream(UpstreamSpec::new("b", "round_robin", &[&b], &[1]))
        .upstream(UpstreamSpec::new("c", "round_robin", &[&c], &[1]))
        .route("catch-all", "/", "a")
        .route("deep", "/api/v1/items", "a")
        .route_with(
            "shop",
            "/",
            "b",
            "host = [\"Shop.Example.com\", \"www.shop.example.com\"]",
        )
        .route_with("any-sub", "/", "c", "host = \"*.example.com\"");
    let proxy = TestProxy::start(&config).await;
    let http = named_client(client, port_of(&proxy), &NAMES);
    let port = port_of(&proxy);
    for (host, path, server) in [
        // The virtual host owns its paths: its "/" beats the host-less "/api/v1/items".
        ("shop.example.com", "/api/v1/items", "shop"),
        ("blog.example.com", "/api/v1/items", "sub"),
        // One label only.
        ("a.blog.example.com", "/api/v1/items", "catch-all"),
        ("example.com", "/x", "catch-all"),
        ("other.test", "/api/v1/items/3", "catch-all"),
    ] {
        let response = http
            .get(format!("http://{host}:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), client.version());
        assert_eq!(response.status(), 200, "{host}{path}");
        assert_eq!(json_of(response).await["server"], server, "{host}{path}");
    }
}

async fn redirects_fixed_responses_and_rewrites(client: Client) {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .client(client)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .raw_route(
            "[[routes]]\nname = \"moved\"\npath = \"/old\"\n\
             redirect = { to = \"https://{host}/new/{rest}?from={request_id}\", path_regex = \"^/old/(?P<rest>.*)$\" }\n",
        )
        .raw_route(
            "[[routes]]\nname = \"temp\"\npath = \"/temp\"\nredirect = { to = \"/elsewhere{path_and_query}\", status = 302 }\n",
        )
        .raw_route(
            "[[routes]]\nname = \"robots\"\npath = \"/robots.txt\"\n\
             respond = { status = 200, body = \"User-agent: *\\nDisallow: /admin\\n\", content_type = \"text/plain\" }\n",
        )
        .route_with(
            "v1",
            "/v1",
            "g",
            "strip_prefix = true\nadd_prefix = \"/api/v2\"\nrewrite = { path_regex = \"^/users/([0-9]+)$\", to = \"/people/{1}\" }",
        );
    let proxy = TestProxy::start(&config).await;
    let http = named_client(client, port_of(&proxy), &["example.com"]);
    let port = port_of(&proxy);

    let response = http
        .get(format!("http://example.com:{port}/old/a/b?x=1"))
        .header("X-Request-Id", "rid-7")
        .header("X-Scalelab-Explain", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        "https://example.com/new/a/b?from=rid-7"
    );
    assert!(response.headers()["x-scalelab-explain"]
        .to_str()
        .unwrap()
        .contains("redirect: route moved"));
    // Not GET: 308 keeps the method and body.
    let response = http
        .post(format!("http://example.com:{port}/old/c"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    // The regex does not match and the route has no upstream: no route.
    let response = http
        .get(format!("http://example.com:{port}/old"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = http
        .get(format!("http://example.com:{port}/temp/x?y=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/elsewhere/temp/x?y=2");

    let response = http
        .get(format!("http://example.com:{port}/robots.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(
        response.text().await.unwrap(),
        "User-agent: *\nDisallow: /admin\n"
    );
    assert_eq!(
        backend.hits(),
        0,
        "redirects and fixed responses reach no upstream"
    );

    // strip_prefix, then the rewrite, then add_prefix.
    for (asked, seen) in [
        ("/v1/users/42", "/api/v2/people/42"),
        ("/v1/other", "/api/v2/other"),
    ] {
        let response = http
            .get(format!("http://example.com:{port}{asked}?q=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = json_of(response).await;
        assert_eq!(body["path"], seen, "{asked}");
        assert_eq!(body["query"], "q=1");
    }

    // Redirects and fixed responses count under their routes.
    let text = scrape(&proxy).await;
    for (route, code, count) in [
        ("moved", 301, 1.0),
        ("moved", 308, 1.0),
        ("robots", 200, 1.0),
    ] {
        let total: f64 = text
            .lines()
            .filter(|line| {
                line.starts_with("scalelab_http_requests_total{")
                    && line.contains(&format!("route=\"{route}\""))
                    && line.contains(&format!("code=\"{code}\""))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(total, count, "{route} {code}");
    }
}

const AUTH: &str = "algorithms = [\"HS256\"]\nsecret = \"edge-rules-test-secret-0123456789abcdef\"";

async fn header_rules(client: Client) {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .client(client)
        .proxy_setting(
            "forwarded = true\n\
             request_headers = { set = { \"X-Edge\" = \"scalelab\" }, remove = [\"X-Secret\"] }\n\
             response_headers = { set = { \"X-Served-By\" = \"{route}\" } }",
        )
        .auth_table(AUTH)
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route_with(
            "api",
            "/api",
            "g",
            "request_headers = { set = { \"X-Route\" = \"{route} {request_id}\", \"X-Edge\" = \"route\" }, add = { \"X-Trace\" = \"{client_ip}\" } }\n\
             response_headers = { set = { \"X-Frame-Options\" = \"DENY\" }, remove = [\"X-Origin-Hit\"] }",
        )
        .route_with(
            "me",
            "/me",
            "g",
            "auth = \"jwt\"\nrequest_headers = { set = { \"X-Tenant\" = \"{jwt.tenant}\" } }",
        );
    let proxy = TestProxy::start(&config).await;
    let http = proxy.http();
    let response = http
        .get(proxy.url("/api/x"))
        .header("X-Secret", "leak")
        .header("X-Request-Id", "rid-h")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-served-by"], "api");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(response.headers().get("x-origin-hit").is_none());
    assert_eq!(backend.last_header("x-route").as_deref(), Some("api rid-h"));
    // The route's rules come after the proxy's.
    assert_eq!(backend.last_header("x-edge").as_deref(), Some("route"));
    assert_eq!(backend.last_header("x-trace").as_deref(), Some("127.0.0.1"));
    assert_eq!(backend.last_header("x-secret"), None);
    let forwarded = backend.last_header("forwarded").unwrap();
    assert!(
        forwarded.starts_with("for=127.0.0.1;proto=http;host=\"127.0.0.1:"),
        "{forwarded}"
    );
    // A fixed answer of the proxy carries the proxy's response rules too (no route: none of
    // the route's).
    let response = http.get(proxy.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);

    let secret = "edge-rules-test-secret-0123456789abcdef";
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "u1", "tenant": "acme", "exp": 4_102_444_800u64}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let response = http
        .get(proxy.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(backend.last_header("x-tenant").as_deref(), Some("acme"));
}

over_each_client!(
    virtual_hosts,
    redirects_fixed_responses_and_rewrites,
    header_rules
);

/// The access log records the client's path and the rewritten one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_the_client_path_and_the_upstream_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .proxy_setting(&format!(
            "access_log = {{ path = {:?} }}",
            path.display().to_string()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route_with(
            "old",
            "/old",
            "g",
            "rewrite = { path_regex = \"^/old/(.*)$\", to = \"/new/{1}\" }",
        )
        .route("plain", "/plain", "g");
    let proxy = TestProxy::start(&config).await;
    for target in ["/old/a", "/plain/b"] {
        let response = client().get(proxy.url(target)).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let log = eventually(Duration::from_secs(5), "two access-log lines", || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        async move { (text.lines().count() >= 2).then_some(text) }
    })
    .await;
    assert!(
        log.contains("\"GET /old/a HTTP/1.1\"") && log.contains("upstream_path=\"/new/a\""),
        "{log}"
    );
    assert!(log.contains("\"GET /plain/b HTTP/1.1\""), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("/plain/b") && l.contains("upstream_path=-")),
        "{log}"
    );
}

/// Every mistake in the edge rules is a problem with its TOML path, all of them at once.
#[test]
fn every_edge_rule_mistake_is_reported_with_its_path() {
    let (code, text) = check_text(
        r#"[proxy]
https_redirect = true
request_headers = { set = { "Content-Length" = "1" } }

[upstreams.g]
servers = [{ addr = "127.0.0.1:1" }]

[[routes]]
name = "a"
path = "/a"
upstream = "g"
host = ["example.com:8080", "*.com", "a*.example.com"]
rewrite = { path_regex = "^/a/(", to = "/b/{1}" }

[[routes]]
name = "b"
path = "/b"
redirect = { to = "https://{hots}/", status = 200 }

[[routes]]
name = "c"
path = "/c"

[[routes]]
name = "d"
path = "/d"
upstream = "g"
request_headers = { set = { "X-User" = "{jwt.sub}", "Bad Name" = "x" }, remove = ["Host"] }
response_headers = { add = { "Transfer-Encoding" = "chunked" } }
respond = { status = 99 }
"#,
    );
    assert_eq!(code, Some(1));
    for expected in [
        "line 2: proxy.https_redirect: needs an HTTPS listener",
        "line 3: proxy.request_headers.set.Content-Length: \"Content-Length\" cannot be changed: a framing header",
        "routes[0].host[0]: \"example.com:8080\": a host name without a port",
        "routes[0].host[1]: \"*.com\": a wildcard needs a domain of two labels",
        "routes[0].host[2]: \"a*.example.com\": a wildcard is only",
        "line 13: routes[0].rewrite.path_regex: invalid regex",
        "routes[1].redirect.status: 200 is not a redirect status",
        "routes[1].redirect.to: unknown variable {hots}",
        "routes[2].upstream: missing: a route needs an upstream, a redirect or a respond",
        "routes[3].request_headers.set.X-User: {jwt.sub} needs a verified token",
        "routes[3].request_headers.set.Bad Name: \"Bad Name\" is not a valid header name",
        "routes[3].request_headers.remove[0]: \"Host\" cannot be removed",
        "routes[3].response_headers.add.Transfer-Encoding: \"Transfer-Encoding\" cannot be changed",
        "routes[3].respond.status: 99 is not a final status",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// A reload that changes a header rule applies to the next request on the same kept-alive
/// client connection: the connection is not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_header_rule_applies_to_the_next_request_on_the_same_connection() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let backend = TestBackend::start("origin");
    let with = |value: &str| {
        TestConfig::new()
            .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
            .route_with(
                "api",
                "/api",
                "g",
                &format!("response_headers = {{ set = {{ \"X-Rule\" = \"{value}\" }} }}"),
            )
    };
    let first = with("one");
    let proxy = TestProxy::start(&first).await;
    let stream = tokio::net::TcpStream::connect(proxy.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let mut stream = BufReader::new(stream);
    async fn exchange(stream: &mut BufReader<tokio::net::TcpStream>) -> String {
        stream
            .get_mut()
            .write_all(b"GET /api/x HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        head
    }
    let head = exchange(&mut stream).await;
    assert!(head.to_ascii_lowercase().contains("x-rule: one"), "{head}");
    proxy.write_config(&first.render().replace("\"one\"", "\"two\""));
    eventually(Duration::from_secs(10), "the reload", || {
        let proxy = &proxy;
        async move { (proxy.reloads().await.len() >= 2).then_some(()) }
    })
    .await;
    let head = exchange(&mut stream).await;
    assert!(head.to_ascii_lowercase().contains("x-rule: two"), "{head}");
}

/// `[proxy] https_redirect`: plain HTTP gets 308 to the same URL on the HTTPS listener, except
/// the listed prefixes; HTTPS is served. Turned on by a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_the_https_listener_except_acme_paths() {
    use crate::tls::clients::Offer;
    let lab =
        crate::tls::lab::TlsLab::start("1.2", &[("lab", &["localhost"], &["localhost"])]).await;
    let text = lab.config_text.replacen(
        "[proxy]\n",
        "[proxy]\nhttps_redirect = true\nhttps_redirect_except = [\"/.well-known/acme-challenge/\"]\n",
        1,
    );
    lab.proxy.write_config(&text);
    eventually(Duration::from_secs(10), "the reload", || {
        let proxy = &lab.proxy;
        async move { (proxy.reloads().await.len() >= 2).then_some(()) }
    })
    .await;
    let port = port_of(&lab.proxy);
    let http = named_client(Client::Http1, port, &["localhost"]);
    let response = http
        .get(format!("http://localhost:{port}/a/b?c=1"))
        .header("x-scalelab-explain", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    let location = format!("https://localhost:{}/a/b?c=1", lab.tls_port);
    assert_eq!(response.headers()["location"], location.as_str());
    // The redirect explains itself (it did not: the explain switch was decided after it).
    assert_eq!(
        response.headers()["x-scalelab-explain"],
        format!("redirect: https_redirect to {location} (308)").as_str()
    );
    let response = http
        .get(format!(
            "http://localhost:{port}/.well-known/acme-challenge/token"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = lab
        .client(Offer::Only13, &[b"http/1.1"])
        .get(lab.url("localhost", "/a/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

//! `GET /metrics` on the admin listener: values match what the proxy did, and series of
//! servers that left the config leave the output.

use crate::harness::*;
use std::time::Duration;

const AUTH: &str =
    "algorithms = [\"HS256\"]\nsecret = \"metrics-test-secret-0123456789abcdef\"\nleeway = \"5s\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_traffic_cache_auth_and_reloads() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let config = |servers: &[&TestBackend], weights: &[u32]| {
        TestConfig::new()
            .upstream(UpstreamSpec::new("g", "weighted", servers, weights))
            .cache(&[("L1", 10), ("L2", 10)], 2)
            .auth_table(AUTH)
            .cached_route("c", "/c", "g", "key = \"{path}\"")
            .jwt_route("secure", "/secure", "g")
            .route("all", "/", "g")
    };
    let first = config(&[&a, &b], &[2, 1]);
    let proxy = TestProxy::start(&first).await;
    let http = client();
    for _ in 0..6 {
        assert_eq!(
            http.get(proxy.url("/x")).send().await.unwrap().status(),
            200
        );
    }
    for _ in 0..3 {
        http.get(proxy.url("/c/obj")).send().await.unwrap();
    }
    assert_eq!(
        http.get(proxy.url("/secure"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let text = scrape(&proxy).await;
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    // 6 weighted picks at 2:1, plus the cache miss (the third server pick went to `a`).
    assert_eq!(
        sample(
            &text,
            &format!("scalelab_upstream_selections_total{{server=\"{a_addr}\",upstream=\"g\"}}")
        ),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("scalelab_upstream_selections_total{{server=\"{b_addr}\",upstream=\"g\"}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("scalelab_upstream_server_up{{server=\"{b_addr}\",upstream=\"g\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("scalelab_upstream_server_weight{{server=\"{a_addr}\",upstream=\"g\"}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("scalelab_upstream_active_requests{{server=\"{a_addr}\",upstream=\"g\"}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "scalelab_upstream_info{strategy=\"weighted\",upstream=\"g\"}"
        ),
        Some(1.0)
    );
    // One miss stored in L2, the next hit promotes it (hits = 2 needs two): 2 hits in L2.
    assert_eq!(
        sample(&text, "scalelab_cache_sets_total{tier=\"L2\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "scalelab_cache_lookups_total{result=\"hit\",tier=\"L2\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "scalelab_cache_moves_total{direction=\"up\",tier=\"L2\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "scalelab_cache_entries{tier=\"L1\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "scalelab_jwt_validations_total{result=\"missing\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "scalelab_jwt_validations_total{result=\"accepted\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "scalelab_config_generation"), Some(1.0));
    assert_eq!(
        sample(&text, "scalelab_config_reloads_total{result=\"applied\"}"),
        Some(0.0)
    );

    // Remove `b`: its series leave the exposition; a broken file counts as rejected.
    let second = {
        let mut next = config(&[&a], &[2]);
        next.proxy_port = first.proxy_port;
        next.admin_port = first.admin_port;
        next
    };
    proxy.write_config(&second.render());
    let (status, _) = proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200);
    proxy.write_config("[proxy\n");
    let (status, _) = proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 422);
    let text = eventually(
        Duration::from_secs(3),
        "the reload in the metrics",
        || async {
            let text = scrape(&proxy).await;
            (sample(&text, "scalelab_config_generation") == Some(2.0)).then_some(text)
        },
    )
    .await;
    assert!(
        !text.contains(&b_addr),
        "removed server still exposed:\n{text}"
    );
    assert!(text.contains(&a_addr));
    assert_eq!(
        sample(&text, "scalelab_config_reloads_total{result=\"applied\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "scalelab_config_reloads_total{result=\"rejected\"}"),
        Some(1.0)
    );
    assert!(sample(
        &text,
        "scalelab_config_last_reload_success_timestamp_seconds"
    )
    .is_some_and(|t| t > 1.0e9));
}

/// Metric families the backends export, not the proxy. The dashboard's use of them is checked by
/// `lab/tests/observe.rs` against the real backends' `/metrics`, where every dashboard query must also
/// return data in a real Prometheus that scraped the whole lab.
const BACKEND_PREFIXES: [&str; 4] = [
    "scalelab_backend_",
    "scalelab_gateway_",
    "scalelab_database_",
    "scalelab_worker_",
];

/// The dashboard's structure (what Grafana's dashboard-linter checks) and, after real traffic,
/// that every proxy metric its queries use is one the proxy exports (a typo would leave a panel
/// empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_is_well_formed_and_uses_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grafana/dashboards/scalelab.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        variables.contains(&"DS_PROMETHEUS"),
        "a datasource variable avoids the provisioning trap"
    );
    let mut ids = std::collections::HashSet::new();
    let mut cells = std::collections::HashSet::new();
    let mut exprs = Vec::new();
    let mut exemplar_targets: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        let grid = &panel["gridPos"];
        let (x, y, w, h) = ["x", "y", "w", "h"]
            .map(|k| grid[k].as_u64().unwrap())
            .into();
        assert!(x + w <= 24, "{} is wider than the grid", panel["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{} overlaps another panel",
                    panel["title"]
                );
            }
        }
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()));
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{} has no description",
            panel["title"]
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "{} has no unit",
            panel["title"]
        );
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}");
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().to_string();
            assert!(
                !expr.contains("rate(")
                    || expr.contains("$__rate_interval")
                    || expr.contains("increase("),
                "{expr}"
            );
            for variable in ["$job", "$instance"] {
                assert!(
                    expr.contains(variable),
                    "{expr} does not filter by {variable}"
                );
            }
            // Only the request-duration histogram carries exemplars (issue 29).
            if target["exemplar"] == true {
                assert!(
                    expr.contains("scalelab_http_request_duration_seconds_bucket"),
                    "{expr} asks for exemplars the proxy does not export"
                );
                exemplar_targets.push(panel["title"].as_str().unwrap().to_string());
            }
            exprs.push(expr);
        }
    }
    assert_eq!(
        exemplar_targets,
        ["Latency percentiles by route"],
        "the latency panel shows exemplars"
    );

    // Real traffic of every kind the panels show, then every metric name must be exported. Some
    // series appear only with their first event: a server that refuses connections, under an
    // active check in `g` and without one in `flaky` (so requests still pick it), gives failed
    // checks, a health transition, connect errors and a recovered retry.
    let backend = TestBackend::start("a");
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut checked = UpstreamSpec::new("g", "round_robin", &[&backend], &[1]);
    checked.servers.push((dead, 1));
    let mut flaky = UpstreamSpec::new("flaky", "round_robin", &[&backend], &[1]);
    flaky.servers.push((dead, 1));
    flaky.health = None;
    flaky.retries = 1;
    // An HTTPS listener with a certificate (its expiry series) and a WebSocket (the upgrade
    // series) for the edge row.
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = scalelab_test_support::Ca::new()
        .leaf(&["localhost"])
        .install(certs.path(), "lab");
    let config = TestConfig::new()
        .proxy_setting(&format!("tls_listen = [\"127.0.0.1:{}\"]", free_port()))
        .tables(&format!(
            "[[tls.certificates]]\ncert = {:?}\nkey = {:?}\nserver_names = [\"localhost\"]\n",
            cert.display().to_string(),
            key.display().to_string()
        ))
        .upstream(checked)
        .upstream(flaky)
        // A group whose server is a name the (absent) name server never answers: the DNS
        // row's series, counted from the first resolution before the proxy listens.
        .tables(&format!(
            "[dns]\nresolvers = [\"127.0.0.1:{}\"]\ntimeout = \"200ms\"\n[upstreams.named]\nservers = [{{ name = \"nowhere.test\", port = 1 }}]\n",
            free_port()
        ))
        // The balancer row: a group with outlier detection and a circuit, a canary split over
        // it and `g`, and a mirror to it (the mirror's series appear with its first copy).
        .tables(&format!(
            "[upstreams.guarded]\nservers = [{{ addr = \"{}\" }}]\noutlier = {{ consecutive_5xx = 5 }}\ncircuit = {{ max_requests = 100 }}\n",
            backend.addr
        ))
        .raw_route(
            "[[routes]]\nname = \"split\"\npath = \"/split\"\nupstream = [{ group = \"g\", weight = 1 }, { group = \"guarded\", weight = 1 }]\nmirror = { group = \"guarded\", percent = 100 }\n",
        )
        .cache(&[("L1", 10), ("L2", 10)], 2)
        .auth_table(AUTH)
        .cached_route("c", "/c", "g", "key = \"{path}\"")
        .jwt_route("secure", "/secure", "g")
        .route_with(
            "fwd",
            "/fwd",
            "g",
            "auth = \"forward\"\nforward = { upstream = \"g\", path = \"/verify\" }",
        )
        .route("api", "/api", "flaky")
        .route("all", "/", "g");
    let proxy = TestProxy::start(&config).await;
    let websocket =
        scalelab_test_support::WsClient::connect(&crate::upgrades::ws_url(&proxy, "/ws"), &[])
            .await
            .unwrap();
    websocket.close().await;
    client().get(proxy.url("/c/x")).send().await.unwrap();
    client().get(proxy.url("/secure")).send().await.unwrap();
    client().get(proxy.url("/fwd")).send().await.unwrap();
    for _ in 0..2 {
        client().get(proxy.url("/api/x")).send().await.unwrap();
    }
    client().get(proxy.url("/split/x")).send().await.unwrap();
    let names: std::collections::BTreeSet<&str> = exprs
        .iter()
        .flat_map(|expr| expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|word| word.starts_with("scalelab_"))
        .filter(|word| !BACKEND_PREFIXES.iter().any(|p| word.starts_with(p)))
        .collect();
    // The health checker needs a few rounds to count the dead server's failures and take it out.
    let deadline = std::time::Instant::now() + patient(Duration::from_secs(5));
    loop {
        let text = scrape(&proxy).await;
        let exported: std::collections::HashSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let missing: Vec<&&str> = names.iter().filter(|n| !exported.contains(**n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard uses {missing:?}, which /metrics does not export"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

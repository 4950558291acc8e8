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

/// The dashboard's structure (what Grafana's dashboard-linter checks) and, after real traffic,
/// that every metric its queries use is one the proxy exports (a typo would leave a panel empty).
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
            exprs.push(expr);
        }
    }

    // Real traffic of every kind the panels show, then every metric name must be exported.
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .cache(&[("L1", 10), ("L2", 10)], 2)
        .auth_table(AUTH)
        .cached_route("c", "/c", "g", "key = \"{path}\"")
        .jwt_route("secure", "/secure", "g")
        .route("all", "/", "g");
    let proxy = TestProxy::start(&config).await;
    client().get(proxy.url("/c/x")).send().await.unwrap();
    client().get(proxy.url("/secure")).send().await.unwrap();
    let text = scrape(&proxy).await;
    let exported: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for expr in &exprs {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("scalelab_"))
        {
            assert!(
                exported.contains(name),
                "the dashboard uses {name}, which /metrics does not export"
            );
        }
    }
}

/// Every query of the dashboard (panels and annotations), with Grafana's macros filled in, runs
/// against a real Prometheus that scraped a proxy after real traffic, and returns data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_in_a_real_prometheus() {
    let prometheus = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Prometheus is not installed: `apt-get install prometheus` (scripts/install-deps.sh does)");
    let backend = TestBackend::start("a");
    // A second server that starts failing its checks and recovers mid-test, so the health
    // panels and annotation have a change to show.
    let flapping = TestBackend::start("b");
    flapping.set_failing_health(true);
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new(
            "g",
            "round_robin",
            &[&backend, &flapping],
            &[1, 1],
        ))
        .cache(&[("L1", 10), ("L2", 10)], 2)
        .auth_table(AUTH)
        .cached_route("c", "/c", "g", "key = \"{path}\"")
        .jwt_route("secure", "/secure", "g")
        .route("all", "/", "g");
    let proxy = TestProxy::start(&config).await;

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: scalelab-proxy\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            config.admin_port
        ),
    )
    .unwrap();
    let mut server = std::process::Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut server);

    // Traffic of every kind the panels show, spread over several scrapes, and one reload.
    let http = client();
    let query = |expr: String| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", expr.as_str())])
                .send()
                .await
                .ok()?;
            response.json::<serde_json::Value>().await.ok()
        }
    };
    // Changes only show once Prometheus has seen the state before them.
    eventually(Duration::from_secs(20), "Prometheus's first scrape", || {
        let query = &query;
        async move {
            let value = query("scalelab_build_info".to_string()).await?;
            (!value["data"]["result"].as_array()?.is_empty()).then_some(())
        }
    })
    .await;
    for round in 0..4 {
        if round == 2 {
            flapping.set_failing_health(false);
        }
        http.get(proxy.url(&format!("/c/{round}")))
            .send()
            .await
            .unwrap();
        http.get(proxy.url(&format!("/c/{round}")))
            .send()
            .await
            .unwrap();
        http.get(proxy.url("/secure")).send().await.unwrap();
        http.get(proxy.url("/x")).send().await.unwrap();
        if round == 1 {
            proxy.write_config(
                &config
                    .render()
                    .replace("threads = 2", "threads = 2\nshutdown_timeout = \"9s\""),
            );
            let (status, _) = proxy.admin_post("/admin/reload").await;
            assert_eq!(status, 200);
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    eventually(
        Duration::from_secs(20),
        "Prometheus to have several scrapes",
        || {
            let query = &query;
            async move {
                let value = query("count_over_time(scalelab_build_info[1m])".to_string()).await?;
                let count: f64 = value["data"]["result"][0]["value"][1]
                    .as_str()?
                    .parse()
                    .ok()?;
                (count >= 4.0).then_some(())
            }
        },
    )
    .await;

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grafana/dashboards/scalelab.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    exprs.extend(
        dashboard["annotations"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["expr"].as_str().map(str::to_string)),
    );
    let mut failures = Vec::new();
    for expr in &exprs {
        // Annotations look back over the whole test, not the last minute only.
        let filled = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
            .replace("[1m]) > 0", "[5m]) > 0")
            .replace("$job", ".*")
            .replace("$instance", ".*")
            .replace("$upstream", ".*");
        let answer = query(filled.clone()).await;
        let ok = answer.as_ref().is_some_and(|a| {
            a["status"] == "success"
                && a["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
        });
        if !ok {
            failures.push(format!("{filled}\n  -> {answer:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        exprs.len(),
        failures.join("\n")
    );
}

//! `--listen`, `--admin-listen` and `--shared-cache-url`: several proxies share one config file,
//! and the command line wins over the file at start-up and after every reload.

use crate::harness::*;
use scalelab_test_support::RedisServer;
use serde_json::Value;
use std::ffi::OsString;
use std::time::Duration;

fn file(base: TestConfig, origin: &TestBackend, default_ttl: &str) -> TestConfig {
    base.upstream(UpstreamSpec::new("g", "round_robin", &[origin], &[1]))
        .cache(&[("L1", 100), ("L2", 100)], 2)
        .cached_route(
            "c",
            "/c",
            "g",
            &format!("key = \"{{path}}\", default_ttl = \"{default_ttl}\""),
        )
}

/// The overridden settings as the admin API reports the running config.
async fn overridden(proxy: &TestProxy) -> (Value, Value, Value, Value) {
    let config = proxy.admin_get("/admin/config").await["config"].clone();
    (
        config["proxy"]["listen"].clone(),
        config["proxy"]["admin_listen"].clone(),
        config["redis"]["url"].clone(),
        config["cache"]["tiers"][1]["kind"].clone(),
    )
}

#[tokio::test]
async fn command_line_listeners_and_shared_cache_win_over_the_file_and_survive_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let origin = TestBackend::start("origin");
    let config = file(TestConfig::new(), &origin, "60s");
    let (port, admin_port) = (free_port(), free_port());
    let args: Vec<OsString> = vec![
        "--listen".into(),
        format!("127.0.0.1:{port}").into(),
        "--admin-listen".into(),
        format!("127.0.0.1:{admin_port}").into(),
        "--shared-cache-url".into(),
        redis.url().into(),
    ];
    let proxy = TestProxy::start_on(&config, (port, admin_port), &args).await;
    let want = (
        Value::from(vec![format!("127.0.0.1:{port}")]),
        Value::from(format!("127.0.0.1:{admin_port}")),
        Value::from(redis.url()),
        Value::from("redis"),
    );
    assert_eq!(overridden(&proxy).await, want);
    for file_port in [config.proxy_port, config.admin_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err(),
            "nothing listens on the file's port {file_port}"
        );
    }

    // The file's last memory tier is now the shared one: a miss is stored in Redis.
    let response = client().get(proxy.url("/c/a")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "MISS");
    eventually(
        patient(Duration::from_secs(5)),
        "the object to reach redis",
        || async {
            (proxy.admin_get("/cache/stats").await["levels"]["L2"]["sets"] == 1).then_some(())
        },
    )
    .await;

    // A reload of the same file with another TTL applies, reports no restart-required change,
    // and keeps every override.
    let edited = file(TestConfig::same_ports(&config), &origin, "30s");
    proxy.write_config(&edited.render());
    let _ = proxy.admin_post("/admin/reload").await;
    let entry = eventually(
        patient(Duration::from_secs(10)),
        "the edited file to be applied",
        || async {
            proxy
                .reloads()
                .await
                .into_iter()
                .find(|r| r["generation"] == 2 && r["result"] == "applied")
        },
    )
    .await;
    let changes = entry["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["path"] == "routes[0].cache.default_ttl"),
        "{entry:#}"
    );
    assert!(
        changes.iter().all(|c| c["effect"] == "applied"),
        "{entry:#}"
    );
    assert_eq!(overridden(&proxy).await, want);
    let response = client().get(proxy.url("/c/a")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

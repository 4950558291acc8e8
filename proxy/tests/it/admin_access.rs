//! `[admin] token`: the admin endpoints and the proxy listener's `POST /cache/invalidate`
//! need `Authorization: Bearer <token>`; `/health` (and `/metrics` unless `metrics_auth`)
//! stay open; the token never shows in `/admin/config` or the log; an admin listener off
//! loopback without a token is refused.

use crate::harness::*;
use reqwest::Method;
use std::time::Duration;

const TOKEN: &str = "admin-test-token-0123456789abcdef";

/// A proxy with a cache, the admin token in a file, and `admin_extra` lines in `[admin]`.
async fn start(backend: &TestBackend, admin_extra: &str) -> (TestProxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[backend], &[1]))
        .cache(&[("L1", 100)], 2)
        .tables(&format!(
            "[admin]\ntoken = {{ file = {:?} }}\n{admin_extra}\n",
            token_file.display().to_string()
        ))
        .cached_route("c", "/c", "g", "key = \"{path}\"")
        .route("plain", "/", "g");
    (TestProxy::start(&config).await, dir)
}

/// The status of `method url` with `authorization` (if any), and the JSON body when there is
/// one.
async fn call(
    method: Method,
    url: &str,
    authorization: Option<&str>,
) -> (u16, Option<serde_json::Value>) {
    let mut request = client().request(method.clone(), url);
    if method == Method::POST && url.ends_with("/cache/invalidate") {
        request = request.json(&serde_json::json!({"key": "/c/none"}));
    }
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"scalelab-admin\""
        );
    }
    (status, response.json().await.ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_and_cache_endpoint_needs_the_token() {
    let backend = TestBackend::start("origin");
    let (proxy, _dir) = start(&backend, "").await;
    let right = format!("Bearer {TOKEN}");
    let guarded = [
        (Method::GET, format!("{}/admin/config", proxy.admin)),
        (Method::GET, format!("{}/admin/upstreams", proxy.admin)),
        (Method::GET, format!("{}/admin/reloads", proxy.admin)),
        (Method::POST, format!("{}/admin/reload", proxy.admin)),
        (Method::GET, format!("{}/stats", proxy.admin)),
        (Method::GET, format!("{}/cache/stats", proxy.admin)),
        (
            Method::GET,
            format!("{}/admin/cache?key=/c/none", proxy.admin),
        ),
        (
            Method::DELETE,
            format!("{}/admin/cache?key=/c/none", proxy.admin),
        ),
        (Method::POST, proxy.url("/cache/invalidate")),
    ];
    for (method, url) in &guarded {
        for wrong in [
            None,
            Some("Bearer admin-test-token-0123456789abcdeX"),
            Some("Bearer "),
            Some(TOKEN),
            Some("Basic YWRtaW46YWRtaW4="),
        ] {
            let (status, body) = call(method.clone(), url, wrong).await;
            assert_eq!(status, 401, "{method} {url} with {wrong:?}");
            let error = body.unwrap()["error"].as_str().unwrap().to_string();
            assert!(error.contains("Bearer <admin token>"), "{error}");
        }
        let (status, _) = call(method.clone(), url, Some(&right)).await;
        // The object does not exist: the admin API's inspection says 404, everything else 200.
        let expected = if url.contains("/admin/cache?") && *method == Method::GET {
            404
        } else {
            200
        };
        assert_eq!(status, expected, "{method} {url} with the token");
    }
    for open in ["/health", "/metrics"] {
        let (status, _) = call(Method::GET, &format!("{}{open}", proxy.admin), None).await;
        assert_eq!(status, 200, "{open}");
    }
    // Unknown admin paths do not say whether they exist without the token.
    let (status, _) = call(Method::GET, &format!("{}/nothing", proxy.admin), None).await;
    assert_eq!(status, 401);

    let (_, config) = call(
        Method::GET,
        &format!("{}/admin/config", proxy.admin),
        Some(&right),
    )
    .await;
    let shown = config.unwrap().to_string();
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("(redacted)"), "{shown}");
    assert!(!proxy.log().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_auth_puts_metrics_behind_the_token_but_not_health() {
    let backend = TestBackend::start("origin");
    let (proxy, _dir) = start(&backend, "metrics_auth = true").await;
    let metrics = format!("{}/metrics", proxy.admin);
    assert_eq!(call(Method::GET, &metrics, None).await.0, 401);
    let right = format!("Bearer {TOKEN}");
    let response = client()
        .get(&metrics)
        .header("authorization", right)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("scalelab_"));
    let (status, _) = call(Method::GET, &format!("{}/health", proxy.admin), None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_admin_listener_off_loopback_is_refused_by_check_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = |admin: &str| {
        format!(
            "[proxy]\nlisten = [\"127.0.0.1:{}\"]\nadmin_listen = \"0.0.0.0:{}\"\n{admin}\n\
             [upstreams.u]\nservers = [{{ addr = \"127.0.0.1:1\" }}]\n\
             [[routes]]\npath = \"/\"\nupstream = \"u\"\n",
            free_port(),
            free_port()
        )
    };
    std::fs::write(&config, text("")).unwrap();
    let (code, said) = check_file(&config);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("proxy.admin_listen"), "{said}");
    assert!(said.contains("needs a token"), "{said}");

    let mut child = std::process::Command::new(binary())
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let mut proxy = ChildGuard::new(child, "proxy");
    let status = proxy.wait_exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut stderr_pipe, &mut stderr).unwrap();
    assert!(stderr.contains("needs a token"), "{stderr}");

    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    std::fs::write(&config, text("[admin]\ntoken = { file = \"admin.token\" }")).unwrap();
    let (code, said) = check_file(&config);
    assert_eq!(code, Some(0), "{said}");
}

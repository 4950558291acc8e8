//! IP allow and deny lists: `[proxy]`'s and a route's, the client behind `trusted_proxies`
//! (the rate limits' rule), the 403 body, the refusal counter and explain; a list file
//! watched and reloaded, and a reload of the config's own list.

use super::refused;
use crate::harness::*;
use scalelab_test_support::eventually;
use serde_json::{json, Value};
use std::time::Duration;

async fn get_from(proxy: &TestProxy, path: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = proxy.http().get(proxy.url(path));
    if let Some(chain) = forwarded_for {
        request = request.header("X-Forwarded-For", chain);
    }
    request.send().await.unwrap()
}

async fn ip_lists(client: Client) {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .client(client)
        .proxy_setting("trusted_proxies = [\"127.0.0.1\"]\ndeny = [\"203.0.113.0/24\"]")
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("open", "/open", "g")
        .route_with(
            "office",
            "/office",
            "g",
            "allow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.9.0.0/16\"]",
        );
    let proxy = TestProxy::start(&config).await;
    let refused_before = refused(&proxy, "ip").await;
    let hits_before = backend.hits();
    let mut refusals: u32 = 0;
    for (path, chain, allowed) in [
        ("/open", None, true),
        ("/open", Some("198.51.100.1"), true),
        // `[proxy] deny` covers every route.
        ("/open", Some("203.0.113.5"), false),
        ("/office", Some("203.0.113.5"), false),
        ("/office", Some("10.1.2.3"), true),
        ("/office", Some("2001:db8::1"), true),
        ("/office", Some("::ffff:10.1.2.3"), true),
        // The route's deny beats its allow.
        ("/office", Some("10.9.1.1"), false),
        ("/office", Some("198.51.100.1"), false),
        // No forwarded hop: the client is the peer, 127.0.0.1, not in the allow list.
        ("/office", None, false),
        // The first untrusted hop from the right is the client; an allowed address written
        // further left by the client itself counts for nothing.
        ("/office", Some("10.1.2.3, 198.51.100.7"), false),
        ("/office", Some("198.51.100.7, 10.1.2.3"), true),
        ("/office", Some("198.51.100.7, 10.1.2.3, 127.0.0.1"), true),
    ] {
        let response = get_from(&proxy, path, chain).await;
        assert_eq!(response.version(), client.version());
        if allowed {
            assert_eq!(response.status(), 200, "{path} from {chain:?}");
        } else {
            refusals += 1;
            assert_eq!(response.status(), 403, "{path} from {chain:?}");
            assert_eq!(response.headers()["cache-control"], "no-store");
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body,
                json!({"error": "forbidden", "reason": "ip"}),
                "{path} from {chain:?}"
            );
        }
    }
    // Refusals never reached the server.
    assert_eq!(backend.hits() - hits_before, 13 - refusals as usize);
    assert_eq!(
        refused(&proxy, "ip").await - refused_before,
        f64::from(refusals)
    );
    // Explain names the gate and the list.
    let response = proxy
        .http()
        .get(proxy.url("/office"))
        .header("X-Forwarded-For", "198.51.100.1")
        .header("X-Scalelab-Explain", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["x-scalelab-explain"],
        "access: ip gate refused 198.51.100.1 (route's allow list)"
    );
}

over_each_client!(ip_lists);

/// An `allow_file` is watched like certificates: an edit applies without a restart; a broken
/// edit is refused and the running list stays. A reload of the config's own inline list
/// applies to the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_file_and_inline_lists_reload() {
    let backend = TestBackend::start("origin");
    let lists = tempfile::tempdir().unwrap();
    let list = lists.path().join("office.list");
    std::fs::write(&list, "# the office\n192.0.2.0/24\n").unwrap();
    let route = |inline: &str| {
        format!(
            "allow_file = {:?}\nallow = [{inline}]",
            list.display().to_string()
        )
    };
    let base = || {
        TestConfig::new()
            .proxy_setting("trusted_proxies = [\"127.0.0.1\"]")
            .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
    };
    let config = base().route_with("office", "/office", "g", &route(""));
    let proxy = TestProxy::start(&config).await;
    assert_eq!(
        get_from(&proxy, "/office", Some("192.0.2.9"))
            .await
            .status(),
        200
    );
    assert_eq!(
        get_from(&proxy, "/office", Some("10.0.0.1")).await.status(),
        403
    );

    // The file changes: renamed over the old one, as a deployment writes it.
    let temporary = lists.path().join("office.list.tmp");
    std::fs::write(&temporary, "192.0.2.0/24\n10.0.0.0/8\n").unwrap();
    std::fs::rename(&temporary, &list).unwrap();
    eventually(
        Duration::from_secs(10),
        "the edited allow_file to apply",
        || async {
            (get_from(&proxy, "/office", Some("10.0.0.1")).await.status() == 200).then_some(())
        },
    )
    .await;

    // A broken edit is refused whole: the running list keeps serving.
    let reloads_before = proxy.reloads().await.len();
    std::fs::write(&temporary, "10.0.0.0/8\nnot-a-network\n").unwrap();
    std::fs::rename(&temporary, &list).unwrap();
    let failed = eventually(Duration::from_secs(10), "the refused reload", || async {
        let reloads = proxy.reloads().await;
        // Newest first.
        (reloads.len() > reloads_before).then(|| reloads[0].clone())
    })
    .await;
    assert!(failed.to_string().contains("not-a-network"), "{failed}");
    assert_eq!(
        get_from(&proxy, "/office", Some("10.0.0.1")).await.status(),
        200
    );
    assert_eq!(
        get_from(&proxy, "/office", Some("198.51.100.1"))
            .await
            .status(),
        403
    );
    std::fs::write(&temporary, "10.0.0.0/8\n").unwrap();
    std::fs::rename(&temporary, &list).unwrap();

    // The config's own inline list: once the reload is recorded, the next request sees it.
    let reloads_before = proxy.reloads().await.len();
    let edited = TestConfig::same_ports(&config)
        .proxy_setting("trusted_proxies = [\"127.0.0.1\"]")
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route_with("office", "/office", "g", &route("\"198.51.100.0/24\""));
    proxy.write_config(&edited.render());
    eventually(Duration::from_secs(10), "the config reload", || async {
        let reloads = proxy.reloads().await;
        reloads
            .iter()
            .take(reloads.len().saturating_sub(reloads_before))
            .any(|r| r.to_string().contains("routes[0].allow"))
            .then_some(())
    })
    .await;
    assert_eq!(
        get_from(&proxy, "/office", Some("198.51.100.1"))
            .await
            .status(),
        200
    );
}

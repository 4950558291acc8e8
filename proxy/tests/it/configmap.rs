//! Config and certificates delivered as Kubernetes delivers a ConfigMap or Secret: the file is
//! a link `config.toml -> ..data/config.toml`, `..data` links to a timestamped directory, and
//! an update writes a new directory and renames a new `..data` link over the old one.

use crate::harness::*;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writes `files` into a new timestamped directory `..<stamp>` and points `..data` at it by
/// renaming a new link over the old one, as the kubelet's atomic writer does; then removes the
/// previous directory, as it does too.
fn publish(base: &Path, stamp: &str, files: &[(&str, &str)]) {
    let directory = base.join(format!("..{stamp}"));
    std::fs::create_dir(&directory).unwrap();
    for (name, text) in files {
        std::fs::write(directory.join(name), text).unwrap();
    }
    let previous = std::fs::read_link(base.join("..data")).ok();
    symlink(format!("..{stamp}"), base.join("..data_tmp")).unwrap();
    std::fs::rename(base.join("..data_tmp"), base.join("..data")).unwrap();
    for (name, _) in files {
        let link = base.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    if let Some(previous) = previous {
        std::fs::remove_dir_all(base.join(previous)).unwrap();
    }
}

/// The generation the proxy serves, from a response's header.
async fn generation(proxy: &TestProxy) -> Option<u64> {
    let response = client().get(proxy.url("/x")).send().await.ok()?;
    response
        .headers()
        .get("x-config-generation")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn wait_generation(proxy: &TestProxy, wanted: u64, what: &str) {
    eventually(Duration::from_secs(10), what, || async {
        (generation(proxy).await == Some(wanted)).then_some(())
    })
    .await;
}

async fn applied_reloads(proxy: &TestProxy) -> Vec<u64> {
    proxy
        .reloads()
        .await
        .iter()
        .filter(|r| r["result"] == "applied" && r["trigger"] != "startup")
        .map(|r| {
            assert_eq!(r["trigger"], "file", "{r:#}");
            r["generation"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_swapped_three_times_under_load_applies_each_swap_once() {
    let backend = TestBackend::start("a");
    let config = |weight: u32| {
        TestConfig::new()
            .upstream(UpstreamSpec::new(
                "g",
                "round_robin",
                &[&backend],
                &[weight],
            ))
            .route("all", "/", "g")
    };
    let first = config(1);
    let render = |weight: u32| {
        TestConfig::same_ports(&first)
            .upstream(UpstreamSpec::new(
                "g",
                "round_robin",
                &[&backend],
                &[weight],
            ))
            .route("all", "/", "g")
            .render()
    };
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    publish(
        &base,
        "2026_12_07_10_00_00.1",
        &[("config.toml", &first.render())],
    );
    let config_path = base.join("config.toml");
    let mut command = Command::new(binary());
    command
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "info");
    let child = ChildGuard::spawn_logged(&mut command, &base.join("proxy.log"), "proxy").tail(60);
    let proxy = TestProxy {
        child,
        base: format!("http://127.0.0.1:{}", first.proxy_port),
        admin: format!("http://127.0.0.1:{}", first.admin_port),
        config_path,
        client: Client::Http1,
        dir,
    };
    wait_generation(&proxy, 1, "the proxy to serve").await;

    // Load for the whole test: every response must be a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, served, failed, url) = (
            stop.clone(),
            served.clone(),
            failed.clone(),
            proxy.url("/x"),
        );
        load.push(tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    for swap in 1..=3u32 {
        let stamp = format!("2026_12_07_10_00_0{swap}.{swap}");
        publish(&base, &stamp, &[("config.toml", &render(swap + 1))]);
        let wanted = u64::from(swap) + 1;
        wait_generation(&proxy, wanted, &format!("swap {swap} to serve")).await;
        assert_eq!(
            applied_reloads(&proxy).await,
            (2..=wanted).rev().collect::<Vec<_>>(),
            "swap {swap}: one applied reload per swap"
        );
    }

    // An edit through the link lands in the final file, in the directory the last swap made.
    std::fs::write(base.join("config.toml"), render(9)).unwrap();
    wait_generation(&proxy, 5, "the edit through the link to serve").await;
    assert_eq!(applied_reloads(&proxy).await, vec![5, 4, 3, 2]);

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(served.load(Ordering::Relaxed) > 0);
    let weight = proxy.upstreams().await["upstreams"][0]["servers"][0]["weight"].clone();
    assert_eq!(weight, 9, "the edited file serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_swapped_twice_serves_each_new_certificate_once() {
    use crate::tls::clients::{client as tls_client, served_certificate, Offer};
    let ca = scalelab_test_support::Ca::new();
    let secret = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(secret.path()).unwrap();
    let leaf = ca.leaf(&["localhost"]);
    publish(
        &base,
        "2026_12_07_10_00_00.1",
        &[("tls.crt", &leaf.cert_pem), ("tls.key", &leaf.key_pem)],
    );
    let backend = TestBackend::start("a");
    let tls_port = scalelab_test_support::free_port();
    let config = TestConfig::new()
        .proxy_setting(&format!("tls_listen = [\"127.0.0.1:{tls_port}\"]"))
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("all", "/", "g")
        .tables(&format!(
            "[tls]\n[[tls.certificates]]\ncert = {:?}\nkey = {:?}\n",
            base.join("tls.crt").display().to_string(),
            base.join("tls.key").display().to_string(),
        ));
    let proxy = TestProxy::start(&config).await;
    let https = tls_client(&ca.der(), Offer::Only13, &[b"http/1.1"], true, None);
    let url = format!("https://localhost:{tls_port}/x");
    let served = || async {
        let response = https.get(&url).send().await.ok()?;
        Some(served_certificate(&response))
    };
    assert_eq!(served().await, Some(leaf.der.clone()));

    let certificate_reloads = || async {
        proxy
            .reloads()
            .await
            .iter()
            .filter(|r| r["trigger"] == "certificate" && r["result"] == "applied")
            .count()
    };
    for swap in 1..=2 {
        let rotated = ca.leaf(&["localhost"]);
        publish(
            &base,
            &format!("2026_12_07_10_00_0{swap}.{swap}"),
            &[
                ("tls.crt", &rotated.cert_pem),
                ("tls.key", &rotated.key_pem),
            ],
        );
        eventually(
            Duration::from_secs(10),
            "the swapped certificate",
            || async { (served().await? == rotated.der).then_some(()) },
        )
        .await;
        assert_eq!(certificate_reloads().await, swap, "one reload per swap");
    }
}

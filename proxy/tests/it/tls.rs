//! TLS on the listener: handshakes with curl and a Rust client on TLS 1.2 and 1.3, the lowest
//! version refusing older clients, SNI, HTTP/2 by ALPN, certificates rotated on disk under
//! load, and broken certificate files rejected with the old ones kept.

pub mod clients;
pub mod lab;

use crate::harness::sample;
use clients::{client, curl, dns_names, served_certificate, Offer};
use lab::{json, newest, TlsLab};
use scalelab_test_support::{eventually, free_port, patient, replace_file, Ca, Leaf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const H1: &[&[u8]] = &[b"http/1.1"];
const H2_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_answers_curl_and_the_rust_client_on_tls_1_2_and_1_3() {
    let lab = TlsLab::start("1.2", &[("lab", &["localhost"], &["localhost"])]).await;
    let url = lab.url("localhost", "/hello");
    for (args, version) in [
        (&["--tlsv1.2", "--tls-max", "1.2", "--http1.1"][..], "1.2"),
        (&["--tlsv1.3", "--http1.1"][..], "1.3"),
    ] {
        let (ok, status, body) = curl(&lab.ca_file(), &url, args);
        assert!(ok, "curl over TLS {version}: {body}");
        assert_eq!(status, "200", "curl over TLS {version}: {body}");
        assert!(body.contains("\"path\":\"/hello\""), "{body}");
    }
    for (offer, version) in [(Offer::Only12, "1.2"), (Offer::Only13, "1.3")] {
        let response = lab
            .client(offer, H1)
            .get(lab.url("localhost", "/hello"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("reqwest over TLS {version}: {e:?}"));
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        assert_eq!(json(response).await["server"], "b1");
    }
    assert_eq!(lab.backend.hits(), 4);
    // Two handshakes of each version completed (curl's and reqwest's), none failed.
    assert_eq!(lab.handshakes("ok", "1.2").await, 2.0);
    assert_eq!(lab.handshakes("ok", "1.3").await, 2.0);
    assert_eq!(lab.handshakes("failed", "unknown").await, 0.0);
    let metrics = lab.metrics().await;
    let expiry = sample(
        &metrics,
        "scalelab_tls_certificate_expiry_timestamp_seconds{name=\"localhost\"}",
    )
    .expect("the certificate's expiry series");
    let now = scalelab_common::clock::since_epoch().as_secs() as f64;
    let ten_years = 10.0 * 365.0 * 86_400.0;
    assert!((expiry - (now + ten_years)).abs() < 7200.0, "{expiry}");
}

/// Issue 23: the upstream was told `X-Forwarded-Proto: http` for every request, also for
/// those that arrived over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_proto_names_the_scheme_the_client_used() {
    let lab = TlsLab::start("1.2", &[("lab", &["localhost"], &["localhost"])]).await;
    for (alpn, version) in [
        (H1, reqwest::Version::HTTP_11),
        (H2_H1, reqwest::Version::HTTP_2),
    ] {
        let response = lab
            .client(Offer::Only13, alpn)
            .get(lab.url("localhost", "/proto"))
            // A client's own value is replaced, not passed on.
            .header("x-forwarded-proto", "gopher")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version);
        assert_eq!(
            lab.backend.last_header("x-forwarded-proto").as_deref(),
            Some("https"),
            "over TLS with {version:?}"
        );
    }
    let response = crate::harness::client()
        .get(format!("{}/proto", lab.proxy.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        lab.backend.last_header("x-forwarded-proto").as_deref(),
        Some("http")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_1_3_refuses_a_tls_1_2_client() {
    let lab = TlsLab::start("1.3", &[("lab", &["localhost"], &["localhost"])]).await;
    let refused = lab
        .client(Offer::Only12, H1)
        .get(lab.url("localhost", "/"))
        .send()
        .await;
    assert!(refused.is_err(), "a TLS 1.2 client got {refused:?}");
    let (ok, _, body) = curl(
        &lab.ca_file(),
        &lab.url("localhost", "/"),
        &["--tlsv1.2", "--tls-max", "1.2"],
    );
    assert!(!ok, "curl limited to TLS 1.2 was served: {body}");
    let served = lab
        .client(Offer::Only13, H1)
        .get(lab.url("localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(lab.backend.hits(), 1);
    eventually(Duration::from_secs(5), "both refusals counted", || async {
        (lab.handshakes("failed", "unknown").await == 2.0).then_some(())
    })
    .await;
    assert_eq!(lab.handshakes("ok", "1.3").await, 1.0);
    assert_eq!(lab.handshakes("ok", "1.2").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_for_the_name() {
    let lab = TlsLab::start(
        "1.2",
        &[
            ("default", &["localhost"], &["localhost", "127.0.0.1"]),
            ("wild", &["*.lab.test"], &["*.lab.test"]),
            ("api", &["api.lab.test"], &["api.lab.test"]),
        ],
    )
    .await;
    let cases: &[(&str, &str)] = &[
        ("localhost", "localhost"),
        ("www.lab.test", "*.lab.test"),
        ("api.lab.test", "api.lab.test"),
        // An IP address sends no SNI: the default certificate answers.
        ("127.0.0.1", "localhost"),
    ];
    for (host, want) in cases {
        let client = client(
            &lab.ca.der(),
            Offer::Only13,
            H1,
            true,
            Some((host, lab.addr())),
        );
        let response = client
            .get(lab.url(host, "/"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{host}: {e:?}"));
        assert_eq!(response.status(), 200, "{host}");
        let names = dns_names(&served_certificate(&response));
        assert_eq!(names.first().map(String::as_str), Some(*want), "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_by_alpn_goes_through_the_normal_route() {
    let lab = TlsLab::start("1.2", &[("lab", &["localhost"], &["localhost"])]).await;
    let response = lab
        .client(Offer::Only13, H2_H1)
        .get(lab.url("localhost", "/over/h2?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-upstream-server"],
        lab.backend.addr.to_string()
    );
    let body = json(response).await;
    assert_eq!(body["path"], "/over/h2");
    assert_eq!(body["query"], "x=1");
    let output = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--http2", "--max-time", "20"])
        .args([
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(lab.ca_file())
        .arg(lab.url("localhost", "/"))
        .output()
        .unwrap();
    let written = String::from_utf8_lossy(&output.stdout);
    assert_eq!(written, "2 200", "curl over h2: {output:?}");
}

/// The reload journal's newest record with `trigger`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_the_next_handshake_while_16_clients_keep_going() {
    let lab = Arc::new(TlsLab::start("1.2", &[("lab", &["localhost"], &["localhost"])]).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for i in 0..16 {
        // Half open a new connection (and handshake) per request, half keep theirs.
        let client = client(&lab.ca.der(), Offer::Only13, H1, i % 2 == 0, None);
        let (lab, stop, served, failed) =
            (lab.clone(), stop.clone(), served.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(lab.url("localhost", "/load")).send().await {
                    Ok(response) if response.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed)
                    }
                    other => {
                        eprintln!("client {i}: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let probe = client(&lab.ca.der(), Offer::Only12, H1, true, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rotated: Leaf = lab.ca.leaf(&["localhost"]);
    let started = Instant::now();
    rotated.install(lab.certs.path(), "lab");
    let bound = patient(Duration::from_secs(2));
    eventually(bound, "the rotated certificate to be served", || async {
        let response = probe
            .get(lab.url("localhost", "/probe"))
            .send()
            .await
            .ok()?;
        (served_certificate(&response) == rotated.der).then_some(())
    })
    .await;
    let took = started.elapsed();
    // Keep the load on for a while after the swap too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("rotation served after {took:?}; {served} requests served, {failed} failed");
    assert_eq!(failed, 0, "{served} served");
    assert!(served >= 16, "{served}");
    let record = newest(&lab.proxy, "certificate", "applied")
        .await
        .expect("the rotation in the journal");
    let changed: Vec<&str> = record["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|change| change["path"].as_str())
        .collect();
    assert!(
        changed.contains(&"tls.certificates[0].sha256"),
        "{changed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_certificate_file_is_rejected_and_the_old_one_kept() {
    let lab = TlsLab::start("1.2", &[("lab", &["localhost"], &["localhost"])]).await;
    let probe = client(&lab.ca.der(), Offer::Only13, H1, true, None);
    let original = served_certificate(&probe.get(lab.url("localhost", "/")).send().await.unwrap());
    let cert_file = lab.certs.path().join("lab.pem");
    let key_file = lab.certs.path().join("lab-key.pem");

    // Not PEM at all.
    replace_file(&cert_file, "this is not a certificate\n");
    let rejected = eventually(Duration::from_secs(10), "the broken file rejected", || {
        newest(&lab.proxy, "certificate", "rejected")
    })
    .await;
    let error = &rejected["errors"][0];
    assert_eq!(error["path"], "tls.certificates[0].cert", "{rejected}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&cert_file.display().to_string())
            && message.contains("no CERTIFICATE block"),
        "{message}"
    );
    let served = served_certificate(&probe.get(lab.url("localhost", "/")).send().await.unwrap());
    assert_eq!(served, original, "the old certificate must keep serving");

    // A valid certificate whose key is another one's: the pair is refused whole.
    let other = lab.ca.leaf(&["localhost"]);
    replace_file(&cert_file, &other.cert_pem);
    eventually(
        Duration::from_secs(10),
        "the mismatched pair rejected",
        || async {
            let records = lab.proxy.reloads().await;
            records
                .iter()
                .find(|r| {
                    r["trigger"] == "certificate"
                        && r["errors"][0]["path"] == "tls.certificates[0].key"
                })
                .cloned()
        },
    )
    .await;
    let served = served_certificate(&probe.get(lab.url("localhost", "/")).send().await.unwrap());
    assert_eq!(served, original, "the old certificate must keep serving");
    assert!(newest(&lab.proxy, "certificate", "applied").await.is_none());

    // Its key arrives: now the pair is whole and serves.
    replace_file(&key_file, &other.key_pem);
    eventually(
        Duration::from_secs(10),
        "the completed pair served",
        || async {
            let response = probe.get(lab.url("localhost", "/")).send().await.ok()?;
            (served_certificate(&response) == other.der).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_that_adds_a_certificate_swaps_the_table() {
    let lab = TlsLab::start("1.2", &[("lab", &["localhost"], &["localhost"])]).await;
    let (cert, key) = lab
        .ca
        .leaf(&["*.lab.test"])
        .install(lab.certs.path(), "wild");
    let sni_client = client(
        &lab.ca.der(),
        Offer::Only13,
        H1,
        true,
        Some(("www.lab.test", lab.addr())),
    );
    // Before: the default (localhost) certificate answers, which the client refuses for the name.
    assert!(sni_client
        .get(lab.url("www.lab.test", "/"))
        .send()
        .await
        .is_err());
    lab.proxy.write_config(&format!(
        "{}\n[[tls.certificates]]\ncert = {:?}\nkey = {:?}\nserver_names = [\"*.lab.test\"]\n",
        lab.config_text,
        cert.display().to_string(),
        key.display().to_string()
    ));
    let response = eventually(
        Duration::from_secs(10),
        "the new certificate served",
        || async {
            sni_client
                .get(lab.url("www.lab.test", "/"))
                .send()
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(dns_names(&served_certificate(&response)), ["*.lab.test"]);
    let record = newest(&lab.proxy, "file", "applied")
        .await
        .expect("the reload");
    assert!(record["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|change| change["path"] == "tls.certificates[1]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_the_admin_reload_read_certificates_the_watcher_missed() {
    let lab = TlsLab::start("1.2", &[("lab", &["localhost"], &["localhost"])]).await;
    let probe = client(&lab.ca.der(), Offer::Only13, H1, true, None);
    let served = || async {
        served_certificate(&probe.get(lab.url("localhost", "/")).send().await.unwrap())
    };
    let original = served().await;
    // The pair's paths become hard links to files in a directory the watcher does not watch;
    // a file rewritten in place there is reported to watches on that directory only, so the
    // proxy sees no change: what a certificate on a network file system or changed through
    // another path looks like.
    let outside = tempfile::tempdir().unwrap();
    let pair = ["lab.pem", "lab-key.pem"].map(|name| {
        let (inside, out) = (lab.certs.path().join(name), outside.path().join(name));
        std::fs::copy(&inside, &out).unwrap();
        std::fs::remove_file(&inside).unwrap();
        std::fs::hard_link(&out, &inside).unwrap();
        out
    });
    let rewrite = |leaf: &Leaf| {
        std::fs::write(&pair[1], &leaf.key_pem).unwrap();
        std::fs::write(&pair[0], &leaf.cert_pem).unwrap();
    };
    // Let the watcher's events for the links settle (the same pair: nothing to apply). No
    // event says so (an unchanged pair is not journaled), so the wait scales with patience.
    tokio::time::sleep(patient(Duration::from_secs(1))).await;

    let by_signal = lab.ca.leaf(&["localhost"]);
    rewrite(&by_signal);
    tokio::time::sleep(patient(Duration::from_millis(1500))).await;
    assert_eq!(
        served().await,
        original,
        "the watcher must not have seen it"
    );
    lab.proxy.signal(crate::harness::Signal::SIGHUP);
    eventually(
        Duration::from_secs(10),
        "SIGHUP to serve the new pair",
        || async { (served().await == by_signal.der).then_some(()) },
    )
    .await;
    let record = newest(&lab.proxy, "signal", "applied")
        .await
        .expect("journaled");
    assert!(
        record["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|change| change["path"] == "tls.certificates[0].sha256"),
        "{record}"
    );

    let by_api = lab.ca.leaf(&["localhost"]);
    rewrite(&by_api);
    let (status, _) = lab.proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200);
    assert_eq!(served().await, by_api.der);
    // Asked again with nothing new on disk: journaled as unchanged, no new generation.
    let (status, body) = lab.proxy.admin_post("/admin/reload").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], "unchanged", "{body}");
}

#[test]
fn check_reads_every_pair_and_warns_before_expiry() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let soon = ca.leaf_until(&["localhost"], Some(Duration::from_secs(5 * 86_400)));
    let other = ca.leaf(&["localhost"]);
    let (cert, key) = soon.install(dir.path(), "soon");
    let config = dir.path().join("config.toml");
    let text = |key: &std::path::Path| {
        format!(
            "[proxy]\nlisten = [\"127.0.0.1:{}\"]\ntls_listen = [\"127.0.0.1:{}\"]\n\
             [[tls.certificates]]\ncert = {:?}\nkey = {:?}\nserver_names = [\"localhost\"]\n",
            free_port(),
            free_port(),
            cert.display().to_string(),
            key.display().to_string()
        )
    };
    let check = || {
        std::process::Command::new(crate::harness::binary())
            .arg("--check")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    std::fs::write(&config, text(&key)).unwrap();
    let output = check();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        (stdout.contains("tls.certificates[0]: localhost | expires in 4 days")
            || stdout.contains("tls.certificates[0]: localhost | expires in 5 days"))
            && stdout.contains("warning: tls.certificates[0]")
            && stdout.contains("expires in under 14 days"),
        "{stdout}"
    );
    // Another certificate's key: refused, naming the key file.
    std::fs::write(dir.path().join("other-key.pem"), &other.key_pem).unwrap();
    std::fs::write(&config, text(&dir.path().join("other-key.pem"))).unwrap();
    let output = check();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("tls.certificates[0].key") && stderr.contains("does not match"),
        "{stderr}"
    );
}

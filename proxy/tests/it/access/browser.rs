//! CORS in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `scripts/install-deps.sh --test`) loads a page from one origin that `fetch`es a scalelab
//! route on another origin, with a custom header (so the browser sends a preflight) and with
//! credentials. The page writes the outcome into the DOM, which `--dump-dom` prints once
//! `--virtual-time-budget` has let the fetch finish. The allowed origin's fetch succeeds; the
//! same page from an origin the route does not list fails in the browser.

use super::{refused, RouterServer};
use crate::harness::*;
use std::process::Command;
use std::time::Duration;

fn page(proxy_port: u16) -> String {
    format!(
        r#"<!doctype html><html><body><div id="result">pending</div><script>
fetch("http://127.0.0.1:{proxy_port}/api/items", {{
  method: "POST",
  headers: {{"X-Custom": "from-the-page", "Content-Type": "text/plain"}},
  credentials: "include",
  body: "hello"
}})
  .then(r => r.json().then(j => {{
    document.getElementById("result").textContent = "RESULT ok " + r.status + " " + j.server + " " + j.method;
  }}))
  .catch(e => {{ document.getElementById("result").textContent = "RESULT failed " + e.name; }});
</script></body></html>"#
    )
}

fn page_server(html: String) -> RouterServer {
    RouterServer::start(axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    ))
}

/// The page's result line, as the browser left it in the DOM.
fn load_in_chromium(url: &str) -> String {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is not installed: run scripts/install-deps.sh --test");
    let profile = tempfile::tempdir().unwrap();
    let budget = patient(Duration::from_secs(10)).as_millis();
    // The flags keep Chromium off the network beyond localhost (this machine has none) and
    // out of first-run work; root in a container needs --no-sandbox.
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    dom.lines()
        .find_map(|line| {
            line.find("RESULT ").map(|at| {
                let rest = &line[at..];
                rest[..rest.find('<').unwrap_or(rest.len())].to_string()
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no result in the page; status {:?}\nDOM:\n{dom}\nstderr:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_gets_the_allowed_origin_through_and_blocks_another() {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new();
    let html = page(config.proxy_port);
    let allowed_site = page_server(html.clone());
    let other_site = page_server(html);
    let allowed_origin = format!("http://127.0.0.1:{}", allowed_site.addr.port());
    let config = config
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route_with(
            "api",
            "/api",
            "g",
            &format!(
                "cors = {{ origins = [{allowed_origin:?}], methods = [\"GET\", \"POST\"], headers = [\"X-Custom\", \"Content-Type\"], credentials = true }}"
            ),
        );
    let proxy = TestProxy::start(&config).await;
    let refused_before = refused(&proxy, "cors").await;

    let url = format!("{allowed_origin}/");
    let result = tokio::task::spawn_blocking(move || load_in_chromium(&url))
        .await
        .unwrap();
    assert_eq!(result, "RESULT ok 200 origin POST");
    assert_eq!(
        backend.last_header("x-custom").as_deref(),
        Some("from-the-page"),
        "the actual request came after the preflight, with its custom header"
    );
    assert_eq!(
        backend.last_header("origin").as_deref(),
        Some(allowed_origin.as_str())
    );

    let hits = backend.hits();
    let url = format!("http://127.0.0.1:{}/", other_site.addr.port());
    let result = tokio::task::spawn_blocking(move || load_in_chromium(&url))
        .await
        .unwrap();
    assert_eq!(result, "RESULT failed TypeError");
    assert_eq!(
        backend.hits(),
        hits,
        "the refused preflight stopped the POST"
    );
    assert_eq!(refused(&proxy, "cors").await - refused_before, 1.0);
}

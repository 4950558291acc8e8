//! Issue 25's access gates against the real binary, over HTTP/1.1 and h2: IP allow and deny
//! lists (inline, from a watched file, reloaded), `claims_to_headers`, basic auth (and a flood
//! of wrong passwords beside a plain route), CORS (and in a real headless Chromium), forward
//! auth, the gates' order before the cache, and every config mistake reported by `--check`.

mod basic;
mod browser;
mod cors;
mod forward;
mod ip;
mod order;

use crate::harness::*;
use std::net::SocketAddr;

/// `scalelab_requests_refused_total{reason}` as the proxy exposes it now (0 when absent).
pub async fn refused(proxy: &TestProxy, reason: &str) -> f64 {
    let text = scrape(proxy).await;
    sample(
        &text,
        &format!("scalelab_requests_refused_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// An axum router served on a runtime of its own, on a free port; stopped on drop.
pub struct RouterServer {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RouterServer {
    pub fn start(router: axum::Router) -> RouterServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
        RouterServer {
            addr,
            runtime: Some(runtime),
        }
    }
}

impl Drop for RouterServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Every mistake in the access tables is a problem with its TOML path, all of them at once.
#[test]
fn every_access_mistake_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("weak.htpasswd"),
        "alice:$apr1$x$abcdefghijklmnopqrstuv\nbob:plain\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.list"), "10.0.0.0/8\n300.1.1.1\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        r#"[proxy]
allow = ["10.0.0.0/33"]
deny_file = "missing.list"

[upstreams.g]
servers = [{ addr = "127.0.0.1:1" }]

[[routes]]
name = "a"
path = "/a"
upstream = "g"
allow = ["nope"]
allow_file = "bad.list"
auth = "basic"
basic = { users_file = "weak.htpasswd" }

[[routes]]
name = "b"
path = "/b"
upstream = "g"
auth = "forward"
forward = { upstream = "authsvc", on_error = "maybe" }

[[routes]]
name = "c"
path = "/c"
upstream = "g"
cors = { origins = ["*", "app.example"], credentials = true, methods = ["GET", "BAD METHOD"] }
claims_to_headers = { sub = "X-User" }

[[routes]]
name = "d"
path = "/d"
upstream = "g"
auth = "basic"
basic = { users_file = "nowhere.htpasswd" }
"#,
    )
    .unwrap();
    let (code, text) = check_file(&config);
    assert_eq!(code, Some(1), "{text}");
    for expected in [
        "line 2: proxy.allow[0]: invalid network \"10.0.0.0/33\"",
        "line 3: proxy.deny_file: cannot read ",
        "routes[0].allow[0]: invalid network \"nope\"",
        "routes[0].allow_file: ",
        "bad.list: line 2: invalid network \"300.1.1.1\"",
        "routes[0].basic.users_file: ",
        "weak.htpasswd: line 1 (user \"alice\"): MD5 hashes are too weak; use bcrypt (htpasswd -B) or argon2",
        "weak.htpasswd: line 2 (user \"bob\"): plain-text or unknown password form",
        "routes[1].forward.upstream: unknown upstream \"authsvc\"; defined: [g]",
        "routes[1].forward.on_error: unknown value \"maybe\"",
        "routes[2].cors.origins[0]: \"*\" cannot be used with credentials = true",
        "routes[2].cors.origins[1]: origin \"app.example\" needs its scheme",
        "routes[2].cors.methods[1]: invalid method \"BAD METHOD\"",
        "routes[2].claims_to_headers: is used only with auth = \"jwt\"",
        "routes[3].basic.users_file: cannot read ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

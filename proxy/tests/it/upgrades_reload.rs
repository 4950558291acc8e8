//! Upgraded connections across config changes, drains and shutdown: a reload never cuts a
//! tunnel (each request keeps the snapshot and the server slot it started with), a removed or
//! drained server keeps its open WebSockets until they end while new ones follow the config,
//! and SIGTERM gives open tunnels `shutdown_timeout` to finish before closing them.

use crate::harness::*;
use crate::upgrades::{upgraded_open, ws_url};
use scalelab_proxy::reload::sha256_hex;
use scalelab_test_support::WsClient;
use std::time::{Duration, Instant};

/// One open WebSocket and the server the proxy connected it to.
struct Tunnel {
    socket: WsClient,
    server: String,
}

async fn open(proxy: &TestProxy) -> Tunnel {
    let socket = WsClient::connect(&ws_url(proxy, "/ws"), &[])
        .await
        .expect("the upgrade is accepted");
    let server = socket.header("x-upstream-server").expect("upstream header");
    Tunnel { socket, server }
}

/// Every tunnel echoes a message naming `round`.
async fn all_echo(tunnels: &mut [Tunnel], round: usize) {
    for (i, tunnel) in tunnels.iter_mut().enumerate() {
        let text = format!("round {round} tunnel {i}");
        let echoed = tunnel.socket.echo(&text).await;
        assert_eq!(
            echoed.as_deref(),
            Ok(text.as_str()),
            "tunnel {i} to {} in round {round}",
            tunnel.server
        );
    }
}

fn on(tunnels: &[Tunnel], server: &TestBackend) -> u64 {
    tunnels
        .iter()
        .filter(|t| t.server == server.addr.to_string())
        .count() as u64
}

/// The open tunnels `GET /admin/upstreams` lists for `server` among removed servers.
async fn departed(proxy: &TestProxy, server: &TestBackend) -> u64 {
    let upstreams = proxy.upstreams().await;
    upstreams["departed"]
        .as_array()
        .expect("departed list")
        .iter()
        .find(|entry| entry["addr"] == server.addr.to_string())
        .map_or(0, |entry| entry["upgraded_open"].as_u64().unwrap())
}

/// Writes `config` as the proxy's file and waits until it is the running one.
async fn reload_to(proxy: &TestProxy, config: &TestConfig) {
    let text = config.render();
    proxy.write_config(&text);
    let sha = sha256_hex(&text);
    eventually(Duration::from_secs(5), "the new config to run", || async {
        (proxy.admin_get("/admin/config").await["sha256"] == sha).then_some(())
    })
    .await;
}

#[tokio::test]
async fn twenty_websockets_keep_echoing_through_ten_reloads() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let base = TestConfig::new();
    let with = |servers: &[&TestBackend]| {
        TestConfig::same_ports(&base)
            .upstream(UpstreamSpec::new(
                "g",
                "least_connections",
                servers,
                &[1, 1],
            ))
            .route("all", "/", "g")
    };
    let proxy = TestProxy::start(&with(&[&a])).await;
    let mut tunnels = Vec::new();
    for _ in 0..20 {
        tunnels.push(open(&proxy).await);
    }
    assert_eq!(on(&tunnels, &a), 20);
    all_echo(&mut tunnels, 0).await;

    // a and b, then b alone (a removed), then a alone (a added back, b removed), and again.
    let plans: [&[&TestBackend]; 3] = [&[&a, &b], &[&b], &[&a]];
    for round in 1..=10 {
        let servers = plans[(round - 1) % 3];
        reload_to(&proxy, &with(servers)).await;
        all_echo(&mut tunnels, round).await;
        // A removed server's open tunnels are listed apart until they end.
        for server in [&a, &b] {
            if !servers.iter().any(|s| s.addr == server.addr) {
                assert_eq!(
                    departed(&proxy, server).await,
                    on(&tunnels, server),
                    "round {round}: {} removed",
                    server.state.name
                );
            }
        }
        // A new connection follows the new config.
        let tunnel = open(&proxy).await;
        let allowed: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
        assert!(
            allowed.contains(&tunnel.server),
            "round {round}: new tunnel to {} with servers {allowed:?}",
            tunnel.server
        );
        tunnels.push(tunnel);
        all_echo(&mut tunnels, round).await;
    }
    // The last config lists both: the admin API counts each one's open tunnels, those that
    // outlived its removal included.
    assert_eq!(upgraded_open(&proxy, a.addr).await, Some(on(&tunnels, &a)));
    assert_eq!(upgraded_open(&proxy, b.addr).await, Some(on(&tunnels, &b)));
    assert_eq!(proxy.total_in_flight().await, 30);
    for tunnel in tunnels {
        tunnel.socket.close().await;
    }
    proxy.wait_in_flight(0, Duration::from_secs(5)).await;
    assert_eq!(upgraded_open(&proxy, a.addr).await, Some(0));
    assert_eq!(upgraded_open(&proxy, b.addr).await, Some(0));
}

#[tokio::test]
async fn a_drained_server_keeps_its_websockets_and_gets_no_new_ones() {
    let ([a, b], proxy) = backends_behind_proxy(["a", "b"], "round_robin", &[1, 1]).await;
    let mut old = Vec::new();
    while on(&old, &a) < 3 {
        old.push(open(&proxy).await);
    }
    let (status, _) = proxy
        .admin_post(&format!("/admin/upstreams/g/servers/{}/drain", a.addr))
        .await;
    assert_eq!(status, 200);
    let mut new = Vec::new();
    for _ in 0..4 {
        new.push(open(&proxy).await);
    }
    assert_eq!(on(&new, &b), 4, "no new tunnel goes to the drained server");
    all_echo(&mut old, 1).await;
    all_echo(&mut new, 1).await;
    let report = proxy.server_report(a.addr).await.unwrap();
    assert_eq!(report["drained"], true);
    assert_eq!(report["upgraded_open"], 3);

    // The drained server's tunnels end when their clients close them.
    let (on_a, on_b): (Vec<Tunnel>, Vec<Tunnel>) = old
        .into_iter()
        .partition(|t| t.server == a.addr.to_string());
    for tunnel in on_a {
        tunnel.socket.close().await;
    }
    eventually(Duration::from_secs(5), "a's tunnels to end", || async {
        (upgraded_open(&proxy, a.addr).await == Some(0)).then_some(())
    })
    .await;
    let report = proxy.server_report(a.addr).await.unwrap();
    assert_eq!(report["in_flight"], 0);
    let mut rest: Vec<Tunnel> = on_b.into_iter().chain(new).collect();
    all_echo(&mut rest, 2).await;
}

#[tokio::test]
async fn sigterm_gives_open_websockets_the_shutdown_timeout_then_closes_them() {
    let a = TestBackend::start("a");
    let config = TestConfig::new()
        .proxy_setting("shutdown_timeout = \"3s\"")
        .upstream(UpstreamSpec::new("g", "round_robin", &[&a], &[1]))
        .route("all", "/", "g");
    let mut proxy = TestProxy::start(&config).await;
    let mut leaving = open(&proxy).await;
    let mut staying = open(&proxy).await;
    let signalled = Instant::now();
    proxy.signal(Signal::SIGTERM);
    // During the drain both tunnels still work; one that ends lets the other go on.
    assert_eq!(leaving.socket.echo("draining").await.unwrap(), "draining");
    assert_eq!(staying.socket.echo("draining").await.unwrap(), "draining");
    leaving.socket.close().await;
    assert_eq!(staying.socket.echo("still").await.unwrap(), "still");
    // The last tunnel is closed when the bound passes, and the proxy exits.
    assert!(
        staying.socket.ended_within(Duration::from_secs(10)).await,
        "the tunnel outlived the shutdown"
    );
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "exited after {:?}, before the shutdown timeout",
        signalled.elapsed()
    );
}

//! Active health checks: a background loop that probes every server of every group in the
//! current snapshot at the group's interval, with a plain HTTP/1.1 GET (the same minimal probe
//! HAProxy sends), and applies the thresholds in `upstream`. A group reached over TLS or HTTP/2
//! is probed with the same GET over its own transport (`over_peer`).

mod over_peer;

use crate::config::transport::UpstreamProtocol;
use crate::config::{HealthCheck, Upstream};
use crate::snapshot::Snapshot;
use crate::upstream::{ServerState, Transition, UpstreamPool};
use pingora::prelude::HttpPeer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Probes one server once: `GET path` and pass on a 2xx status (with the body read to its
/// end), all within the check's timeout; over `peer` when the group needs TLS or HTTP/2.
pub async fn probe(
    addr: SocketAddr,
    check: &HealthCheck,
    peer: Option<HttpPeer>,
) -> Result<String, String> {
    let status = match peer {
        Some(peer) => over_peer::get(addr, peer, &check.path, check.timeout).await?,
        None => {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static("scalelab-health"),
            );
            crate::http1::get(addr, &check.path, headers, check.timeout)
                .await
                .map_err(|error| error.to_string())?
                .as_u16()
        }
    };
    if (200..300).contains(&status) {
        Ok(format!("HTTP {status}"))
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// The peer a probe of `addr` goes through: `None` for a clear-text HTTP/1.1 group (the plain
/// probe, one hyper connection), the request path's peer otherwise.
fn probe_peer(addr: SocketAddr, config: &Upstream) -> Option<HttpPeer> {
    (config.tls.is_some() || config.protocol != UpstreamProtocol::Http1)
        .then(|| crate::upstream::peer::build(addr, config))
}

/// One server to probe: its state, its group's check and the peer to probe it through.
pub type Target = (Arc<ServerState>, HealthCheck, Option<HttpPeer>);

/// Probes one server and records the result, logging any transition.
pub async fn check_server((state, check, peer): Target) {
    let started = Instant::now();
    let result = probe(state.addr, &check, peer).await;
    let took = started.elapsed();
    let (passed, detail) = match result {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    let transition = state.record_check(passed, detail.clone(), took, &check);
    state
        .metrics
        .health_check(passed, transition.map(|t| t == Transition::Up));
    match transition {
        Some(Transition::Up) => tracing::info!(
            upstream = %state.group, server = %state.addr, check = %detail,
            "server is healthy: now taking traffic"
        ),
        Some(Transition::Down) => tracing::warn!(
            upstream = %state.group, server = %state.addr, check = %detail,
            "server is unhealthy: out of rotation"
        ),
        None => {}
    }
}

/// Runs one round over every server of `pools` and waits for it (start-up uses this so that
/// no request is routed before health is known).
pub async fn run_round(pools: &[Arc<UpstreamPool>]) {
    let mut tasks = tokio::task::JoinSet::new();
    for pool in pools {
        if let Some(check) = &pool.config.health_check {
            for server in &pool.servers {
                let peer = probe_peer(server.state.addr, &pool.config);
                tasks.spawn(check_server((server.state.clone(), check.clone(), peer)));
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// The checker loop: wakes at least every 100 ms and probes each server whose interval has
/// passed. Taking the current snapshot each time means reloads take effect without
/// restarting it.
pub async fn run(
    current: impl Fn() -> Arc<Snapshot>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut due: HashMap<(String, SocketAddr), Instant> = HashMap::new();
    loop {
        let now = Instant::now();
        let snapshot = current();
        let mut seen = Vec::new();
        for pool in &snapshot.pools {
            let Some(check) = &pool.config.health_check else {
                continue;
            };
            for server in &pool.servers {
                let key = (pool.name().to_string(), server.state.addr);
                let next = due.entry(key.clone()).or_insert(now + check.interval);
                if *next <= now {
                    *next = now + check.interval;
                    let peer = probe_peer(server.state.addr, &pool.config);
                    tokio::spawn(check_server((server.state.clone(), check.clone(), peer)));
                }
                seen.push(key);
            }
        }
        due.retain(|key, _| seen.contains(key));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The servers of `next` that `running` does not have, with their group's check: a reload
/// checks them once before it swaps `next` in.
pub fn added_servers(running: &Snapshot, next: &Snapshot) -> Vec<Target> {
    next.pools
        .iter()
        .filter_map(|pool| Some((pool, pool.config.health_check.as_ref()?)))
        .flat_map(|(pool, check)| {
            let old_pool = running.pool(pool.name());
            pool.servers
                .iter()
                .filter(move |server| {
                    !old_pool.is_some_and(|old| {
                        old.servers
                            .iter()
                            .any(|s| s.state.addr == server.state.addr)
                    })
                })
                .map(move |server| {
                    let peer = probe_peer(server.state.addr, &pool.config);
                    (server.state.clone(), check.clone(), peer)
                })
        })
        .collect()
}

/// Probes each of `servers` once, concurrently, and returns when all are done (each probe is
/// bounded by its check's timeout). A reload calls this for servers it adds, before the new
/// snapshot serves, so that a group whose servers were all replaced does not answer 503 for
/// one check interval (Envoy also waits for the first check round of new hosts).
///
/// It runs on a thread of its own with a small runtime, so it can be called from any thread,
/// inside or outside a tokio runtime.
pub fn first_checks_blocking(servers: Vec<Target>) {
    if servers.is_empty() {
        return;
    }
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| error.to_string())?;
                runtime.block_on(async {
                    let mut tasks = tokio::task::JoinSet::new();
                    for target in servers {
                        tasks.spawn(check_server(target));
                    }
                    while tasks.join_next().await.is_some() {}
                });
                Ok::<(), String>(())
            })
            .join()
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot check new servers before the reload; the checker loop will")
        }
        Err(_) => tracing::warn!("first check of new servers failed; the checker loop will retry"),
    }
}

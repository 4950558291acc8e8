//! Publishing a new snapshot, shared by every path that changes what the proxy serves (a config
//! reload, a changed DNS answer): build it under a new generation, check the servers it adds
//! once, publish it, then retire and prune what it no longer lists.

use crate::config::Config;
use crate::health;
use crate::snapshot::Snapshot;
use crate::state::{Loaded, Shared};
use crate::telemetry;
use std::collections::HashSet;
use std::sync::Arc;

/// Builds `config` into a snapshot, publishes it as `loaded` describes it, and returns its
/// generation. The caller holds the reload lock; `running` is what served until now.
pub fn swap(
    shared: &Shared,
    running: &Snapshot,
    config: Config,
    loaded: impl FnOnce(Arc<Snapshot>) -> Loaded,
) -> u64 {
    let generation = shared.next_generation();
    let snapshot = Arc::new(Snapshot::build(config, generation, shared.registry()));
    // Servers this change adds start unhealthy; check them once before the swap so they take
    // traffic (if they pass) as soon as the new snapshot serves.
    health::first_checks_blocking(health::added_servers(running, &snapshot));
    let routes: HashSet<&str> = snapshot
        .config
        .routes()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    let servers: HashSet<(String, String)> = snapshot
        .pools
        .iter()
        .flat_map(|pool| {
            pool.servers
                .iter()
                .map(|s| (pool.name().to_string(), s.state.addr.to_string()))
        })
        .collect();
    // Publish first, then retire what left (so requests still on the old snapshot stop
    // recording it), then prune its series: in that order nothing brings them back.
    shared.publish(loaded(snapshot.clone()));
    for (index, route) in running.config.routes().iter().enumerate() {
        if !routes.contains(route.name.as_str()) {
            if let Some(metrics) = running.route_metrics(Some(index)) {
                metrics.retire();
            }
        }
    }
    telemetry::prune(&routes, &servers);
    telemetry::split_series::prune(snapshot.config.routes());
    crate::mirror::prune(snapshot.config.routes());
    shared.registry().limits.retain(&snapshot.config);
    shared
        .registry()
        .retain_queues(|group| snapshot.config.upstreams().contains_key(group));
    generation
}

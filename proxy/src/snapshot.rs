//! `Snapshot`: everything a request needs, built once from one `Config` and never changed.
//! A request loads one `Arc<Snapshot>` at its start and keeps it to its end, so a reload can
//! never show it half of two configs.

use crate::cache::CacheConfig;
use crate::config::Config;
use crate::ratelimit::RouteLimits;
use crate::routing::RouteTable;
use crate::telemetry::{Expected, RouteMetrics};
use crate::upstream::{Registry, UpstreamPool};
use std::sync::Arc;

#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    /// `generation` as a ready header value, so responses do not format it.
    pub generation_header: http::HeaderValue,
    pub config: Arc<Config>,
    pub routes: RouteTable,
    /// One pool per upstream, in `config.upstreams` order.
    pub pools: Vec<Arc<UpstreamPool>>,
    /// For each route (config order), the index of its pool in `pools`.
    route_pools: Vec<Option<usize>>,
    /// For each route, its split's pools in target order (empty without a split).
    route_splits: Vec<Vec<usize>>,
    /// For each route, its mirror's pool.
    route_mirrors: Vec<Option<usize>>,
    /// The part of the config the cache follows.
    pub cache: CacheConfig,
    /// Each route's metric series (config order), then the series of requests no route matched.
    route_metrics: Vec<RouteMetrics>,
    /// Each route's rate limits (config order).
    pub limits: Vec<RouteLimits>,
    /// Why a group whose servers come from DNS has none now, by group (the 503's reason).
    pub dns_gaps: std::collections::BTreeMap<String, String>,
}

impl Snapshot {
    /// Builds the runtime view of `config`, reusing server state from `registry`.
    pub fn build(config: Config, generation: u64, registry: &Registry) -> Snapshot {
        if config
            .routes()
            .iter()
            .any(|route| route.auth == crate::config::RouteAuth::Forward)
        {
            // The forward auth series show zero from the start, like a route's own.
            crate::access_control::forward_auth::warm();
        }
        // Each group with the servers its DNS names resolve to now (`discovery`).
        let groups: Vec<_> = config
            .upstreams()
            .values()
            .map(|upstream| crate::discovery::expand::expand(upstream, &registry.discovered))
            .collect();
        let dns_gaps = groups
            .iter()
            .filter_map(|group| {
                let reason = crate::discovery::expand::empty_reason(group, &registry.discovered)?;
                Some((group.name.clone(), reason))
            })
            .collect();
        let pools: Vec<Arc<UpstreamPool>> = groups
            .into_iter()
            .map(|group| Arc::new(UpstreamPool::new(group, registry)))
            .collect();
        // Validation guarantees every upstream a route names is defined; a route that answers
        // by itself has none.
        let route_pools = config
            .routes()
            .iter()
            .map(|route| {
                let upstream = route.upstream.as_deref()?;
                pools.iter().position(|pool| pool.name() == upstream)
            })
            .collect();
        let position = |group: &str| pools.iter().position(|pool| pool.name() == group);
        let route_splits = config
            .routes()
            .iter()
            .map(|route| {
                route.split.as_ref().map_or_else(Vec::new, |split| {
                    split
                        .targets
                        .iter()
                        .filter_map(|target| position(&target.group))
                        .collect()
                })
            })
            .collect();
        let route_mirrors = config
            .routes()
            .iter()
            .map(|route| route.mirror.as_ref().and_then(|m| position(&m.group)))
            .collect();
        crate::telemetry::split_series::warm(config.routes());
        let cache = CacheConfig {
            generation,
            settings: config.cache().cloned(),
            templates: config
                .routes()
                .iter()
                .filter_map(|r| {
                    r.cache
                        .as_ref()
                        .map(|c| (r.name.clone(), c.key.source().to_string()))
                })
                .collect(),
        };
        // Each route's common series exist from the start (at 0), so a dashboard sees its
        // first requests; a reload that removes the route prunes them as before.
        let h2 = config.proxy().h2c || !config.proxy().tls_listen.is_empty();
        let route_metrics = config
            .routes()
            .iter()
            .map(|route| (route.name.as_str(), Some(route)))
            .chain(std::iter::once(("none", None)))
            .map(|(name, route)| {
                let metrics = RouteMetrics::new(name);
                metrics.warm(&Expected::of(route, h2));
                metrics
            })
            .collect();
        let limits = config
            .routes()
            .iter()
            .map(|route| RouteLimits::build(&route.name, &route.rate_limits, &registry.limits))
            .collect();
        // Servers that appear from now on (added by a reload) slow-start.
        registry.seal();
        Snapshot {
            limits,
            generation,
            generation_header: http::HeaderValue::from(generation),
            routes: RouteTable::new(config.routes()),
            config: Arc::new(config),
            pools,
            route_pools,
            route_splits,
            route_mirrors,
            cache,
            route_metrics,
            dns_gaps,
        }
    }

    pub fn pool_for_route(&self, route: usize) -> Option<&Arc<UpstreamPool>> {
        self.route_pools
            .get(route)
            .copied()
            .flatten()
            .and_then(|i| self.pools.get(i))
    }

    /// The pool of target `target` of route `route`'s split.
    pub fn split_pool(&self, route: usize, target: usize) -> Option<&Arc<UpstreamPool>> {
        self.route_splits
            .get(route)
            .and_then(|targets| targets.get(target))
            .and_then(|&i| self.pools.get(i))
    }

    /// The pool route `route` mirrors to.
    pub fn mirror_pool(&self, route: usize) -> Option<&Arc<UpstreamPool>> {
        self.route_mirrors
            .get(route)
            .copied()
            .flatten()
            .and_then(|i| self.pools.get(i))
    }

    /// The metric series of route `route` (an index into `routes`), or of unmatched requests.
    pub fn route_metrics(&self, route: Option<usize>) -> Option<&RouteMetrics> {
        match route {
            Some(index) => self.route_metrics.get(index),
            None => self.route_metrics.last(),
        }
    }

    pub fn pool(&self, name: &str) -> Option<&Arc<UpstreamPool>> {
        self.pools.iter().find(|pool| pool.name() == name)
    }

    /// Whether group `group` of this config lists the server `addr`.
    pub fn lists(&self, group: &str, addr: std::net::SocketAddr) -> bool {
        self.pool(group)
            .is_some_and(|pool| pool.servers.iter().any(|s| s.state.addr == addr))
    }
}

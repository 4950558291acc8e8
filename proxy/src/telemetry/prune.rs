//! Taking the series of removed routes and servers out of the exposition after a reload.

use super::VECTORS;
use prometheus::core::Collector;
use std::collections::HashSet;

/// Drops the series of routes and servers a reload removed (`routes` and `servers` are what
/// the new config has), so they leave the exposition; `none` always stays.
pub fn prune(routes: &HashSet<&str>, servers: &HashSet<(String, String)>) {
    let Some(vectors) = VECTORS.get() else {
        return;
    };
    let keep_route = |labels: &Labels| {
        labels
            .iter()
            .find(|(name, _)| *name == "route")
            .is_none_or(|(_, value)| *value == "none" || routes.contains(value))
    };
    let keep_server = |labels: &Labels| {
        let value = |wanted: &str| {
            labels
                .iter()
                .find(|(name, _)| *name == wanted)
                .map(|(_, v)| v.to_string())
        };
        match (value("upstream"), value("server")) {
            (Some(upstream), Some(server)) => servers.contains(&(upstream, server)),
            // Retries are per upstream: keep those of groups that still exist.
            (Some(upstream), None) => servers.iter().any(|(group, _)| *group == upstream),
            _ => true,
        }
    };
    prune_vec(&vectors.requests, &keep_route);
    prune_vec(&vectors.duration, &keep_route);
    super::exemplars::prune(&keep_route);
    prune_vec(&vectors.size, &keep_route);
    prune_vec(&vectors.upstream_requests, &keep_server);
    prune_vec(&vectors.upstream_duration, &keep_server);
    prune_vec(&vectors.upstream_errors, &keep_server);
    prune_vec(&vectors.retries, &keep_server);
    prune_vec(&vectors.health_checks, &keep_server);
    prune_vec(&vectors.health_transitions, &keep_server);
}

/// A series' labels as (name, value) pairs.
pub type Labels<'a> = [(&'a str, &'a str)];

/// Removes every series of `vec` whose labels `keep` refuses.
pub fn prune_vec<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    keep: &dyn Fn(&Labels) -> bool,
) {
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: Vec<(&str, &str)> = metric
                .get_label()
                .iter()
                .map(|pair| (pair.name(), pair.value()))
                .collect();
            if !keep(&labels) {
                let values: std::collections::HashMap<&str, &str> =
                    labels.iter().copied().collect();
                let _ = vec.remove(&values);
            }
        }
    }
}

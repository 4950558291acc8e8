//! Route matching: `RouteTable::resolve(host, path, method)` picks the route with the longest
//! matching path prefix; a route naming the request's host beats a host-less one of the same
//! length; `methods`, when set, must include the request's. Pure: no IO, no pingora types.

#[cfg(test)]
mod tests;

use crate::config::Route;
use http::Method;

/// Routes ordered for matching (longest prefix first, host-specific before host-less).
#[derive(Debug)]
pub struct RouteTable {
    /// Indexes into the config's route list, in match order.
    order: Vec<usize>,
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(routes: &[Route]) -> RouteTable {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| {
            let route = &routes[i];
            (
                std::cmp::Reverse(route.path.len()),
                route.host.is_none(),
                route.methods.is_none(),
                i,
            )
        });
        RouteTable {
            order,
            routes: routes.to_vec(),
        }
    }

    /// The index (in config order) of the route that serves this request, if any.
    pub fn resolve(&self, host: Option<&str>, path: &str, method: &Method) -> Option<usize> {
        let host = host.map(strip_port);
        self.order.iter().copied().find(|&i| {
            let route = &self.routes[i];
            prefix_matches(&route.path, path)
                && route
                    .host
                    .as_deref()
                    .is_none_or(|want| host.is_some_and(|h| h.eq_ignore_ascii_case(want)))
                && route
                    .methods
                    .as_ref()
                    .is_none_or(|methods| methods.contains(method))
        })
    }

    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }
}

/// A prefix matches whole path segments: `/data` matches `/data`, `/data/complex` and
/// `/data?x`, but not `/database`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

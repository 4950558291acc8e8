//! Route matching: `RouteTable::resolve(host, path, method)`. Pure: no IO, no pingora types.
//!
//! Virtual hosts first, as nginx's server blocks: the routes naming the request's host exactly
//! are tried, then those naming it by a wildcard (`*.example.com`, one label deep), then the
//! host-less ones; within each of these tiers the longest whole-segment path prefix wins, then a
//! route that names the request's method before one that takes any, then config order. A tier
//! none of whose routes matches the path falls through to the next one, so a host-less
//! catch-all still serves the paths a virtual host does not name.
//!
//! Host names are matched without case and without the port. The lookup does not scan the
//! routes: each tier is a hash map from a route's path to its routes, and a request looks up its
//! own path's prefixes at segment boundaries, longest first (a dozen look-ups for a deep
//! path, whatever the number of routes).

#[cfg(test)]
mod tests;

use crate::config::Route;
use http::Method;
use std::collections::HashMap;

/// The routes of one tier, by their `path`; each list in match order (method-specific first,
/// then config order).
#[derive(Debug, Default)]
struct PathIndex {
    by_path: HashMap<Box<str>, Vec<usize>>,
}

impl PathIndex {
    fn insert(&mut self, path: &str, route: usize) {
        self.by_path.entry(path.into()).or_default().push(route);
    }

    /// The first route of the longest prefix of `path` that has one accepting `method`.
    fn resolve(&self, routes: &[Route], path: &str, method: &Method) -> Option<usize> {
        if self.by_path.is_empty() {
            return None;
        }
        prefixes(path).find_map(|prefix| {
            self.by_path.get(prefix)?.iter().copied().find(|&i| {
                routes[i]
                    .methods
                    .as_ref()
                    .is_none_or(|methods| methods.contains(method))
            })
        })
    }

    fn sort(&mut self, routes: &[Route]) {
        for list in self.by_path.values_mut() {
            list.sort_by_key(|&i| (routes[i].methods.is_none(), i));
        }
    }
}

/// Routes ordered for matching: exact hosts, wildcard hosts, host-less.
#[derive(Debug)]
pub struct RouteTable {
    exact: HashMap<Box<str>, PathIndex>,
    /// By the domain a wildcard covers: `*.example.com` is under `example.com`.
    wildcard: HashMap<Box<str>, PathIndex>,
    any_host: PathIndex,
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(routes: &[Route]) -> RouteTable {
        let mut table = RouteTable {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any_host: PathIndex::default(),
            routes: routes.to_vec(),
        };
        for (i, route) in routes.iter().enumerate() {
            if route.hosts.is_empty() {
                table.any_host.insert(&route.path, i);
            }
            for host in &route.hosts {
                let index = match host.strip_prefix("*.") {
                    Some(domain) => table.wildcard.entry(domain.into()).or_default(),
                    None => table.exact.entry(host.as_str().into()).or_default(),
                };
                index.insert(&route.path, i);
            }
        }
        for index in table
            .exact
            .values_mut()
            .chain(table.wildcard.values_mut())
            .chain(std::iter::once(&mut table.any_host))
        {
            index.sort(routes);
        }
        table
    }

    /// The index (in config order) of the route that serves this request, if any.
    pub fn resolve(&self, host: Option<&str>, path: &str, method: &Method) -> Option<usize> {
        let host = host.map(strip_port).filter(|h| !h.is_empty());
        if let Some(host) = host.filter(|_| !self.exact.is_empty() || !self.wildcard.is_empty()) {
            // Configured names are lowercase; most clients send lowercase too, so a copy is
            // made only for a host with capitals.
            let lowered;
            let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                lowered = host.to_ascii_lowercase();
                lowered.as_str()
            } else {
                host
            };
            let host = host.strip_suffix('.').unwrap_or(host);
            if let Some(found) = self
                .exact
                .get(host)
                .and_then(|index| index.resolve(&self.routes, path, method))
            {
                return Some(found);
            }
            if let Some(found) = host
                .split_once('.')
                .and_then(|(_, domain)| self.wildcard.get(domain))
                .and_then(|index| index.resolve(&self.routes, path, method))
            {
                return Some(found);
            }
        }
        self.any_host.resolve(&self.routes, path, method)
    }

    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }
}

/// The prefixes of `path` a route's path can equal, longest first: the path itself, then at
/// each `/` from the right the part up to and including it, and the part before it (`/a/b`:
/// `/a/b`, `/a/`, `/a`, `/`). These are exactly the prefixes `prefix_matches` accepts.
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    let slashes = path
        .bytes()
        .enumerate()
        .rev()
        .filter(|&(_, b)| b == b'/')
        .map(|(i, _)| i);
    std::iter::once(path)
        .chain(slashes.flat_map(move |i| [&path[..=i], &path[..i]]))
        .filter(|prefix| !prefix.is_empty())
        // `path` itself may end with `/`: its own `..=i` part is the same string.
        .scan(None, |previous: &mut Option<usize>, prefix| {
            let repeat = *previous == Some(prefix.len());
            *previous = Some(prefix.len());
            Some((!repeat).then_some(prefix))
        })
        .flatten()
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

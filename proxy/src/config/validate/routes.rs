//! The `[[routes]]` tables: names, paths, hosts and methods, the upstream each one names, and the
//! route's cache and auth settings, which must agree with the `[cache]` and `[auth]` tables.

use super::cache::validate_route_cache;
use super::traffic::validate_rate_limits;
use crate::config::file::FileConfig;
use crate::config::{Route, RouteAuth};
use http::Method;
use scalelab_common::problem::Problems;

pub(super) fn validate_routes(
    file: &FileConfig,
    dir: &std::path::Path,
    has_cache: bool,
    has_auth: bool,
    problems: &mut Problems,
) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    for (i, route) in file.routes.iter().enumerate() {
        let base = format!("routes[{i}]");
        let name = route.name.clone().unwrap_or_else(|| format!("route{i}"));
        if routes.iter().any(|r| r.name == name) {
            problems.push(
                format!("{base}.name"),
                format!("route name {name:?} is used twice"),
            );
        }
        if !route.path.starts_with('/') {
            problems.push(
                format!("{base}.path"),
                format!("{:?} must start with '/'", route.path),
            );
        }
        let target = super::split::validate_route_upstream(&base, route, file, problems);
        let mirror = route.mirror.as_ref().and_then(|mirror| {
            super::split::validate_mirror(&base, mirror, route.upstream.is_some(), file, problems)
        });
        let methods = route.methods.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(j, text)| {
                    let upper = text.to_ascii_uppercase();
                    match Method::from_bytes(upper.as_bytes()) {
                        Ok(method) => Some(method),
                        Err(_) => {
                            problems.push(
                                format!("{base}.methods[{j}]"),
                                format!("invalid method {text:?}"),
                            );
                            None
                        }
                    }
                })
                .collect()
        });
        let hosts = super::edge::validate_hosts(&base, route.host.as_ref(), problems);
        if routes.iter().any(|r| {
            r.path == route.path
                && r.methods == methods
                && (r.hosts == hosts || r.hosts.iter().any(|h| hosts.contains(h)))
        }) {
            problems.push(
                format!("{base}.path"),
                format!(
                    "another route already matches {:?} with the same host and methods",
                    route.path
                ),
            );
        }
        let cache = route
            .cache
            .as_ref()
            .and_then(|cache| validate_route_cache(&base, cache, has_cache, problems));
        let auth = match route.auth.as_deref() {
            None | Some("none") => RouteAuth::None,
            Some("jwt") => {
                if !has_auth {
                    problems.push(format!("{base}.auth"), "\"jwt\" needs an [auth] table");
                }
                RouteAuth::Jwt
            }
            Some("basic") => RouteAuth::Basic,
            Some("forward") => RouteAuth::Forward,
            Some(other) => {
                problems.push(
                    format!("{base}.auth"),
                    format!(
                        "unknown auth {other:?}; valid: \"jwt\", \"basic\", \"forward\", \"none\""
                    ),
                );
                RouteAuth::None
            }
        };
        let rate_limits = validate_rate_limits(
            &base,
            route.rate_limits.as_deref().unwrap_or_default(),
            auth == RouteAuth::Jwt,
            file.redis.is_some(),
            problems,
        );
        let edge =
            super::edge::validate_route_edge(&base, route, file, auth == RouteAuth::Jwt, problems);
        let access = super::access::validate_route_access(&base, route, file, dir, auth, problems);
        routes.push(Route {
            access,
            redirect: edge.redirect,
            respond: edge.respond,
            add_prefix: edge.add_prefix,
            rewrite: edge.rewrite,
            request_headers: edge.request_headers,
            response_headers: edge.response_headers,
            https_redirect: edge.https_redirect,
            rate_limits,
            name,
            auth,
            strip_prefix: route.strip_prefix.unwrap_or(false),
            upgrades: route.upgrades.unwrap_or(true),
            compress: super::compress::validate_route_compress(
                &base,
                route.compress.as_ref(),
                file.proxy.compress.as_ref(),
                problems,
            ),
            max_body_bytes: super::client::route_body_limit(&base, route, problems),
            path: route.path.clone(),
            hosts,
            methods,
            upstream: target.upstream,
            split: target.split,
            mirror,
            cache,
        });
    }
    routes
}

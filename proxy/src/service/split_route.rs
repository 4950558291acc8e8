//! A route's pool for one request: its one group, or for a split (a canary) the group
//! `balance::splitting::choose` gives from the request's headers, cookies and `split_key`. The
//! choice is counted per group and, when the explain header is asked for, explained.

use super::balancing_hints;
use super::RequestCtx;
use crate::balance::splitting::{choose, Reason};
use crate::config::balancing::HashKey;
use crate::upstream::UpstreamPool;
use pingora::prelude::Session;
use std::sync::Arc;

/// The pool of route `route` for this request; `None` for a route that answers by itself.
pub(super) fn pool_for(
    session: &Session,
    ctx: &mut RequestCtx,
    route: usize,
) -> Option<Arc<UpstreamPool>> {
    let snapshot = ctx.snapshot.clone();
    let route_config = snapshot.routes.get(route)?;
    let Some(split) = &route_config.split else {
        return snapshot.pool_for_route(route).cloned();
    };
    let req = session.req_header();
    let key = split
        .key
        .as_ref()
        .and_then(|key| balancing_hints::key_of(session, ctx, key));
    let choice = choose(
        &split.targets,
        |name| req.headers.get(name).and_then(|v| v.to_str().ok()),
        |name| balancing_hints::cookie(&req.headers, name),
        key,
        fastrand::u64(..),
    )?;
    let target = split.targets.get(choice.target)?;
    crate::telemetry::split_series::count(&route_config.name, &target.group, choice.reason);
    let group = target.group.as_str();
    let weight = target.weight;
    ctx.explain.note(|| {
        let total: u32 = split.targets.iter().map(|t| t.weight).sum();
        let why = match (choice.reason, &split.key) {
            (Reason::Pinned, _) => "its match rule".to_string(),
            (Reason::Key, Some(key)) => format!("weight {weight} of {total} by {}", key_name(key)),
            _ => format!("weight {weight} of {total} per request"),
        };
        format!("split={group} ({why})")
    });
    snapshot.split_pool(route, choice.target).cloned()
}

/// The key as the file writes it.
fn key_name(key: &HashKey) -> String {
    match key {
        HashKey::Header(name) => format!("header.{name}"),
        HashKey::Cookie(name) => format!("cookie.{name}"),
        HashKey::Query(name) => format!("query.{name}"),
        HashKey::ClientIp => "client_ip".to_string(),
        HashKey::Path => "path".to_string(),
    }
}

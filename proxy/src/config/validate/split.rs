//! A route's `upstream` (one group, or a weighted split with `match` pins), its `split_key`
//! and its `mirror`: every group defined, weights in range, names valid, each problem with its
//! TOML path.

use super::check::Check;
use crate::config::balancing::{is_cookie_name, HashKey};
use crate::config::file::{FileConfig, FileMatch, FileMirror, FileRoute, FileRouteUpstream};
use crate::config::mirror::{Mirror, DEFAULT_MIRROR_MAX_BODY};
use crate::config::split::{Pin, Split, SplitTarget, MAX_SPLIT_WEIGHT};
use crate::config::transport::UpstreamProtocol;
use scalelab_common::problem::Problems;

/// What a route's `upstream` resolves to: the group it names (for a split, the first one
/// listed, which the summary and the access log's single-group views show) and the split.
pub(super) struct RouteTarget {
    pub upstream: Option<String>,
    pub split: Option<Split>,
}

pub(super) fn validate_route_upstream(
    base: &str,
    route: &FileRoute,
    file: &FileConfig,
    problems: &mut Problems,
) -> RouteTarget {
    let key = route.split_key.as_ref().and_then(|text| {
        let key = HashKey::parse(text);
        if key.is_none() {
            problems.push(
                format!("{base}.split_key"),
                format!(
                    "unknown split key {text:?}; valid: \"header.NAME\", \"cookie.NAME\", \
                     \"query.NAME\", \"client_ip\", \"path\""
                ),
            );
        }
        key
    });
    match &route.upstream {
        None => {
            if route.split_key.is_some() {
                problems.push(
                    format!("{base}.split_key"),
                    "needs an `upstream` list of several groups to split",
                );
            }
            RouteTarget {
                upstream: None,
                split: None,
            }
        }
        Some(FileRouteUpstream::One(group)) => {
            known_group(&format!("{base}.upstream"), group, file, problems);
            if route.split_key.is_some() {
                problems.push(
                    format!("{base}.split_key"),
                    "needs an `upstream` list of several groups to split",
                );
            }
            RouteTarget {
                upstream: Some(group.clone()),
                split: None,
            }
        }
        Some(FileRouteUpstream::Split(list)) => {
            let split = validate_split(&format!("{base}.upstream"), list, key, file, problems);
            RouteTarget {
                upstream: list.first().map(|target| target.group.clone()),
                split,
            }
        }
    }
}

fn validate_split(
    base: &str,
    list: &[crate::config::file::FileSplitTarget],
    key: Option<HashKey>,
    file: &FileConfig,
    problems: &mut Problems,
) -> Option<Split> {
    if list.is_empty() {
        problems.push(base, "lists no group; name one group or list several");
        return None;
    }
    let mut targets: Vec<SplitTarget> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let path = format!("{base}[{i}]");
        known_group(&format!("{path}.group"), &entry.group, file, problems);
        if targets.iter().any(|t| t.group == entry.group) {
            problems.push(
                format!("{path}.group"),
                format!("group {:?} is listed twice", entry.group),
            );
        }
        let weight = problems.integer(
            &format!("{path}.weight"),
            entry.weight,
            (0, i64::from(MAX_SPLIT_WEIGHT)),
            1,
        ) as u32;
        let pin = entry
            .pin
            .as_ref()
            .and_then(|pin| validate_pin(&format!("{path}.match"), pin, problems));
        targets.push(SplitTarget {
            group: entry.group.clone(),
            weight,
            pin,
        });
    }
    if targets.iter().all(|t| t.weight == 0) {
        problems.push(
            base,
            "every weight is 0: at least one group must take the requests no `match` pins",
        );
    }
    Some(Split { targets, key })
}

fn validate_pin(path: &str, pin: &FileMatch, problems: &mut Problems) -> Option<Pin> {
    if pin.header.is_empty() && pin.cookie.is_empty() {
        problems.push(
            path,
            "matches nothing; name a header (header.NAME = VALUE) or a cookie (cookie.NAME = VALUE)",
        );
        return None;
    }
    let mut headers = Vec::new();
    for (name, value) in &pin.header {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(
                format!("{path}.header.{name}"),
                format!("{name:?} is not a valid header name"),
            );
            continue;
        }
        headers.push((name.to_ascii_lowercase(), value.clone()));
    }
    let mut cookies = Vec::new();
    for (name, value) in &pin.cookie {
        if !is_cookie_name(name) {
            problems.push(
                format!("{path}.cookie.{name}"),
                format!("{name:?} is not a valid cookie name"),
            );
            continue;
        }
        cookies.push((name.clone(), value.clone()));
    }
    Some(Pin { headers, cookies })
}

fn known_group(path: &str, group: &str, file: &FileConfig, problems: &mut Problems) -> bool {
    if file.upstreams.contains_key(group) {
        return true;
    }
    let known: Vec<&str> = file.upstreams.keys().map(String::as_str).collect();
    problems.push(
        path,
        format!(
            "unknown upstream {:?}; defined: [{}]",
            group,
            known.join(", ")
        ),
    );
    false
}

pub(super) fn validate_mirror(
    base: &str,
    mirror: &FileMirror,
    has_upstream: bool,
    file: &FileConfig,
    problems: &mut Problems,
) -> Option<Mirror> {
    let base = format!("{base}.mirror");
    if !has_upstream {
        problems.push(
            &base,
            "a route that answers by itself has no requests to mirror",
        );
    }
    if known_group(&format!("{base}.group"), &mirror.group, file, problems) {
        let upstream = &file.upstreams[&mirror.group];
        let clear_http1 = upstream.tls.is_none()
            && upstream
                .protocol
                .as_deref()
                .is_none_or(|p| UpstreamProtocol::parse(p) == Some(UpstreamProtocol::Http1));
        if !clear_http1 {
            problems.push(
                format!("{base}.group"),
                format!(
                    "group {:?} must speak clear-text HTTP/1.1: the mirror's client speaks \
                     only that",
                    mirror.group
                ),
            );
        }
    }
    let percent = mirror.percent.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&percent) {
        problems.push(
            format!("{base}.percent"),
            format!("{percent} is out of range 0..=100"),
        );
    }
    let max_body = problems.bytes(
        &format!("{base}.max_body"),
        mirror.max_body.as_ref(),
        DEFAULT_MIRROR_MAX_BODY as usize,
    ) as u64;
    Some(Mirror {
        group: mirror.group.clone(),
        percent: percent.clamp(0.0, 100.0),
        max_body,
    })
}

#[cfg(test)]
mod tests;

//! A group as a snapshot serves it: the servers its file lists plus those its DNS sources
//! resolved to now. Pure apart from reading the `Table`.

use super::{Source, Table};
use crate::config::dns::Origin;
use crate::config::{Server, Upstream, MAX_SERVERS_PER_UPSTREAM};
use std::sync::Arc;

/// The DNS sources of `upstream`, in config order.
pub fn sources(upstream: &Upstream) -> Vec<Source> {
    let names = upstream.dns.names.iter().map(|named| Source::Name {
        name: named.name.clone(),
        port: named.port,
    });
    let srv = upstream.dns.srv.iter().map(|srv| Source::Srv {
        name: srv.srv.clone(),
    });
    names.chain(srv).collect()
}

/// `upstream` with the servers its DNS sources resolved to added after its own. An address
/// listed twice is used once (the first wins: the file's own servers, then the sources in
/// order), and a group keeps at most `MAX_SERVERS_PER_UPSTREAM` servers.
pub fn expand(upstream: &Upstream, table: &Table) -> Upstream {
    let mut group = upstream.clone();
    if upstream.dns.is_empty() {
        return group;
    }
    let mut push = |server: Server| {
        if group.servers.len() < MAX_SERVERS_PER_UPSTREAM
            && !group.servers.iter().any(|s| s.addr == server.addr)
        {
            group.servers.push(server);
        }
    };
    for named in &upstream.dns.names {
        let source = Source::Name {
            name: named.name.clone(),
            port: named.port,
        };
        let Some(entry) = table.entry(&upstream.name, &source) else {
            continue;
        };
        let origin = Arc::new(Origin {
            name: named.name.clone(),
            record: "A",
            target: None,
            priority: None,
            weight: None,
        });
        for found in entry.servers {
            push(Server {
                addr: found.addr,
                weight: named.weight,
                max_connections: named.max_connections,
                origin: Some(origin.clone()),
                priority: 0,
            });
        }
    }
    if let Some(srv) = &upstream.dns.srv {
        let source = Source::Srv {
            name: srv.srv.clone(),
        };
        for found in table
            .entry(&upstream.name, &source)
            .map(|entry| entry.servers)
            .unwrap_or_default()
        {
            let weight = found.weight.unwrap_or(1);
            push(Server {
                addr: found.addr,
                weight,
                max_connections: None,
                origin: Some(Arc::new(Origin {
                    name: srv.srv.clone(),
                    record: "SRV",
                    target: Some(found.target),
                    priority: Some(found.priority),
                    weight: Some(weight),
                })),
                priority: found.priority,
            });
        }
    }
    group
}

/// Why a group whose servers all come from DNS has none now: each source's latest result.
/// `None` when the group has servers, or none of its own kind.
pub fn empty_reason(group: &Upstream, table: &Table) -> Option<String> {
    if !group.servers.is_empty() || group.dns.is_empty() {
        return None;
    }
    let parts: Vec<String> = sources(group)
        .iter()
        .map(|source| {
            let said = match table.entry(&group.name, source) {
                Some(entry) if !entry.last_detail.is_empty() => entry.last_detail,
                Some(entry) if entry.resolutions > 0 => "no records".to_string(),
                _ => "not resolved yet".to_string(),
            };
            format!("{} {}: {said}", source.record(), source.name())
        })
        .collect();
    Some(format!("no server from DNS ({})", parts.join("; ")))
}

/// A server's origin as `/admin/upstreams` shows it: `{"kind": "static"}` for the file's own,
/// else `{"kind": "dns", "name", "record", ...}`.
pub fn origin_json(origin: Option<&Origin>) -> serde_json::Value {
    match origin {
        None => serde_json::json!({"kind": "static"}),
        Some(origin) => {
            let mut value = serde_json::json!(origin);
            value["kind"] = serde_json::json!("dns");
            value
        }
    }
}

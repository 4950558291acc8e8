//! A changed DNS answer, applied like a reload of the config the proxy already runs: under the
//! reload lock (so it never interleaves with a config reload), the new snapshot is built from
//! the running config and the updated `Table`, the servers it adds are checked first, then it is
//! published with one atomic store. Servers that stay keep their state (it lives in the
//! `Registry`), removed ones drain: requests already on them keep the old snapshot and their
//! lease to the end. The change is a journal line with trigger `dns`.

use crate::discovery::{expand, Found, Source};
use crate::journal::{now, DnsChange, Outcome, Record, Trigger};
use crate::state::{Loaded, Shared};
use std::collections::HashSet;
use std::time::Instant;

/// Makes `servers` the set of `source` in `group` and serves it. `None` when that is the set
/// already, or a reload removed the source meanwhile (its task is stopped soon after).
pub fn apply(shared: &Shared, group: &str, source: &Source, servers: Vec<Found>) -> Option<Record> {
    let _guard = shared.reload_lock();
    let started = Instant::now();
    let running = shared.loaded();
    let upstream = running.snapshot.config.upstreams().get(group)?;
    if !expand::sources(upstream).contains(source) {
        return None;
    }
    let before = shared.registry().discovered.update(group, source, |entry| {
        std::mem::replace(&mut entry.servers, servers.clone())
    });
    if before == servers {
        return None;
    }
    let addrs = |set: &[Found]| set.iter().map(|f| f.addr).collect::<HashSet<_>>();
    let (old, new) = (addrs(&before), addrs(&servers));
    let mut added: Vec<String> = new.difference(&old).map(ToString::to_string).collect();
    let mut removed: Vec<String> = old.difference(&new).map(ToString::to_string).collect();
    added.sort();
    removed.sort();

    let config = (*running.snapshot.config).clone();
    let generation =
        crate::reload::swap::swap(shared, &running.snapshot, config, |snapshot| Loaded {
            snapshot,
            ..running.clone()
        });
    let (time, unix_ms) = now();
    let record = Record {
        generation,
        time,
        unix_ms,
        trigger: Trigger::Dns,
        result: Outcome::Applied,
        sha256: running.sha256.clone(),
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        errors: Vec::new(),
        changes: Vec::new(),
        dns: Some(DnsChange {
            upstream: group.to_string(),
            name: source.name().to_string(),
            record: source.record(),
            added,
            removed,
            servers: servers.len(),
        }),
    };
    tracing::info!(
        generation,
        upstream = group,
        name = source.name(),
        added = ?record.dns.as_ref().map(|d| &d.added),
        removed = ?record.dns.as_ref().map(|d| &d.removed),
        "DNS answer changed; group updated"
    );
    shared.journal().push(record.clone());
    Some(record)
}

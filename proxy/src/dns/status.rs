//! Discovery's series, built at scrape time like the other state-derived ones:
//! `scalelab_dns_resolutions_total{name,result}` from the table's counts and
//! `scalelab_upstream_servers{upstream}`, the servers each group has now (its own and those
//! resolved).

use crate::discovery::Table;
use crate::snapshot::Snapshot;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

pub fn register(registry: &Registry, snapshot: &Snapshot, table: &Table) -> prometheus::Result<()> {
    let servers = IntGaugeVec::new(
        Opts::new(
            "scalelab_upstream_servers",
            "Servers in the group now: those the file lists and those its DNS names resolve to.",
        ),
        &["upstream"],
    )?;
    registry.register(Box::new(servers.clone()))?;
    for pool in &snapshot.pools {
        servers
            .with_label_values(&[pool.name()])
            .set(pool.servers.len() as i64);
    }
    let resolutions = IntCounterVec::new(
        Opts::new(
            "scalelab_dns_resolutions_total",
            "Resolutions of each discovery name by result: ok, empty (NXDOMAIN or no records), error, timeout.",
        ),
        &["name", "result"],
    )?;
    registry.register(Box::new(resolutions.clone()))?;
    // Every result of every followed name exists from its first resolution, at 0 when it never
    // happened, so a rate over it starts at the first failure rather than after it.
    let names: std::collections::BTreeSet<String> = table
        .counts()
        .into_iter()
        .map(|((name, _), _)| name)
        .collect();
    for name in &names {
        for result in ["ok", "empty", "error", "timeout"] {
            resolutions.with_label_values(&[name.as_str(), result]);
        }
    }
    for ((name, result), count) in table.counts() {
        resolutions
            .with_label_values(&[name.as_str(), result])
            .inc_by(count);
    }
    Ok(())
}

/// Each DNS source of `group` for `/admin/upstreams`: its latest result and the addresses it
/// gives the group now.
pub fn status(table: &Table, group: &str) -> Vec<serde_json::Value> {
    table
        .entries()
        .into_iter()
        .filter(|((g, _), _)| g == group)
        .map(|((_, source), entry)| {
            let mut value = serde_json::json!(source);
            value["last_result"] = serde_json::json!(entry.last_result);
            value["detail"] = serde_json::json!(entry.last_detail);
            value["resolutions"] = serde_json::json!(entry.resolutions);
            value["addresses"] = serde_json::json!(entry
                .servers
                .iter()
                .map(|found| found.addr.to_string())
                .collect::<Vec<_>>());
            value
        })
        .collect()
}

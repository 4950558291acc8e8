//! The balancers' own state at scrape time, as `/admin/upstreams` shows it: each server's
//! peak EWMA and passive ejection, and each group's circuit (limit, requests under it, open).
//! Ejections themselves are counted where they happen (`scalelab_outlier_ejections_total`).

use super::{gauge, MetricsError};
use crate::snapshot::Snapshot;
use prometheus::{GaugeVec, Opts, Registry};

pub(super) fn register(registry: &Registry, snapshot: &Snapshot) -> Result<(), MetricsError> {
    let ewma = GaugeVec::new(
        Opts::new(
            "scalelab_upstream_server_ewma_seconds",
            "Peak EWMA of the server's response time (what strategy = \"ewma\" weighs by \
             in-flight requests); 0 before its first response.",
        ),
        &["upstream", "server"],
    )?;
    registry.register(Box::new(ewma.clone()))?;
    let ejected = gauge(
        registry,
        "scalelab_upstream_server_ejected",
        "1 while the server is out of rotation by a passive ejection (outlier detection or a \
         failed connect).",
        &["upstream", "server"],
    )?;
    let circuit_max = gauge(
        registry,
        "scalelab_upstream_circuit_max_requests",
        "The group's circuit: requests in flight at most across its servers.",
        &["upstream"],
    )?;
    let circuit_in_flight = gauge(
        registry,
        "scalelab_upstream_circuit_in_flight",
        "Requests in flight under the group's circuit.",
        &["upstream"],
    )?;
    let circuit_open = gauge(
        registry,
        "scalelab_upstream_circuit_open",
        "1 while the group's circuit is full (new requests wait up to max_pending, or get 503).",
        &["upstream"],
    )?;
    for pool in &snapshot.pools {
        for server in &pool.servers {
            let addr = server.state.addr.to_string();
            let labels = [pool.name(), addr.as_str()];
            ewma.with_label_values(&labels)
                .set(server.state.ewma_us() / 1e6);
            ejected
                .with_label_values(&labels)
                .set(i64::from(server.state.ejected()));
        }
        if let Some(circuit) = pool.config.balancing.circuit {
            let labels = [pool.name()];
            circuit_max
                .with_label_values(&labels)
                .set(i64::from(circuit.max_requests));
            circuit_in_flight
                .with_label_values(&labels)
                .set(pool.circuit.in_flight() as i64);
            circuit_open
                .with_label_values(&labels)
                .set(i64::from(pool.circuit.is_full(circuit.max_requests)));
        }
    }
    Ok(())
}

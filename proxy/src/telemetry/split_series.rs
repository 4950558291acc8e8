//! `scalelab_split_requests_total{route,group,reason}`: where a split route's requests went
//! and why (`match`, `weight`, `key`). With the per-server response series, which carry the
//! group, it gives a canary's share and its error ratio. Only split routes touch it, so it is
//! looked up by label when used rather than pre-resolved like the per-request series.

use crate::balance::splitting::Reason;
use crate::config::Route;
use prometheus::{IntCounterVec, Opts};
use std::sync::OnceLock;

fn series() -> Option<&'static IntCounterVec> {
    static SERIES: OnceLock<Option<IntCounterVec>> = OnceLock::new();
    SERIES
        .get_or_init(|| {
            let vec = IntCounterVec::new(
                Opts::new(
                    "scalelab_split_requests_total",
                    "Requests of split routes by the group chosen and why (match, weight, key).",
                ),
                &["route", "group", "reason"],
            )
            .ok()?;
            if let Err(error) = prometheus::register(Box::new(vec.clone())) {
                tracing::error!(%error, "cannot register scalelab_split_requests_total");
            }
            Some(vec)
        })
        .as_ref()
}

/// Counts one request of `route` sent to `group`.
pub fn count(route: &str, group: &str, reason: Reason) {
    if let Some(series) = series() {
        series
            .with_label_values(&[route, group, reason.label()])
            .inc();
    }
}

/// Makes each split route's series exist at 0 (the reasons its split can give), so a
/// dashboard's `increase()` sees a rollout's first requests.
pub fn warm(routes: &[Route]) {
    let Some(series) = series() else { return };
    for route in routes {
        let Some(split) = &route.split else { continue };
        for target in &split.targets {
            let mut reasons = vec![Reason::Weight];
            if split.key.is_some() {
                reasons.push(Reason::Key);
            }
            if target.pin.is_some() {
                reasons.push(Reason::Pinned);
            }
            for reason in reasons {
                let _ = series.with_label_values(&[&route.name, &target.group, reason.label()]);
            }
        }
    }
}

/// Drops the series of (route, group) pairs the new config's splits no longer have, so a
/// finished rollout's groups leave the exposition.
pub fn prune(routes: &[Route]) {
    let Some(series) = series() else { return };
    let keep = |labels: &super::Labels| {
        let value = |wanted: &str| labels.iter().find(|(name, _)| *name == wanted).map(|l| l.1);
        routes.iter().any(|route| {
            Some(route.name.as_str()) == value("route")
                && route.split.as_ref().is_some_and(|split| {
                    split
                        .targets
                        .iter()
                        .any(|t| Some(t.group.as_str()) == value("group"))
                })
        })
    };
    super::prune_vec(series, &keep);
}

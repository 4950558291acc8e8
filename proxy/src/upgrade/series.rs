//! The upgrade series: `scalelab_upgraded_connections_open{route}` (tunnels open now) and
//! `scalelab_upgrades_total{route,outcome}`. Only upgrade requests touch them, so they are
//! looked up by label when used rather than pre-resolved like the per-request series.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};
use std::sync::OnceLock;

/// How an upgrade request ended: the server switched (`switched`), answered something else
/// (`declined`), the route refused it (`refused`), or it was served as an ordinary request
/// (`stripped`: h2c, HTTP/1.0, `Upgrade` without its connection option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Switched,
    Declined,
    Refused,
    Stripped,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Switched => "switched",
            Outcome::Declined => "declined",
            Outcome::Refused => "refused",
            Outcome::Stripped => "stripped",
        }
    }
}

struct Series {
    open: IntGaugeVec,
    outcomes: IntCounterVec,
}

fn series() -> Option<&'static Series> {
    static SERIES: OnceLock<Option<Series>> = OnceLock::new();
    SERIES.get_or_init(build).as_ref()
}

fn build() -> Option<Series> {
    let built = IntGaugeVec::new(
        Opts::new(
            "scalelab_upgraded_connections_open",
            "Upgraded connections (WebSockets and other protocols a server switched to) open now, by route.",
        ),
        &["route"],
    )
    .and_then(|open| {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "scalelab_upgrades_total",
                "Upgrade requests by route and outcome (switched, declined, refused, stripped).",
            ),
            &["route", "outcome"],
        )?;
        prometheus::register(Box::new(open.clone()))?;
        prometheus::register(Box::new(outcomes.clone()))?;
        Ok(Series { open, outcomes })
    });
    built
        .map_err(|error| tracing::error!(%error, "cannot register the upgrade series"))
        .ok()
}

/// Counts one upgrade request of `route` under `outcome`.
pub fn count(route: &str, outcome: Outcome) {
    if let Some(series) = series() {
        series
            .outcomes
            .with_label_values(&[route, outcome.label()])
            .inc();
    }
}

/// One open tunnel on the route's gauge: counted when made, uncounted when dropped (with the
/// request's context, however the tunnel ended), so the gauge cannot leak.
#[derive(Debug)]
pub struct OpenTunnel {
    gauge: Option<IntGauge>,
}

impl OpenTunnel {
    pub fn open(route: &str) -> OpenTunnel {
        count(route, Outcome::Switched);
        let gauge = series().map(|series| series.open.with_label_values(&[route]));
        if let Some(gauge) = &gauge {
            gauge.inc();
        }
        OpenTunnel { gauge }
    }
}

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.dec();
        }
    }
}

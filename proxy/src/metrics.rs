//! Prometheus metrics, rendered at scrape time from the state the proxy already keeps
//! (server atomics, cache counters, token-check counters, the reload journal). Nothing is
//! recorded on the request path for them, and a server, route or tier that leaves the config
//! leaves the output with it, because each scrape builds its series from the current snapshot.

mod balancer_series;
pub mod openmetrics;

use crate::state::Shared;
use openmetrics::Format;
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Why the exposition could not be produced.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// The exposition of every scalelab metric plus pingora's default registry, in the classic
/// text format or in OpenMetrics (with the request-duration histogram's exemplars).
///
/// # Errors
/// When a metric cannot be registered or encoded (a programming error, reported as 500).
pub fn render(shared: &Shared, format: Format) -> Result<Vec<u8>, MetricsError> {
    let registry = Registry::new();
    let snapshot = shared.snapshot();

    let build = gauge(
        &registry,
        "scalelab_build_info",
        "Build of the running proxy.",
        &["version"],
    )?;
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    gauge(
        &registry,
        "scalelab_config_generation",
        "Generation of the config serving now.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(snapshot.generation as i64);
    let totals = shared.reload_totals();
    let reloads = counter(
        &registry,
        "scalelab_config_reloads_total",
        "Config reloads since start by result (the start-up load is not counted).",
        &["result"],
    )?;
    reloads
        .with_label_values(&["applied"])
        .inc_by(totals.applied);
    reloads
        .with_label_values(&["rejected"])
        .inc_by(totals.rejected);
    reloads
        .with_label_values(&["unchanged"])
        .inc_by(totals.unchanged);
    let last_reload = GaugeVec::new(
        Opts::new(
            "scalelab_config_last_reload_success_timestamp_seconds",
            "When a reload last applied a new config (0: never since start).",
        ),
        &[],
    )?;
    registry.register(Box::new(last_reload.clone()))?;
    last_reload
        .with_label_values::<&str>(&[])
        .set(totals.last_applied_unix_ms as f64 / 1000.0);
    gauge(
        &registry,
        "scalelab_http_requests_in_flight",
        "Client requests being served.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(shared.active_requests() as i64);

    let info = gauge(
        &registry,
        "scalelab_upstream_info",
        "Each upstream group and its default strategy.",
        &["upstream", "strategy"],
    )?;
    let up = gauge(
        &registry,
        "scalelab_upstream_server_up",
        "1 when the server takes traffic (healthy and not drained).",
        &["upstream", "server"],
    )?;
    let drained = gauge(
        &registry,
        "scalelab_upstream_server_drained",
        "1 when the server was drained by hand.",
        &["upstream", "server"],
    )?;
    // A float: a server in slow start has a fraction of its weight (0.1 of a weight of 1).
    let weight = prometheus::GaugeVec::new(
        Opts::new(
            "scalelab_upstream_server_weight",
            "Effective weight: the configured one, scaled down while the server slow-starts.",
        ),
        &["upstream", "server"],
    )?;
    registry.register(Box::new(weight.clone()))?;
    let active = gauge(
        &registry,
        "scalelab_upstream_active_requests",
        "Requests in flight on the server (what least_connections balances).",
        &["upstream", "server"],
    )?;
    let selections = counter(
        &registry,
        "scalelab_upstream_selections_total",
        "Times the balancer picked the server.",
        &["upstream", "server"],
    )?;
    for pool in &snapshot.pools {
        info.with_label_values(&[pool.name(), pool.config.strategy.name()])
            .set(1);
        for server in &pool.servers {
            let addr = server.state.addr.to_string();
            let labels = [pool.name(), addr.as_str()];
            up.with_label_values(&labels)
                .set(i64::from(server.state.is_available()));
            drained
                .with_label_values(&labels)
                .set(i64::from(server.state.is_drained()));
            weight
                .with_label_values(&labels)
                .set(crate::upstream::effective_weight(
                    server.weight,
                    server.state.ramp_tenths(pool.config.slow_start),
                ));
            active
                .with_label_values(&labels)
                .set(server.state.in_flight() as i64);
            selections
                .with_label_values(&labels)
                .inc_by(server.state.selected());
        }
    }

    balancer_series::register(&registry, &snapshot)?;

    let outcomes = shared.auth_outcomes();
    let jwt = counter(
        &registry,
        "scalelab_jwt_validations_total",
        "Token checks on auth = \"jwt\" routes by result.",
        &["result"],
    )?;
    jwt.with_label_values(&["accepted"])
        .inc_by(outcomes.accepted());
    for (reason, count) in outcomes.rejected() {
        jwt.with_label_values(&[reason]).inc_by(count);
    }

    let restarts = counter(
        &registry,
        "scalelab_background_task_restarts_total",
        "Background tasks (health checker, config watcher, cache sweeper, signal handler) that \
         stopped or panicked and were started again.",
        &["task"],
    )?;
    for task in crate::tasks::Task::ALL {
        restarts
            .with_label_values(&[task.name()])
            .inc_by(shared.tasks().restarts(task));
    }

    if let Some(store) = shared.cache().for_config(&snapshot.cache) {
        let lookups = counter(
            &registry,
            "scalelab_cache_lookups_total",
            "Lookups per tier by result (a lookup that finds nothing misses in every tier).",
            &["tier", "result"],
        )?;
        let evictions = counter(
            &registry,
            "scalelab_cache_evictions_total",
            "Objects leaving a tier by reason (capacity: fell out of the last tier; expired).",
            &["tier", "reason"],
        )?;
        let moves = counter(
            &registry,
            "scalelab_cache_moves_total",
            "Objects moving between tiers, by the tier they left.",
            &["tier", "direction"],
        )?;
        let sets = counter(
            &registry,
            "scalelab_cache_sets_total",
            "New objects stored (they enter the last tier).",
            &["tier"],
        )?;
        let entries = gauge(
            &registry,
            "scalelab_cache_entries",
            "Objects held by the tier.",
            &["tier"],
        )?;
        let bytes = gauge(
            &registry,
            "scalelab_cache_size_bytes",
            "Bytes held by the tier.",
            &["tier"],
        )?;
        let overall = counter(
            &registry,
            "scalelab_cache_requests_total",
            "Cache lookups by overall result (hit in some tier, or miss in all).",
            &["result"],
        )?;
        let tiers = store.stats();
        overall
            .with_label_values(&["hit"])
            .inc_by(tiers.iter().map(|t| t.hits).sum());
        overall.with_label_values(&["miss"]).inc_by(store.misses());
        for tier in tiers {
            let name = tier.name.as_str();
            lookups.with_label_values(&[name, "hit"]).inc_by(tier.hits);
            lookups
                .with_label_values(&[name, "miss"])
                .inc_by(tier.misses);
            evictions
                .with_label_values(&[name, "capacity"])
                .inc_by(tier.evictions);
            evictions
                .with_label_values(&[name, "expired"])
                .inc_by(tier.expirations);
            moves
                .with_label_values(&[name, "up"])
                .inc_by(tier.promotions);
            moves
                .with_label_values(&[name, "down"])
                .inc_by(tier.demotions);
            sets.with_label_values(&[name]).inc_by(tier.sets);
            entries.with_label_values(&[name]).set(tier.items as i64);
            bytes.with_label_values(&[name]).set(tier.bytes as i64);
        }
        if let Some(remote) = store.remote() {
            redis_series(&registry, &remote.counters, remote.is_failing())?;
        }
    }

    crate::https::exposition::register(&registry, &shared.certificates().table())?;
    crate::dns::status::register(&registry, &snapshot, &shared.registry().discovered)?;
    crate::trace::export_series::register(&registry)?;

    let mut families = registry.gather();
    families.extend(prometheus::gather());
    if format == Format::OpenMetrics {
        return Ok(
            openmetrics::encode(&families, &crate::telemetry::exemplars::lookup).into_bytes(),
        );
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&families, &mut out)?;
    Ok(out)
}

/// The label values of a series without labels.
const NO_LABELS: &[&str] = &[];

/// The shared (Redis) tier's own series, beside the per-tier ones every tier has: commands by
/// result, their total time (divide by the count for the mean), purges, fleet fill locks and
/// whether the breaker has the tier switched off.
fn redis_series(
    registry: &Registry,
    counters: &crate::cache::remote::RemoteCounters,
    failing: bool,
) -> Result<(), MetricsError> {
    let load =
        |value: &std::sync::atomic::AtomicU64| value.load(std::sync::atomic::Ordering::Relaxed);
    let commands = counter(
        registry,
        "scalelab_cache_redis_commands_total",
        "Commands sent to the Redis tier by result (ok, error: failed or timed out), and the \
         ones not sent (skipped) while its breaker was open.",
        &["result"],
    )?;
    let sent = load(&counters.commands);
    let errors = load(&counters.errors);
    commands
        .with_label_values(&["ok"])
        .inc_by(sent.saturating_sub(errors));
    commands.with_label_values(&["error"]).inc_by(errors);
    commands
        .with_label_values(&["skipped"])
        .inc_by(load(&counters.skipped));
    let seconds = prometheus::CounterVec::new(
        Opts::new(
            "scalelab_cache_redis_command_seconds_total",
            "Time spent in Redis tier commands; with scalelab_cache_redis_commands_total, the \
             mean latency.",
        ),
        &[],
    )?;
    registry.register(Box::new(seconds.clone()))?;
    seconds
        .with_label_values(NO_LABELS)
        .inc_by(load(&counters.latency_micros) as f64 / 1e6);
    let locks = counter(
        registry,
        "scalelab_cache_redis_fill_locks_total",
        "Fleet fill locks on cold keys: won (this proxy fetched) or waited (another proxy did).",
        &["result"],
    )?;
    locks
        .with_label_values(&["won"])
        .inc_by(load(&counters.locks_won));
    locks
        .with_label_values(&["waited"])
        .inc_by(load(&counters.locks_waited));
    counter(
        registry,
        "scalelab_cache_redis_purged_total",
        "Objects removed or marked stale in Redis by purges from this proxy.",
        &[],
    )?
    .with_label_values(NO_LABELS)
    .inc_by(load(&counters.purged));
    gauge(
        registry,
        "scalelab_cache_redis_breaker_open",
        "1 while the Redis tier is skipped after failures (requests use memory tiers and the \
         origin), else 0.",
        &[],
    )?
    .with_label_values(NO_LABELS)
    .set(i64::from(failing));
    gauge(
        registry,
        "scalelab_cache_redis_full",
        "1 while the Redis server's used memory is over the Redis tier's max_bytes (new objects \
         are not stored in it), else 0.",
        &[],
    )?
    .with_label_values(NO_LABELS)
    .set(i64::from(
        counters.full.load(std::sync::atomic::Ordering::Relaxed),
    ));
    counter(
        registry,
        "scalelab_cache_redis_refused_total",
        "Objects not stored in the Redis tier: it was over max_bytes, or the object is larger.",
        &[],
    )?
    .with_label_values(NO_LABELS)
    .inc_by(load(&counters.refused));
    Ok(())
}

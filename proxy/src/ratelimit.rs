//! Rate limits per route: GCRA (`gcra`, pure) over bounded per-key state (`buckets`), keyed by
//! the client address or a request part (`key`). A snapshot holds each route's `RouteLimits`;
//! the buckets themselves live in the `LimitRegistry`, keyed by route and limit name, so a
//! reload that keeps a limit (even with a new rate) keeps every key's state.

pub mod buckets;
pub mod gcra;
pub mod key;

#[cfg(test)]
mod tests;

use crate::cache::RemoteTier;
use crate::config::{Config, LimitStore, RateLimit};
use buckets::Buckets;
use gcra::{ceil_secs, Decision, Gcra};
use prometheus::{IntCounter, IntCounterVec, Opts};
use scalelab_common::sync::lock;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Nanoseconds since the first call: the clock every bucket's TAT is on.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The buckets of every limit, by (route name, limit name); they outlive snapshots.
#[derive(Debug, Default)]
pub struct LimitRegistry {
    buckets: Mutex<HashMap<(String, String), Arc<Buckets>>>,
}

impl LimitRegistry {
    fn buckets(&self, route: &str, limit: &str) -> Arc<Buckets> {
        lock(&self.buckets)
            .entry((route.to_string(), limit.to_string()))
            .or_default()
            .clone()
    }

    /// Forgets the buckets and the counter series of limits `config` no longer has.
    pub fn retain(&self, config: &Config) {
        let kept = |route: &str, limit: &str| {
            config
                .routes()
                .iter()
                .any(|r| r.name == route && r.rate_limits.iter().any(|l| l.name == limit))
        };
        lock(&self.buckets).retain(|(route, limit), _| kept(route, limit));
        for vector in [&REFUSED, &STORE_ERRORS]
            .into_iter()
            .filter_map(|cell| cell.get()?.as_ref())
        {
            crate::telemetry::prune_vec(vector, &|labels: &crate::telemetry::Labels| {
                let value = |name: &str| {
                    labels
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or("", |(_, v)| *v)
                };
                kept(value("route"), value("limit"))
            });
        }
    }
}

/// One limit of one route, ready for the request path.
#[derive(Debug)]
pub struct ActiveLimit {
    pub config: RateLimit,
    pub gcra: Gcra,
    buckets: Arc<Buckets>,
    refused: Option<IntCounter>,
    /// `RateLimit-Policy`'s value, formatted once: `"NAME";q=BURST;w=SECONDS`.
    policy: String,
    /// With `store = "redis"`: the bucket names' start in Redis, `ratelimit:ROUTE:LIMIT:`.
    shared_prefix: Vec<u8>,
    /// With `store = "redis"`: decisions Redis could not make.
    store_errors: Option<IntCounter>,
}

impl ActiveLimit {
    /// The verdict of this limit's store on one request.
    async fn decide(&self, key: Option<&[u8]>, now: u64, remote: Option<&RemoteTier>) -> Decision {
        let LimitStore::Redis { deny_on_error } = self.config.store else {
            return self.buckets.check(key, self.gcra, now);
        };
        let mut bucket = self.shared_prefix.clone();
        // A request without the key's value shares one bucket, as in memory.
        bucket.extend_from_slice(key.unwrap_or(b"\0shared"));
        let interval_us = self.gcra.interval_ns / 1_000;
        let shared = match remote {
            Some(remote) => {
                remote
                    .rate_limit(&bucket, interval_us, self.gcra.burst)
                    .await
            }
            None => None,
        };
        match shared {
            Some((true, remaining, reset_us)) => Decision::Allow {
                tat: 0,
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                reset_ns: reset_us.saturating_mul(1_000),
            },
            Some((false, retry_after_us, _)) => Decision::Deny {
                retry_after_ns: retry_after_us.saturating_mul(1_000),
            },
            None => {
                if let Some(counter) = &self.store_errors {
                    counter.inc();
                }
                if deny_on_error {
                    Decision::Deny {
                        retry_after_ns: 1_000_000_000,
                    }
                } else {
                    Decision::Allow {
                        tat: 0,
                        remaining: self.gcra.burst,
                        reset_ns: 0,
                    }
                }
            }
        }
    }
}

/// A route's limits, in config order.
#[derive(Debug, Default)]
pub struct RouteLimits(pub Vec<ActiveLimit>);

/// A request over one of its route's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub limit: String,
    pub retry_after_s: u64,
    /// The `RateLimit-Policy` and `RateLimit` header values.
    pub policy: String,
    pub state: String,
}

/// What an allowed request is told of its budget: the `RateLimit-Policy` and `RateLimit`
/// values of the limit closest to refusing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub policy: String,
    pub state: String,
}

/// Each limit's key value for one request: `None` when the request has none (shared bucket).
pub type KeyValues<'a> = Vec<Option<std::borrow::Cow<'a, [u8]>>>;

impl RouteLimits {
    /// The limits of route `route`, sharing buckets from `registry`.
    pub fn build(route: &str, limits: &[RateLimit], registry: &LimitRegistry) -> RouteLimits {
        RouteLimits(
            limits
                .iter()
                .map(|limit| {
                    let gcra = Gcra {
                        interval_ns: u64::try_from(limit.rate.interval().as_nanos())
                            .unwrap_or(u64::MAX)
                            .max(1),
                        burst: limit.burst,
                    };
                    ActiveLimit {
                        policy: format!(
                            "\"{}\";q={};w={}",
                            limit.name,
                            limit.burst,
                            ceil_secs(gcra.tolerance_ns()).max(1)
                        ),
                        gcra,
                        buckets: registry.buckets(route, &limit.name),
                        refused: refused_counter(route, &limit.name),
                        shared_prefix: format!("ratelimit:{route}:{}:", limit.name).into_bytes(),
                        store_errors: match limit.store {
                            LimitStore::Redis { .. } => store_error_counter(route, &limit.name),
                            LimitStore::Memory => None,
                        },
                        config: limit.clone(),
                    }
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks every limit in order; the first that refuses ends the check (the later ones are
    /// not charged for a refused request). `note`, when given, gets one entry per limit for the
    /// explain header. An allowed request learns the budget of the limit with the fewest
    /// requests left.
    ///
    /// A `store = "redis"` limit asks `remote` (the shared tier's connection); without one, or
    /// when Redis cannot answer, its `on_store_error` decides.
    pub async fn check(
        &self,
        keys: &KeyValues<'_>,
        now: u64,
        mut note: Option<&mut String>,
        remote: Option<&RemoteTier>,
    ) -> Result<Option<Quota>, Refusal> {
        let mut tightest: Option<(&ActiveLimit, u32, u64)> = None;
        for (limit, key) in self.0.iter().zip(keys) {
            let decision = limit.decide(key.as_deref(), now, remote).await;
            if let Some(text) = note.as_deref_mut() {
                let shown = match key {
                    Some(value) => String::from_utf8_lossy(value).into_owned(),
                    None => format!("(no {}: shared bucket)", limit.config.key),
                };
                let verdict = match decision {
                    Decision::Allow { remaining, .. } => format!("allowed, remaining={remaining}"),
                    Decision::Deny { .. } => "refused".to_string(),
                };
                let _ = write!(
                    text,
                    "{}limit {}({}={shown}, {}/burst {}: {verdict})",
                    if text.is_empty() { "" } else { ", " },
                    limit.config.name,
                    limit.config.key,
                    limit.config.rate,
                    limit.config.burst
                );
            }
            match decision {
                Decision::Deny { retry_after_ns } => {
                    if let Some(counter) = &limit.refused {
                        counter.inc();
                    }
                    let retry_after_s = ceil_secs(retry_after_ns).max(1);
                    return Err(Refusal {
                        limit: limit.config.name.clone(),
                        retry_after_s,
                        policy: limit.policy.clone(),
                        state: format!("\"{}\";r=0;t={retry_after_s}", limit.config.name),
                    });
                }
                Decision::Allow {
                    remaining,
                    reset_ns,
                    ..
                } => {
                    if tightest.is_none_or(|(_, least, _)| remaining < least) {
                        tightest = Some((limit, remaining, reset_ns));
                    }
                }
            }
        }
        Ok(tightest.map(|(limit, remaining, reset_ns)| Quota {
            policy: limit.policy.clone(),
            state: format!(
                "\"{}\";r={remaining};t={}",
                limit.config.name,
                ceil_secs(reset_ns)
            ),
        }))
    }
}

/// `scalelab_rate_limit_store_errors_total{route,limit}`: decisions of `store = "redis"` limits
/// that Redis could not make (`on_store_error` made them).
static STORE_ERRORS: OnceLock<Option<IntCounterVec>> = OnceLock::new();

fn store_error_counter(route: &str, limit: &str) -> Option<IntCounter> {
    limit_counter(
        &STORE_ERRORS,
        "scalelab_rate_limit_store_errors_total",
        "Decisions of store = \"redis\" rate limits that Redis could not make, so on_store_error \
         made them.",
        route,
        limit,
    )
}

/// `scalelab_rate_limited_requests_total{route,limit}`, in Prometheus' default registry (as the
/// other request-path series are); `None` only if the vector could not be built.
static REFUSED: OnceLock<Option<IntCounterVec>> = OnceLock::new();

fn refused_counter(route: &str, limit: &str) -> Option<IntCounter> {
    limit_counter(
        &REFUSED,
        "scalelab_rate_limited_requests_total",
        "Requests refused with 429 by a route's rate limit.",
        route,
        limit,
    )
}

/// The `{route, limit}` series of the counter vector in `cell`, built and registered in the
/// default registry on first use.
fn limit_counter(
    cell: &'static OnceLock<Option<IntCounterVec>>,
    name: &str,
    help: &str,
    route: &str,
    limit: &str,
) -> Option<IntCounter> {
    cell.get_or_init(|| {
        let vector = IntCounterVec::new(Opts::new(name, help), &["route", "limit"]).ok()?;
        if let Err(error) = prometheus::register(Box::new(vector.clone())) {
            tracing::warn!(%error, metric = name, "rate limit counter not registered");
        }
        Some(vector)
    })
    .as_ref()
    .map(|vector| vector.with_label_values(&[route, limit]))
}

//! `scalelab bench`: a closed-loop load generator. C tasks each send requests back to back until N have been sent,
//! recording latency (HDR histogram, microseconds), status, `X-Upstream-Server`, `X-Cache` and the gateway's
//! `X-Local-Cache` of every response, and when each one finished (`timeline`). A run can also stop at a deadline, and can spread its requests over
//! Zipf-distributed keys (`Keys`).

pub mod timeline;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_distr::Distribution;
use serde::Serialize;

use self::timeline::{Outcome, Sample, Timeline};

/// What to send.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// The run's name, shown before its progress bar (empty for none).
    pub label: String,
    pub url: reqwest::Url,
    pub requests: u64,
    pub concurrency: u32,
    pub token: Option<String>,
    pub timeout: Duration,
    pub progress: bool,
    /// Stop sending after this long even if fewer than `requests` were sent (for runs whose condition changes on
    /// a schedule).
    pub duration: Option<Duration>,
    /// Stop sending once this is set, whatever is left (for runs whose condition changes on events that take as
    /// long as they take, such as `scale-out` waiting for the proxy to follow DNS).
    pub stop: Option<Arc<AtomicBool>>,
    /// Spread the requests over keys instead of loading one URL.
    pub keys: Option<Keys>,
}

/// A key workload: each request sets the query parameter `param` to a key drawn from a Zipf distribution over
/// `1..=count`, so a few keys are hot and most are cold, as real traffic is.
#[derive(Debug, Clone)]
pub struct Keys {
    pub param: String,
    pub count: u64,
    pub exponent: f64,
}

impl Keys {
    fn distribution(&self) -> Result<rand_distr::Zipf<f64>, BenchError> {
        rand_distr::Zipf::new(self.count, self.exponent)
            .map_err(|error| BenchError::Keys(format!("{error:?}")))
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid URL {0:?}: {1}")]
    Url(String, String),
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("cannot create the latency histogram: {0}")]
    Histogram(String),
    #[error("{0}")]
    Scenario(&'static str),
    #[error("invalid key distribution: {0}")]
    Keys(String),
}

use reqwest::Url;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// One point of the latency CDF: `percentile` % of the requests took at most `ms` milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct CdfPoint {
    pub percentile: f64,
    pub ms: f64,
}

/// The CDF has a point at every whole percent from 0 to 99, then these, because the tail is where runs differ most.
const CDF_PERCENTILES: [f64; 4] = [99.5, 99.9, 99.99, 100.0];

/// The result, also written as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub url: String,
    pub requests: u64,
    pub concurrency: u32,
    pub elapsed_s: f64,
    pub requests_per_s: f64,
    /// Status code (or `error`) to count.
    pub statuses: BTreeMap<String, u64>,
    /// `X-Upstream-Server` to count (`none` when absent).
    pub upstreams: BTreeMap<String, u64>,
    /// `X-Cache` to count (`none` when absent).
    pub cache: BTreeMap<String, u64>,
    /// The gateway's `X-Local-Cache` (`hit`, `miss`) to count (`none` when absent: its local cache is off, or the
    /// proxy's cache answered).
    pub local_cache: BTreeMap<String, u64>,
    /// Transport errors (connect, timeout), which have no status.
    pub errors: u64,
    /// 429 answers: refused to protect the server (rate limits); counted apart from other errors because they are
    /// a policy working, not a failure.
    pub too_many_requests: u64,
    /// 503 answers: nothing could serve the request then (no healthy server, a full queue).
    pub unavailable: u64,
    /// Share of answered requests the proxy's cache served (`X-Cache` `HIT` or `STALE`), from 0 to 1.
    pub cache_hit_ratio: f64,
    /// Latency of every completed request, errors included.
    pub latency_ms: Latency,
    /// The latency CDF, for the plots.
    pub latency_cdf: Vec<CdfPoint>,
    /// Outcomes and servers over the run's time, for the plots.
    pub timeline: Timeline,
}

impl BenchReport {
    /// The share of answered requests `server` served, from 0 to 1.
    pub fn share(&self, server: &str) -> f64 {
        let answered: u64 = self.upstreams.values().sum();
        if answered == 0 {
            0.0
        } else {
            self.upstreams.get(server).copied().unwrap_or(0) as f64 / answered as f64
        }
    }

    /// Requests that did not succeed: transport errors and every status of 400 or more.
    pub fn failed(&self) -> u64 {
        self.timeline
            .buckets
            .iter()
            .map(timeline::Bucket::failed)
            .sum()
    }
}

/// One run of a scenario in the scenario's JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub name: String,
    #[serde(flatten)]
    pub report: BenchReport,
}

/// Every run of a scenario, as written to `<scenario>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub runs: Vec<RunReport>,
}

/// The latency CDF of `histogram` (microseconds) in milliseconds.
fn cdf(histogram: &Histogram<u64>) -> Vec<CdfPoint> {
    (0..100)
        .map(f64::from)
        .chain(CDF_PERCENTILES)
        .map(|percentile| CdfPoint {
            percentile,
            ms: histogram.value_at_quantile(percentile / 100.0) as f64 / 1000.0,
        })
        .collect()
}

/// The share of answered requests the cache served.
fn hit_ratio(cache: &BTreeMap<String, u64>) -> f64 {
    let answered: u64 = cache.values().sum();
    let served: u64 = ["HIT", "STALE"]
        .iter()
        .filter_map(|result| cache.get(*result))
        .sum();
    if answered == 0 {
        0.0
    } else {
        served as f64 / answered as f64
    }
}

/// The path and query of a URL (the page names what was loaded without linking anywhere).
pub fn path_of(url: &str) -> &str {
    url.split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|slash| &rest[slash..]))
        .unwrap_or(url)
}

/// Builds the request URL: `base` plus `strategy=` and `bypass_cache=true` when asked.
///
/// # Errors
/// `base` is not a URL.
pub fn build_url(
    base: &str,
    strategy: Option<&str>,
    bypass_cache: bool,
) -> Result<Url, BenchError> {
    let mut url =
        Url::parse(base).map_err(|error| BenchError::Url(base.to_owned(), error.to_string()))?;
    if strategy.is_some() || bypass_cache {
        let mut pairs = url.query_pairs_mut();
        if let Some(strategy) = strategy {
            pairs.append_pair("strategy", strategy);
        }
        if bypass_cache {
            pairs.append_pair("bypass_cache", "true");
        }
    }
    Ok(url)
}

struct Tally {
    histogram: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    upstreams: BTreeMap<String, u64>,
    cache: BTreeMap<String, u64>,
    local_cache: BTreeMap<String, u64>,
    errors: u64,
    samples: Vec<Sample>,
}

impl Tally {
    fn new() -> Result<Tally, BenchError> {
        // 1 µs to 10 min at 3 significant digits.
        let histogram = Histogram::new_with_bounds(1, 600_000_000, 3)
            .map_err(|error| BenchError::Histogram(error.to_string()))?;
        Ok(Tally {
            histogram,
            statuses: BTreeMap::new(),
            upstreams: BTreeMap::new(),
            cache: BTreeMap::new(),
            local_cache: BTreeMap::new(),
            errors: 0,
            samples: Vec::new(),
        })
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail; a failure would only lose samples.
        let _ = self.histogram.add(&other.histogram);
        for (target, source) in [
            (&mut self.statuses, other.statuses),
            (&mut self.upstreams, other.upstreams),
            (&mut self.cache, other.cache),
            (&mut self.local_cache, other.local_cache),
        ] {
            for (key, count) in source {
                *target.entry(key).or_default() += count;
            }
        }
        self.errors += other.errors;
        self.samples.extend(other.samples);
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("none")
        .to_owned()
}

/// Runs the benchmark.
///
/// # Errors
/// The client or histogram cannot be built. Failed requests are counted, not errors.
pub async fn run(plan: &BenchPlan) -> Result<BenchReport, BenchError> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(plan.timeout)
        .pool_max_idle_per_host(plan.concurrency as usize)
        .build()
        .map_err(BenchError::Client)?;
    let bar = if plan.progress {
        indicatif::ProgressBar::new(plan.requests)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} {bar:40} {pos}/{len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(plan.label.clone());
    let next = Arc::new(AtomicU64::new(0));
    let keys = match &plan.keys {
        Some(keys) => Some((keys.param.clone(), keys.distribution()?)),
        None => None,
    };
    let started = Instant::now();
    let deadline = plan.duration.map(|duration| started + duration);
    let mut tasks = Vec::new();
    for _ in 0..plan.concurrency {
        let client = client.clone();
        let next = Arc::clone(&next);
        let bar = bar.clone();
        let url = plan.url.clone();
        let token = plan.token.clone();
        let total = plan.requests;
        let mut tally = Tally::new()?;
        let keys = keys.clone();
        let stop = plan.stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            while next.fetch_add(1, Ordering::Relaxed) < total
                && deadline.is_none_or(|deadline| Instant::now() < deadline)
                && !stop
                    .as_ref()
                    .is_some_and(|stop| stop.load(Ordering::Relaxed))
            {
                let mut url = url.clone();
                if let Some((param, zipf)) = &keys {
                    let key = zipf.sample(&mut rng) as u64;
                    url.query_pairs_mut().append_pair(param, &key.to_string());
                }
                let mut request = client.get(url);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let sent = Instant::now();
                let outcome = request.send().await;
                let outcome = match outcome {
                    // The latency includes reading the body, as a client experiences it.
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let upstream = header(&response, "x-upstream-server");
                        let cache = header(&response, "x-cache");
                        let local = header(&response, "x-local-cache");
                        response
                            .bytes()
                            .await
                            .map(|_| (status, upstream, cache, local))
                    }
                    Err(error) => Err(error),
                };
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally.histogram.saturating_record(micros.max(1));
                let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                match outcome {
                    Ok((status, upstream, cache, local)) => {
                        tally.samples.push(Sample {
                            at_ms,
                            outcome: Outcome::of_status(status),
                            upstream: upstream.clone(),
                        });
                        *tally.statuses.entry(status.to_string()).or_default() += 1;
                        *tally.upstreams.entry(upstream).or_default() += 1;
                        *tally.cache.entry(cache).or_default() += 1;
                        *tally.local_cache.entry(local).or_default() += 1;
                    }
                    Err(_) => {
                        tally.samples.push(Sample {
                            at_ms,
                            outcome: Outcome::Transport,
                            upstream: "none".to_owned(),
                        });
                        tally.errors += 1;
                        *tally.statuses.entry("error".to_owned()).or_default() += 1;
                    }
                }
                bar.inc(1);
            }
            tally
        }));
    }
    let mut total = Tally::new()?;
    for task in tasks {
        if let Ok(tally) = task.await {
            total.merge(tally);
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let timeline = timeline::build(&total.samples, elapsed_ms);
    let count_of = |status: &str| total.statuses.get(status).copied().unwrap_or(0);
    let (too_many_requests, unavailable) = (count_of("429"), count_of("503"));
    let h = &total.histogram;
    let ms = |micros: u64| micros as f64 / 1000.0;
    let done = h.len();
    Ok(BenchReport {
        url: plan.url.to_string(),
        requests: done,
        concurrency: plan.concurrency,
        elapsed_s: elapsed,
        requests_per_s: if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        },
        statuses: total.statuses,
        upstreams: total.upstreams,
        cache_hit_ratio: hit_ratio(&total.cache),
        cache: total.cache,
        local_cache: total.local_cache,
        errors: total.errors,
        too_many_requests,
        unavailable,
        latency_ms: Latency {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        },
        latency_cdf: cdf(h),
        timeline,
    })
}

/// A few lines for the terminal.
pub fn summary(report: &BenchReport) -> String {
    let counts = |map: &BTreeMap<String, u64>| {
        map.iter()
            .map(|(key, count)| format!("{key}={count}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let l = &report.latency_ms;
    format!(
        "{} requests to {} with concurrency {} in {:.2}s ({:.1} req/s)\n\
         status:    {}\n\
         upstream:  {}\n\
         cache:     {}  (hit ratio {:.1}%)\n\
         refused:   429={} (too many requests)  503={} (unavailable)  transport errors={}\n\
         latency ms: min {:.2}  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}",
        report.requests,
        report.url,
        report.concurrency,
        report.elapsed_s,
        report.requests_per_s,
        counts(&report.statuses),
        counts(&report.upstreams),
        counts(&report.cache),
        report.cache_hit_ratio * 100.0,
        report.too_many_requests,
        report.unavailable,
        report.errors,
        l.min,
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max,
        l.mean
    )
}

#[cfg(test)]
mod tests;

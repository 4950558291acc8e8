//! Forward auth: the request's method, URI and chosen headers are sent to an auth service
//! (one of the config's upstream groups); a 2xx lets the request through with the named
//! response headers added, anything else is passed back to the client as the service gave it,
//! and a service that cannot answer is 503 (or `on_error`). Like Traefik's `forwardAuth` and
//! nginx's `auth_request`, the service gets a `GET` of its own `path` with the original
//! request in `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host` and
//! `X-Forwarded-For` (no body).
//!
//! Decisions may be cached for `cache` per credentials: the key is a SHA-256 of the route and
//! of the copied request headers' names and values, so the decision is per identity, not per
//! URI; a service whose answer depends on the path wants `cache` off (the default).

use super::{ForwardAnswer, Refusal};
use crate::config::access::{ForwardSettings, OnForwardError};
use crate::upstream::UpstreamPool;
use http::{HeaderMap, HeaderName, HeaderValue};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};
use scalelab_common::sync::lock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Instant;

/// The body of a refusal passed on to the client is cut at this size.
const MAX_BODY: usize = 64 * 1024;
/// At most this many decisions are kept; past it, expired ones are dropped, then all.
const CACHE_MAX: usize = 10_000;

/// What a request passing forward auth takes upstream: the copied response headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Passed {
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The request as the auth service is told about it.
pub struct Asking<'a> {
    pub route: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub host: Option<&'a str>,
    pub client: Option<IpAddr>,
    pub headers: &'a HeaderMap,
}

type Decision = Result<Passed, Refusal>;

/// Decisions by key, with the time each was made.
type Decisions = HashMap<[u8; 32], (Instant, Decision)>;

static CACHE: LazyLock<Mutex<Decisions>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Asks the auth service (or the decision cache) whether the request may pass.
///
/// # Errors
/// `Refusal::Forward` with the service's answer when it is not 2xx; `ForwardUnavailable` when
/// it cannot be asked and `on_error` does not allow the request.
pub async fn check(
    settings: &ForwardSettings,
    pool: Option<&UpstreamPool>,
    asking: &Asking<'_>,
) -> Result<Passed, Refusal> {
    let key = (!settings.cache.is_zero()).then(|| cache_key(settings, asking));
    if let Some(key) = &key {
        let cache = lock(&CACHE);
        if let Some((_, decision)) = cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < settings.cache)
        {
            count("cached");
            return decision.clone();
        }
    }
    let started = Instant::now();
    let asked = ask(settings, pool, asking).await;
    if let Some(histogram) = metrics().map(|m| &m.duration) {
        histogram.observe(started.elapsed().as_secs_f64());
    }
    let decision = match asked {
        Ok(response) if response.status.is_success() => {
            count("allowed");
            Ok(Passed {
                headers: settings
                    .copy_response_headers
                    .iter()
                    .filter_map(|name| {
                        response
                            .headers
                            .get(name)
                            .map(|value| (name.clone(), value.clone()))
                    })
                    .collect(),
            })
        }
        Ok(response) => {
            count("denied");
            Err(Refusal::Forward(passed_on(response)))
        }
        Err(detail) => {
            count("error");
            tracing::warn!(upstream = %settings.upstream, %detail, "forward auth failed");
            // Failures are never cached: the next request asks again.
            return match settings.on_error {
                OnForwardError::Allow => Ok(Passed::default()),
                OnForwardError::Deny => Err(Refusal::ForwardUnavailable {
                    status: 403,
                    detail,
                }),
                OnForwardError::Unavailable => Err(Refusal::ForwardUnavailable {
                    status: 503,
                    detail,
                }),
            };
        }
    };
    if let Some(key) = key {
        let mut cache = lock(&CACHE);
        if cache.len() >= CACHE_MAX {
            let ttl = settings.cache;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), decision.clone()));
    }
    decision
}

/// One request to a server of the auth service's group.
async fn ask(
    settings: &ForwardSettings,
    pool: Option<&UpstreamPool>,
    asking: &Asking<'_>,
) -> Result<crate::http1::Response, String> {
    let pool = pool.ok_or_else(|| format!("no upstream {}", settings.upstream))?;
    // The lease counts the call as in flight on that server (its max_connections hold).
    let (_, lease) = pool
        .select(pool.config.strategy, 0, false)
        .map_err(|_| format!("no available server in upstream {}", settings.upstream))?;
    let addr = lease.server().addr;
    let mut headers = HeaderMap::new();
    for name in &settings.copy_request_headers {
        for value in asking.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-forwarded-method", asking.method);
    set("x-forwarded-uri", asking.uri);
    if let Some(host) = asking.host {
        set("x-forwarded-host", host);
    }
    if let Some(client) = asking.client {
        set("x-forwarded-for", &client.to_string());
    }
    crate::http1::exchange(
        http::Method::GET,
        addr,
        &settings.path,
        headers,
        bytes::Bytes::new(),
        settings.timeout,
        MAX_BODY,
    )
    .await
    .map_err(|error| error.to_string())
}

/// The parts of a refusing answer the client gets.
fn passed_on(response: crate::http1::Response) -> ForwardAnswer {
    let mut headers = Vec::new();
    for name in ["www-authenticate", "location", "content-type", "set-cookie"] {
        for value in response.headers.get_all(name) {
            if let Ok(value) = value.to_str() {
                headers.push((name, value.to_string()));
            }
        }
    }
    ForwardAnswer {
        status: response.status.as_u16(),
        headers,
        body: response.body,
    }
}

fn cache_key(settings: &ForwardSettings, asking: &Asking<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(asking.route.as_bytes());
    hasher.update([0]);
    for name in &settings.copy_request_headers {
        hasher.update(name.as_str().as_bytes());
        hasher.update([0]);
        for value in asking.headers.get_all(name) {
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
        hasher.update([1]);
    }
    hasher.finalize().into()
}

struct Metrics {
    duration: Histogram,
    outcomes: IntCounterVec,
}

fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let duration = Histogram::with_opts(
                HistogramOpts::new(
                    "scalelab_forward_auth_duration_seconds",
                    "Time to ask the forward auth service (cache hits not included).",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )
            .map_err(|error| tracing::error!(%error, "cannot build a forward auth metric"))
            .ok()?;
            if let Err(error) = prometheus::register(Box::new(duration.clone())) {
                tracing::error!(%error, "cannot register a forward auth metric");
            }
            let outcomes = IntCounterVec::new(
                Opts::new(
                    "scalelab_forward_auth_total",
                    "Forward auth decisions by outcome: allowed, denied, error, cached.",
                ),
                &["outcome"],
            )
            .map_err(|error| tracing::error!(%error, "cannot build a forward auth metric"))
            .ok()?;
            if let Err(error) = prometheus::register(Box::new(outcomes.clone())) {
                tracing::error!(%error, "cannot register a forward auth metric");
            }
            for outcome in ["allowed", "denied", "error", "cached"] {
                outcomes.with_label_values(&[outcome]);
            }
            Some(Metrics { duration, outcomes })
        })
        .as_ref()
}

/// Creates the series at start-up so a dashboard shows zero rather than nothing.
pub fn warm() {
    let _ = metrics();
}

fn count(outcome: &str) {
    if let Some(metrics) = metrics() {
        metrics.outcomes.with_label_values(&[outcome]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(copy: &[&str]) -> ForwardSettings {
        ForwardSettings {
            upstream: "auth".into(),
            path: "/verify".into(),
            copy_request_headers: copy
                .iter()
                .map(|h| HeaderName::from_bytes(h.as_bytes()).unwrap())
                .collect(),
            copy_response_headers: Vec::new(),
            timeout: Duration::from_secs(1),
            cache: Duration::from_secs(30),
            on_error: OnForwardError::Unavailable,
        }
    }

    fn key(route: &str, headers: &[(&str, &str)], copy: &[&str]) -> [u8; 32] {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let asking = Asking {
            route,
            method: "GET",
            uri: "/x",
            host: None,
            client: None,
            headers: &map,
        };
        cache_key(&settings(copy), &asking)
    }

    #[test]
    fn the_decision_key_is_the_copied_headers_only() {
        let copy = ["authorization", "cookie"];
        let a = key("r", &[("authorization", "Bearer a")], &copy);
        assert_eq!(
            a,
            key(
                "r",
                &[("authorization", "Bearer a"), ("x-other", "1")],
                &copy
            )
        );
        assert_ne!(a, key("r", &[("authorization", "Bearer b")], &copy));
        assert_ne!(a, key("r2", &[("authorization", "Bearer a")], &copy));
        // A value moved from one header to another is another identity.
        assert_ne!(
            key("r", &[("authorization", "x")], &copy),
            key("r", &[("cookie", "x")], &copy)
        );
    }
}

//! The traffic-control keys: a route's `rate_limits`, `[proxy] trusted_proxies`, and a group's
//! `queue`, `slow_start` and servers' `max_connections`.

#[cfg(test)]
mod tests;

use super::check::Check;
use crate::config::file::{FileQueue, FileRateLimit};
use crate::config::traffic::{
    LimitKey, LimitStore, QueueSettings, Rate, RateLimit, TrustedProxies,
};
use crate::config::units::DurationKind;
use scalelab_common::problem::Problems;
use std::time::Duration;

/// The most requests a rate may allow per period, and the largest burst: far above what one
/// proxy serves, so a bigger number is a typo.
const MAX_COUNT: i64 = 1_000_000;
/// The longest queue a group may have; each waiter is a parked request and its connection.
const MAX_QUEUE: i64 = 100_000;

/// Parses "20/s", "600/min" or "1000/h" (also "/second", "/minute", "/hour").
///
/// # Errors
/// A message saying how to write a rate.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let usage = "write it like \"20/s\", \"600/min\" or \"1000/h\"";
    let (count, unit) = text
        .split_once('/')
        .ok_or_else(|| format!("invalid rate {text:?}; {usage}"))?;
    let count: i64 = count
        .trim()
        .parse()
        .map_err(|_| format!("invalid count in rate {text:?}; {usage}"))?;
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(format!(
            "the count in rate {text:?} must be in 1..={MAX_COUNT}"
        ));
    }
    let period = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => return Err(format!("unknown unit {other:?} in rate {text:?}; {usage}")),
    };
    Ok(Rate {
        count: count as u32,
        period,
    })
}

/// Parses a limit's `key`; `jwt.CLAIM` needs the route to verify tokens.
///
/// # Errors
/// A message naming the valid forms.
pub fn parse_key(text: &str, route_verifies_tokens: bool) -> Result<LimitKey, String> {
    let valid = "valid: \"client_ip\", \"route\", \"header.NAME\", \"query.NAME\", \"jwt.CLAIM\"";
    let named = |prefix: &str| {
        text.strip_prefix(prefix)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    };
    match text {
        "client_ip" => Ok(LimitKey::ClientIp),
        "route" => Ok(LimitKey::Route),
        _ => {
            if let Some(name) = named("header.") {
                http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map(LimitKey::Header)
                    .map_err(|_| format!("{name:?} is not a valid header name"))
            } else if let Some(name) = named("query.") {
                Ok(LimitKey::Query(name))
            } else if let Some(name) = named("jwt.") {
                if route_verifies_tokens {
                    Ok(LimitKey::Claim(name))
                } else {
                    Err(format!(
                        "{text:?} needs auth = \"jwt\" on the route (only a verified token's \
                         claims may name a bucket)"
                    ))
                }
            } else {
                Err(format!("unknown key {text:?}; {valid}"))
            }
        }
    }
}

/// A route's `rate_limits`; `base` is the route's TOML path.
pub(super) fn validate_rate_limits(
    base: &str,
    limits: &[FileRateLimit],
    route_verifies_tokens: bool,
    has_redis: bool,
    problems: &mut Problems,
) -> Vec<RateLimit> {
    let mut valid: Vec<RateLimit> = Vec::new();
    for (i, limit) in limits.iter().enumerate() {
        let path = format!("{base}.rate_limits[{i}]");
        let before = problems.len();
        if limit.name.is_empty() || limit.name.chars().any(|c| c.is_control() || c == '"') {
            problems.push(
                format!("{path}.name"),
                "must be non-empty, without quotes or control characters",
            );
        } else if valid.iter().any(|l| l.name == limit.name)
            || limits[..i].iter().any(|l| l.name == limit.name)
        {
            problems.push(
                format!("{path}.name"),
                format!("limit name {:?} is used twice in this route", limit.name),
            );
        }
        let rate = parse_rate(&limit.rate).unwrap_or_else(|message| {
            problems.push(format!("{path}.rate"), message);
            Rate {
                count: 1,
                period: Duration::from_secs(1),
            }
        });
        let burst = problems.integer(
            &format!("{path}.burst"),
            limit.burst,
            (1, MAX_COUNT),
            i64::from(rate.count),
        ) as u32;
        let key = parse_key(
            limit.key.as_deref().unwrap_or("client_ip"),
            route_verifies_tokens,
        )
        .unwrap_or_else(|message| {
            problems.push(format!("{path}.key"), message);
            LimitKey::Route
        });
        let deny_on_error = match limit.on_store_error.as_deref() {
            None | Some("allow") => false,
            Some("deny") => true,
            Some(other) => {
                problems.push(
                    format!("{path}.on_store_error"),
                    format!("unknown value {other:?}; valid: \"allow\" (default), \"deny\""),
                );
                false
            }
        };
        let store = match limit.store.as_deref() {
            None | Some("memory") => {
                if limit.on_store_error.is_some() {
                    problems.push(
                        format!("{path}.on_store_error"),
                        "only applies to store = \"redis\"",
                    );
                }
                LimitStore::Memory
            }
            Some("redis") => {
                if !has_redis {
                    problems.push(
                        format!("{path}.store"),
                        "\"redis\" needs a [redis] table with the server's url (one budget shared by every proxy using it)",
                    );
                }
                LimitStore::Redis { deny_on_error }
            }
            Some(other) => {
                problems.push(
                    format!("{path}.store"),
                    format!("unknown store {other:?}; valid: \"memory\", \"redis\""),
                );
                LimitStore::Memory
            }
        };
        if problems.len() == before {
            valid.push(RateLimit {
                name: limit.name.clone(),
                rate,
                burst,
                key,
                store,
            });
        }
    }
    valid
}

/// `[proxy] trusted_proxies`: CIDRs, or single addresses (a /32 or /128).
pub(super) fn validate_trusted_proxies(
    list: Option<&Vec<String>>,
    problems: &mut Problems,
) -> TrustedProxies {
    validate_networks("proxy.trusted_proxies", list, problems)
}

/// A list of networks (CIDRs or single addresses) at `path`.
pub(super) fn validate_networks(
    path: &str,
    list: Option<&Vec<String>>,
    problems: &mut Problems,
) -> TrustedProxies {
    let nets = list
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed = text.parse::<ipnet::IpNet>().or_else(|_| {
                text.parse::<std::net::IpAddr>()
                    .map(ipnet::IpNet::from)
            });
            parsed
                .map_err(|_| {
                    problems.push(
                        format!("{path}[{i}]"),
                        format!(
                            "invalid network {text:?}; write it like \"10.0.0.0/8\" or \"127.0.0.1\""
                        ),
                    )
                })
                .ok()
        })
        .collect();
    TrustedProxies(nets)
}

/// A group's `queue` table (defaults without one).
pub(super) fn validate_queue(
    base: &str,
    queue: Option<&FileQueue>,
    problems: &mut Problems,
) -> QueueSettings {
    let default = QueueSettings::default();
    let Some(queue) = queue else { return default };
    QueueSettings {
        max: problems.integer(
            &format!("{base}.queue.max"),
            queue.max,
            (0, MAX_QUEUE),
            default.max as i64,
        ) as usize,
        timeout: problems.duration(
            &format!("{base}.queue.timeout"),
            queue.timeout.as_ref(),
            DurationKind::Timeout,
            default.timeout,
        ),
    }
}

/// A group's `slow_start` window; `None` without one.
pub(super) fn validate_slow_start(
    base: &str,
    slow_start: Option<&String>,
    problems: &mut Problems,
) -> Option<Duration> {
    slow_start.map(|text| {
        problems.duration(
            &format!("{base}.slow_start"),
            Some(text),
            DurationKind::Timeout,
            Duration::from_secs(30),
        )
    })
}

/// A server's `max_connections`; `None` is no limit.
pub(super) fn validate_max_connections(
    path: &str,
    value: Option<i64>,
    problems: &mut Problems,
) -> Option<u32> {
    value.map(|n| problems.integer(path, Some(n), (1, MAX_COUNT), 1) as u32)
}

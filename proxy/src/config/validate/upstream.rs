//! The `[upstreams.NAME]` tables: strategy, servers and their weights, timeouts, retries and the
//! active health check.

use super::check::Check;
use super::traffic::{validate_max_connections, validate_queue, validate_slow_start};
use crate::balance::Strategy;
use crate::config::file::{FileHealthCheck, FileUpstream};
use crate::config::units::DurationKind;
use crate::config::{HealthCheck, Server, Upstream};
use scalelab_common::problem::Problems;
use std::time::Duration;

/// Servers per group are tracked in 64-bit masks on the request path.
pub const MAX_SERVERS_PER_UPSTREAM: usize = 64;
const MAX_WEIGHT: i64 = 1000;

/// One group; `dir` is the config file's directory, which relative paths (the CA file) start
/// from.
pub(super) fn validate_upstream(
    name: &str,
    upstream: &FileUpstream,
    dir: &std::path::Path,
    problems: &mut Problems,
) -> Option<Upstream> {
    let base = format!("upstreams.{name}");
    let before = problems.len();
    let strategy = match upstream.strategy.as_deref() {
        None => Strategy::RoundRobin,
        Some(text) => Strategy::parse(text).unwrap_or_else(|| {
            problems.push(
                format!("{base}.strategy"),
                format!(
                    "unknown strategy {text:?}; valid: {}",
                    Strategy::NAMES.join(", ")
                ),
            );
            Strategy::RoundRobin
        }),
    };
    let srv = super::dns::srv_discovery(&base, upstream, problems);
    if upstream.servers.is_empty() && upstream.discovery.is_none() {
        problems.push(
            format!("{base}.servers"),
            "needs at least one server (or discovery = { srv = \"...\" })",
        );
    }
    if upstream.servers.len() > MAX_SERVERS_PER_UPSTREAM {
        problems.push(
            format!("{base}.servers"),
            format!("at most {MAX_SERVERS_PER_UPSTREAM} servers per upstream"),
        );
    }
    let mut servers: Vec<Server> = Vec::new();
    let mut names = Vec::new();
    for (i, server) in upstream.servers.iter().enumerate() {
        let path = format!("{base}.servers[{i}]");
        let weight = problems.integer(&format!("{path}.weight"), server.weight, (1, MAX_WEIGHT), 1);
        if server.name.is_some() {
            names.extend(super::dns::named_server(
                &base,
                i,
                server,
                weight as u32,
                problems,
            ));
            continue;
        }
        let Some(text) = server.addr.as_ref() else {
            problems.push(
                format!("{path}.addr"),
                "needs addr (IP:PORT), or name and port",
            );
            continue;
        };
        if server.port.is_some() {
            problems.push(
                format!("{path}.port"),
                "port goes with name; addr carries its own port",
            );
        }
        if let Some(addr) = problems.addr(&format!("{path}.addr"), text) {
            if servers.iter().any(|s| s.addr == addr) {
                problems.push(format!("{path}.addr"), format!("{addr} is listed twice"));
            }
            servers.push(Server {
                addr,
                weight: weight as u32,
                max_connections: validate_max_connections(
                    &format!("{path}.max_connections"),
                    server.max_connections,
                    problems,
                ),
                origin: None,
                priority: 0,
            });
        }
    }
    let health_check = upstream
        .health_check
        .as_ref()
        .map(|check| validate_health_check(&format!("{base}.health_check"), check, problems));
    let (protocol, tls) = super::transport::validate_transport(
        &base,
        upstream.protocol.as_deref(),
        upstream.tls.as_ref(),
        dir,
        problems,
    );
    let result = Upstream {
        name: name.to_string(),
        strategy,
        servers,
        dns: super::dns::sources(names, srv),
        connect_timeout: problems.duration(
            &format!("{base}.connect_timeout"),
            upstream.connect_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(1),
        ),
        read_timeout: problems.duration(
            &format!("{base}.read_timeout"),
            upstream.read_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(30),
        ),
        retries: problems.integer(&format!("{base}.retries"), upstream.retries, (0, 10), 2) as u32,
        fail_timeout: problems.duration(
            &format!("{base}.fail_timeout"),
            upstream.fail_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(10),
        ),
        health_check,
        queue: validate_queue(&base, upstream.queue.as_ref(), problems),
        slow_start: validate_slow_start(&base, upstream.slow_start.as_ref(), problems),
        protocol,
        tls,
        balancing: super::balancing::validate_balancing(&base, strategy, upstream, problems),
    };
    (problems.len() == before).then_some(result)
}

fn validate_health_check(
    base: &str,
    check: &FileHealthCheck,
    problems: &mut Problems,
) -> HealthCheck {
    let path = check.path.clone().unwrap_or_else(|| "/health".to_string());
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.push(
            format!("{base}.path"),
            format!("{path:?} must start with '/' and contain no whitespace"),
        );
    }
    let interval = problems.duration(
        &format!("{base}.interval"),
        check.interval.as_ref(),
        DurationKind::Timeout,
        Duration::from_secs(2),
    );
    let timeout = problems.duration(
        &format!("{base}.timeout"),
        check.timeout.as_ref(),
        DurationKind::Timeout,
        Duration::from_secs(1),
    );
    HealthCheck {
        path,
        interval,
        timeout,
        healthy_threshold: problems.integer(
            &format!("{base}.healthy_threshold"),
            check.healthy_threshold,
            (1, 100),
            2,
        ) as u32,
        unhealthy_threshold: problems.integer(
            &format!("{base}.unhealthy_threshold"),
            check.unhealthy_threshold,
            (1, 100),
            3,
        ) as u32,
    }
}

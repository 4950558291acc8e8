//! `FileConfig` -> `Config`: every check runs and every failure is kept, so one `--check` run
//! shows the user all of them.

use super::file::{ByteSize, FileCache, FileConfig, FileHealthCheck, FileRouteCache, FileUpstream};
use super::key_template::KeyTemplate;
use super::units::{parse_bytes, parse_duration, DurationKind};
use super::{
    CacheSettings, Config, HealthCheck, ProxySettings, Route, RouteAuth, RouteCache, Server,
    TierSettings, Upstream,
};
use crate::balance::Strategy;
use http::Method;
use scalelab_common::problem::{Problem, Problems};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use toml::de::{DeArray, DeTable, DeValue};

/// Servers per group are tracked in 64-bit masks on the request path.
pub const MAX_SERVERS_PER_UPSTREAM: usize = 64;
const MAX_WEIGHT: i64 = 1000;

/// Checks of one value that record a problem and fall back to the default, so that validation
/// goes on and one run reports every problem.
trait Check {
    fn duration(
        &mut self,
        path: &str,
        value: Option<&String>,
        kind: DurationKind,
        default: Duration,
    ) -> Duration;
    fn integer(&mut self, path: &str, value: Option<i64>, range: (i64, i64), default: i64) -> i64;
    fn bytes(&mut self, path: &str, value: Option<&ByteSize>, default: usize) -> usize;
    fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr>;
}

impl Check for Problems {
    fn duration(
        &mut self,
        path: &str,
        value: Option<&String>,
        kind: DurationKind,
        default: Duration,
    ) -> Duration {
        let Some(text) = value else { return default };
        parse_duration(text, kind).unwrap_or_else(|message| {
            self.push(path, message);
            default
        })
    }

    fn integer(&mut self, path: &str, value: Option<i64>, range: (i64, i64), default: i64) -> i64 {
        match value {
            None => default,
            Some(n) if n >= range.0 && n <= range.1 => n,
            Some(n) => {
                self.push(
                    path,
                    format!("{n} is out of range {}..={}", range.0, range.1),
                );
                default
            }
        }
    }

    fn bytes(&mut self, path: &str, value: Option<&ByteSize>, default: usize) -> usize {
        match value {
            None => default,
            Some(ByteSize::Bytes(n)) if *n > 0 => *n as usize,
            Some(ByteSize::Bytes(n)) => {
                self.push(path, format!("{n} must be greater than zero"));
                default
            }
            Some(ByteSize::Text(text)) => match parse_bytes(text) {
                Ok(n) if n > 0 => n as usize,
                Ok(_) => {
                    self.push(path, "must be greater than zero");
                    default
                }
                Err(message) => {
                    self.push(path, message);
                    default
                }
            },
        }
    }

    fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.push(
                    path,
                    format!(
                        "invalid address {text:?}; expected IP:PORT such as \"127.0.0.1:5000\""
                    ),
                );
                None
            }
        }
    }
}

pub fn validate(file: FileConfig, base: &std::path::Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Problems::new();
    let proxy = validate_proxy(&file, &mut problems);
    let mut upstreams = BTreeMap::new();
    for (name, upstream) in &file.upstreams {
        if let Some(valid) = validate_upstream(name, upstream, &mut problems) {
            upstreams.insert(name.clone(), valid);
        }
    }
    let cache = file
        .cache
        .as_ref()
        .map(|cache| validate_cache(cache, &mut problems));
    let auth = file
        .auth
        .as_ref()
        .and_then(|auth| match scalelab_auth::validate(auth, base) {
            Ok(settings) => Some(super::AuthConfig {
                file: auth.clone(),
                verifier: std::sync::Arc::new(scalelab_auth::Verifier::new(settings)),
            }),
            Err(found) => {
                problems.extend(found);
                None
            }
        });
    let routes = validate_routes(&file, cache.is_some(), file.auth.is_some(), &mut problems);
    problems.into_result(Config {
        proxy,
        upstreams,
        routes,
        cache,
        auth,
    })
}

fn validate_proxy(file: &FileConfig, problems: &mut Problems) -> ProxySettings {
    let proxy = &file.proxy;
    let default_listen = vec!["0.0.0.0:8000".to_string()];
    let listen_text = proxy.listen.as_ref().unwrap_or(&default_listen);
    if listen_text.is_empty() {
        problems.push("proxy.listen", "needs at least one address");
    }
    let listen = listen_text
        .iter()
        .enumerate()
        .filter_map(|(i, text)| problems.addr(&format!("proxy.listen[{i}]"), text))
        .collect();
    let admin_listen = problems
        .addr(
            "proxy.admin_listen",
            proxy.admin_listen.as_deref().unwrap_or("127.0.0.1:9901"),
        )
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9901)));
    ProxySettings {
        listen,
        admin_listen,
        threads: problems.integer("proxy.threads", proxy.threads, (1, 256), 2) as usize,
        shutdown_timeout: problems.duration(
            "proxy.shutdown_timeout",
            proxy.shutdown_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(10),
        ),
        max_header_bytes: problems.integer(
            "proxy.max_header_bytes",
            proxy.max_header_bytes,
            (1024, 1024 * 1024),
            64 * 1024,
        ) as usize,
    }
}

fn validate_upstream(
    name: &str,
    upstream: &FileUpstream,
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
    if upstream.servers.is_empty() {
        problems.push(format!("{base}.servers"), "needs at least one server");
    }
    if upstream.servers.len() > MAX_SERVERS_PER_UPSTREAM {
        problems.push(
            format!("{base}.servers"),
            format!("at most {MAX_SERVERS_PER_UPSTREAM} servers per upstream"),
        );
    }
    let mut servers: Vec<Server> = Vec::new();
    for (i, server) in upstream.servers.iter().enumerate() {
        let path = format!("{base}.servers[{i}]");
        let weight = problems.integer(&format!("{path}.weight"), server.weight, (1, MAX_WEIGHT), 1);
        if let Some(addr) = problems.addr(&format!("{path}.addr"), &server.addr) {
            if servers.iter().any(|s| s.addr == addr) {
                problems.push(format!("{path}.addr"), format!("{addr} is listed twice"));
            }
            servers.push(Server {
                addr,
                weight: weight as u32,
            });
        }
    }
    let health_check = upstream
        .health_check
        .as_ref()
        .map(|check| validate_health_check(&format!("{base}.health_check"), check, problems));
    let result = Upstream {
        name: name.to_string(),
        strategy,
        servers,
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

fn validate_cache(cache: &FileCache, problems: &mut Problems) -> CacheSettings {
    if cache.tiers.is_empty() {
        problems.push("cache.tiers", "needs at least one [[cache.tiers]] table");
    }
    let mut tiers: Vec<TierSettings> = Vec::new();
    for (i, tier) in cache.tiers.iter().enumerate() {
        let base = format!("cache.tiers[{i}]");
        if tier.name.is_empty() || tiers.iter().any(|t| t.name == tier.name) {
            problems.push(
                format!("{base}.name"),
                format!("tier name {:?} must be unique and non-empty", tier.name),
            );
        }
        tiers.push(TierSettings {
            name: tier.name.clone(),
            max_entries: problems.integer(
                &format!("{base}.max_entries"),
                tier.max_entries,
                (1, 100_000_000),
                1000,
            ) as usize,
            max_bytes: problems.bytes(
                &format!("{base}.max_bytes"),
                tier.max_bytes.as_ref(),
                16 << 20,
            ),
            ttl: problems.duration(
                &format!("{base}.ttl"),
                tier.ttl.as_ref(),
                DurationKind::Ttl,
                Duration::from_secs(3600),
            ),
        });
    }
    let statuses = match &cache.cacheable_statuses {
        None => vec![200, 203, 301, 404],
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, &code)| {
                problems.integer(
                    &format!("cache.cacheable_statuses[{i}]"),
                    Some(code),
                    (100, 599),
                    200,
                ) as u16
            })
            .collect(),
    };
    CacheSettings {
        max_object_bytes: problems.bytes(
            "cache.max_object_bytes",
            cache.max_object_bytes.as_ref(),
            1 << 20,
        ),
        cacheable_statuses: statuses,
        lock_timeout: problems.duration(
            "cache.lock_timeout",
            cache.lock_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(5),
        ),
        tiers,
        promotion_hits: problems.integer(
            "cache.promotion.hits",
            cache.promotion.as_ref().and_then(|p| p.hits),
            (1, 1_000_000),
            2,
        ) as u32,
    }
}

fn validate_route_cache(
    base: &str,
    cache: &FileRouteCache,
    has_tiers: bool,
    problems: &mut Problems,
) -> Option<RouteCache> {
    if cache.enabled == Some(false) {
        return None;
    }
    if !has_tiers {
        problems.push(
            format!("{base}.cache"),
            "caching needs a [cache] table with tiers",
        );
    }
    let key = match &cache.key {
        None => KeyTemplate::default(),
        Some(text) => KeyTemplate::parse(text).unwrap_or_else(|message| {
            problems.push(format!("{base}.cache.key"), message);
            KeyTemplate::default()
        }),
    };
    Some(RouteCache {
        key,
        default_ttl: problems.duration(
            &format!("{base}.cache.default_ttl"),
            cache.default_ttl.as_ref(),
            DurationKind::Ttl,
            Duration::from_secs(300),
        ),
        stale_while_revalidate: problems.duration(
            &format!("{base}.cache.stale_while_revalidate"),
            cache.stale_while_revalidate.as_ref(),
            DurationKind::Window,
            Duration::ZERO,
        ),
        stale_if_error: problems.duration(
            &format!("{base}.cache.stale_if_error"),
            cache.stale_if_error.as_ref(),
            DurationKind::Window,
            Duration::ZERO,
        ),
    })
}

fn validate_routes(
    file: &FileConfig,
    has_cache: bool,
    has_auth: bool,
    problems: &mut Problems,
) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    for (i, route) in file.routes.iter().enumerate() {
        let base = format!("routes[{i}]");
        let name = route.name.clone().unwrap_or_else(|| format!("route{i}"));
        if routes.iter().any(|r| r.name == name) {
            problems.push(
                format!("{base}.name"),
                format!("route name {name:?} is used twice"),
            );
        }
        if !route.path.starts_with('/') {
            problems.push(
                format!("{base}.path"),
                format!("{:?} must start with '/'", route.path),
            );
        }
        if !file.upstreams.contains_key(&route.upstream) {
            let known: Vec<&str> = file.upstreams.keys().map(String::as_str).collect();
            problems.push(
                format!("{base}.upstream"),
                format!(
                    "unknown upstream {:?}; defined: [{}]",
                    route.upstream,
                    known.join(", ")
                ),
            );
        }
        let methods = route.methods.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(j, text)| {
                    let upper = text.to_ascii_uppercase();
                    match Method::from_bytes(upper.as_bytes()) {
                        Ok(method) => Some(method),
                        Err(_) => {
                            problems.push(
                                format!("{base}.methods[{j}]"),
                                format!("invalid method {text:?}"),
                            );
                            None
                        }
                    }
                })
                .collect()
        });
        let host = route.host.as_ref().map(|h| h.to_ascii_lowercase());
        if routes
            .iter()
            .any(|r| r.path == route.path && r.host == host && r.methods == methods)
        {
            problems.push(
                format!("{base}.path"),
                format!(
                    "another route already matches {:?} with the same host and methods",
                    route.path
                ),
            );
        }
        let cache = route
            .cache
            .as_ref()
            .and_then(|cache| validate_route_cache(&base, cache, has_cache, problems));
        let auth = match route.auth.as_deref() {
            None | Some("none") => RouteAuth::None,
            Some("jwt") => {
                if !has_auth {
                    problems.push(format!("{base}.auth"), "\"jwt\" needs an [auth] table");
                }
                RouteAuth::Jwt
            }
            Some(other) => {
                problems.push(
                    format!("{base}.auth"),
                    format!("unknown auth {other:?}; valid: \"jwt\", \"none\""),
                );
                RouteAuth::None
            }
        };
        routes.push(Route {
            name,
            auth,
            strip_prefix: route.strip_prefix.unwrap_or(false),
            path: route.path.clone(),
            host,
            methods,
            upstream: route.upstream.clone(),
            cache,
        });
    }
    routes
}

/// Turns a TOML syntax or type error into a problem with a line number.
pub fn parse_problem(source: &str, error: &toml::de::Error) -> Problem {
    let line = error.span().map(|span| line_of(source, span.start));
    let path = error
        .message()
        .lines()
        .next()
        .map(|_| "(file)".to_string())
        .unwrap_or_default();
    Problem {
        path,
        line,
        message: error.message().trim().to_string(),
    }
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// Finds the line of a TOML path such as `upstreams.api.servers[1].addr`, or of its nearest
/// existing parent when the key itself is missing.
pub fn locate(source: &str, path: &str) -> Option<usize> {
    let root = DeTable::parse(source).ok()?;
    let mut span = root.span();
    let mut table: Option<&DeTable> = Some(root.get_ref());
    let mut array: Option<&DeArray> = None;
    for segment in split_path(path) {
        let value = match segment {
            Segment::Key(key) => table?
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == key)
                .map(|(k, v)| (k.span(), v)),
            Segment::Index(index) => array?.get(index).map(|v| (v.span(), v)),
        };
        let Some((key_span, value)) = value else {
            break;
        };
        span = key_span;
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    Some(line_of(source, span.start))
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        for index in rest.split('[') {
            if let Ok(n) = index.trim_end_matches(']').parse() {
                segments.push(Segment::Index(n));
            }
        }
    }
    segments
}

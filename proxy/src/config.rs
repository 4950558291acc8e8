//! The validated configuration: `load` reads `config.toml` and `parse` checks every section,
//! returning either a `Config` that cannot be invalid or every problem at once, each with its
//! TOML path and line.

pub mod access;
mod access_log;
pub mod admin;
pub mod balancing;
mod client_limits;
pub mod compress;
pub mod dns;
pub mod edge;
mod file;
pub mod key_template;
pub mod mirror;
mod overrides;
pub mod split;
mod startup;
mod summary;
pub mod tls;
pub mod tracing;
pub mod traffic;
pub mod transport;
pub mod units;
mod validate;

#[cfg(test)]
mod tests;

use crate::balance::Strategy;
use http::Method;
use scalelab_common::problem::Problem;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use access_log::{AccessLogFormat, AccessLogSettings};
pub use client_limits::ClientLimits;
pub use file::FileConfig;
pub use overrides::{set_overrides, OverrideError, Overrides};
pub use startup::{Pending, Startup};
pub use traffic::{LimitKey, LimitStore, QueueSettings, Rate, RateLimit, TrustedProxies};
pub use validate::MAX_SERVERS_PER_UPSTREAM;

/// A whole, valid configuration. Built only by `parse`, so holding one means every
/// cross-reference (route to upstream) resolves and every value is in range.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    proxy: ProxySettings,
    upstreams: BTreeMap<String, Upstream>,
    routes: Vec<Route>,
    /// `None` when the file has no `[cache]` table: nothing is cached.
    cache: Option<CacheSettings>,
    /// `None` when the file has no `[auth]` table: no route may require a token.
    auth: Option<AuthConfig>,
    /// `None` when the file has no `[redis]` table: nothing is shared with other proxies.
    redis: Option<RedisSettings>,
    /// `None` when the file has no `[tls]` table (and the command line adds none).
    tls: Option<tls::TlsConfig>,
    /// The `[admin]` table: the admin API's token (none: open, on loopback only).
    admin: admin::AdminSettings,
    /// The `[dns]` table: how servers given by name are resolved (defaults without one).
    dns: dns::DnsSettings,
    /// `None` when the file has no `[tracing]` table: `traceparent` passes through untouched.
    tracing: Option<tracing::TracingSettings>,
}

/// Read access to every section. The fields are private to `config`, so only `parse` (through
/// `validate`) builds a `Config` and only `config` changes one (`with_startup`): the compiler,
/// not a convention, keeps an unvalidated config out of the proxy.
impl Config {
    pub fn proxy(&self) -> &ProxySettings {
        &self.proxy
    }

    pub fn upstreams(&self) -> &BTreeMap<String, Upstream> {
        &self.upstreams
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn cache(&self) -> Option<&CacheSettings> {
        self.cache.as_ref()
    }

    pub fn auth(&self) -> Option<&AuthConfig> {
        self.auth.as_ref()
    }

    pub fn redis(&self) -> Option<&RedisSettings> {
        self.redis.as_ref()
    }

    pub fn tls(&self) -> Option<&tls::TlsConfig> {
        self.tls.as_ref()
    }

    pub fn admin(&self) -> &admin::AdminSettings {
        &self.admin
    }

    pub fn dns(&self) -> &dns::DnsSettings {
        &self.dns
    }

    pub fn tracing(&self) -> Option<&tracing::TracingSettings> {
        self.tracing.as_ref()
    }
}

/// The `[redis]` table: where a fleet of proxies keeps its shared cache tier.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RedisSettings {
    /// `redis://host:port/db`, or `rediss://` for TLS; a cluster's first seed node.
    pub url: String,
    /// A Redis Cluster's seed nodes (`url` as a list); empty for one server.
    pub cluster: Vec<String>,
    /// The CA file a `rediss://` server's certificate is checked against (else the system's).
    pub ca: Option<std::path::PathBuf>,
    /// Prepended to every key, so several labs can share one Redis.
    pub key_prefix: String,
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub command_timeout: Duration,
}

/// Where a cache tier keeps its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TierKind {
    /// In this process (CLOCK eviction, promotion and demotion).
    #[default]
    Memory,
    /// In the `[redis]` server, shared by every proxy that uses it; only the last tier.
    Redis,
}

/// The `[auth]` table and the verifier built from it.
#[derive(Clone)]
pub struct AuthConfig {
    pub file: scalelab_auth::AuthFileConfig,
    pub verifier: std::sync::Arc<scalelab_auth::Verifier>,
}

impl PartialEq for AuthConfig {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// The effective auth settings, never the key material.
impl serde::Serialize for AuthConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let settings = self.verifier.settings();
        let algorithms: Vec<String> = settings
            .algorithms()
            .iter()
            .map(|a| format!("{a:?}"))
            .collect();
        serde_json::json!({
            "algorithms": algorithms,
            "issuer": settings.issuer(),
            "audience": settings.audience(),
            "required_claims": settings.required_claims(),
            "leeway": humantime::format_duration(settings.leeway()).to_string(),
            "max_token_bytes": settings.max_token_bytes(),
            "secret": "(redacted)",
        })
        .serialize(serializer)
    }
}

/// Whether a route requires a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    None,
    Jwt,
    /// `basic = { users_file, realm }` (see `config::access`).
    Basic,
    /// `forward = { upstream, path, ... }`.
    Forward,
}

/// The `[cache]` table: shared tiers for every route that enables caching.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CacheSettings {
    pub max_object_bytes: usize,
    pub cacheable_statuses: Vec<u16>,
    /// How long a request waits for another one filling the same key before going itself.
    #[serde(with = "humantime_serde_compat")]
    pub lock_timeout: Duration,
    /// Hottest first: `tiers[0]` is L1; new objects enter the last one.
    pub tiers: Vec<TierSettings>,
    pub promotion_hits: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TierSettings {
    pub name: String,
    pub kind: TierKind,
    pub max_entries: usize,
    pub max_bytes: usize,
    #[serde(with = "humantime_serde_compat")]
    pub ttl: Duration,
}

/// A route's `cache = { ... }` settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RouteCache {
    pub key: key_template::KeyTemplate,
    #[serde(with = "humantime_serde_compat")]
    pub default_ttl: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub stale_while_revalidate: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub stale_if_error: Duration,
}

/// The `[proxy]` table. Its restart-only part is `Startup`; the rest is applied by a reload.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProxySettings {
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners, served with `[[tls.certificates]]`; empty for none.
    pub tls_listen: Vec<SocketAddr>,
    pub admin_listen: SocketAddr,
    pub threads: usize,
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_timeout: Duration,
    pub max_header_bytes: usize,
    /// Record per-request metrics (rate, errors, latency per route and server). On by default;
    /// off only to measure what recording costs.
    pub request_metrics: bool,
    /// Peers whose `X-Forwarded-For` names the client for `key = "client_ip"` rate limits.
    pub trusted_proxies: TrustedProxies,
    /// Where and how the one line per request is written.
    pub access_log: AccessLogSettings,
    /// The plain listeners also accept HTTP/2 with prior knowledge (h2c), beside HTTP/1.1.
    pub h2c: bool,
    /// Timeouts, connection and body limits for clients (`[proxy]` keys of the same names).
    #[serde(flatten)]
    pub client: ClientLimits,
    /// Pass a client's `Upgrade: h2c` to the upstream; by default it is removed and the request
    /// is served as HTTP/1.1 (the proxy itself never switches protocols).
    pub forward_h2c_upgrade: bool,
    /// How long an upgraded connection may carry nothing either way before it is closed
    /// (HAProxy's `timeout tunnel`); it replaces the client and upstream read timeouts once a
    /// server switched protocols.
    #[serde(with = "humantime_serde_compat")]
    pub tunnel_timeout: Duration,
    /// `https_redirect`, the proxy-wide header rules and `forwarded` (live).
    #[serde(flatten)]
    pub edge: edge::ProxyEdge,
    /// Who gets the diagnostic response headers (`[proxy] debug_headers`, `debug_trusted`).
    pub debug_headers: admin::DebugSettings,
    /// `[proxy] compress`, the default of every route (`None`: off).
    pub compress: Option<compress::CompressSettings>,
    /// `allow`/`deny` lists for every route, checked before the route's own.
    #[serde(flatten)]
    pub access: access::IpRules,
}

/// One `[upstreams.NAME]` group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Upstream {
    pub name: String,
    pub strategy: Strategy,
    /// The servers given by address; a snapshot adds those resolved from `dns`.
    pub servers: Vec<Server>,
    /// Servers given by name, and SRV discovery (`discovery`).
    #[serde(skip_serializing_if = "dns::DnsSources::is_empty")]
    pub dns: dns::DnsSources,
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub read_timeout: Duration,
    pub retries: u32,
    /// How long a server stays out after a passive failure when no active check would bring it
    /// back (nginx's `fail_timeout`).
    #[serde(with = "humantime_serde_compat")]
    pub fail_timeout: Duration,
    pub health_check: Option<HealthCheck>,
    /// Where requests wait when every candidate is at its `max_connections`.
    pub queue: QueueSettings,
    /// How long a recovered or added server takes to ramp from 10% to 100% of its weight.
    #[serde(serialize_with = "serialize_optional_duration")]
    pub slow_start: Option<Duration>,
    /// The HTTP version spoken to the servers.
    pub protocol: transport::UpstreamProtocol,
    /// TLS to the servers; `None` is clear text.
    pub tls: Option<transport::UpstreamTls>,
    /// The EWMA decay, consistent hashing's key and cookie affinity.
    pub balancing: balancing::Balancing,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Server {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Requests in flight at most; `None` is no limit.
    pub max_connections: Option<u32>,
    /// Where a resolved server came from (`discovery`); `None` for an address in the file.
    #[serde(skip)]
    pub origin: Option<std::sync::Arc<dns::Origin>>,
    /// An SRV record's priority: only the lowest available one takes traffic; 0 otherwise.
    #[serde(skip)]
    pub priority: u16,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthCheck {
    pub path: String,
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// One `[[routes]]` entry. Matching is by host (exact, then wildcard, then none), then the
/// longest `path` prefix, then `methods` (see `routing`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Route {
    pub name: String,
    pub path: String,
    /// Lowercase names, exact or `*.domain`; empty: any host.
    pub hosts: Vec<String>,
    #[serde(serialize_with = "serialize_methods")]
    pub methods: Option<Vec<Method>>,
    /// `None` when the route answers by itself (`redirect` or `respond`); for a split, its
    /// first group.
    pub upstream: Option<String>,
    /// Several groups with weights (a canary); `None` when `upstream` names one.
    pub split: Option<split::Split>,
    /// A copy of some of the route's requests to a shadow group.
    pub mirror: Option<mirror::Mirror>,
    pub redirect: Option<edge::Redirect>,
    pub respond: Option<edge::Respond>,
    /// Put in front of the path the upstream sees, after `strip_prefix` and `rewrite`.
    pub add_prefix: Option<String>,
    pub rewrite: Option<edge::PathRewrite>,
    /// Applied after `[proxy]`'s rules.
    pub request_headers: edge::HeaderRules,
    pub response_headers: edge::HeaderRules,
    /// Overrides `[proxy] https_redirect` for this route.
    pub https_redirect: Option<bool>,
    /// `None` when the route does not cache.
    pub cache: Option<RouteCache>,
    pub auth: RouteAuth,
    /// Remove `path` from the front of the request path before forwarding.
    pub strip_prefix: bool,
    /// Checked in order after auth and before the cache; every one must allow the request.
    pub rate_limits: Vec<RateLimit>,
    /// This route's request body limit, instead of `[proxy] max_body_bytes`.
    pub max_body_bytes: Option<u64>,
    /// Pass protocol upgrades (WebSocket and others) to the upstream; `false` refuses them (400).
    pub upgrades: bool,
    /// Response compression, merged with `[proxy] compress` (`None`: off).
    pub compress: Option<compress::CompressSettings>,
    /// IP lists, CORS, basic and forward auth settings, `claims_to_headers`.
    #[serde(flatten)]
    pub access: access::RouteAccess,
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {} problem(s):\n{}", problems.len(), render_problems(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates the config file at `path`. The text is returned too, so that the running
/// config's hash describes exactly the bytes that were parsed.
///
/// # Errors
/// `ConfigError::Read` when the file cannot be read, `ConfigError::Invalid` with every problem
/// found otherwise.
pub fn load(path: &Path) -> Result<(Config, String), ConfigError> {
    let text = read(path)?;
    let config = parse(path, &text)?;
    Ok((config, text))
}

/// Reads the config file at `path` without validating it.
///
/// # Errors
/// `ConfigError::Read` when the file cannot be read.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Validates `text`, read from the config file at `path`; relative paths in it (key files) start
/// at that file's directory. This is the one way to build a `Config`: start-up, `--check` and
/// every reload go through it, and it applies the command line's `Overrides` to each.
///
/// # Errors
/// `ConfigError::Invalid` with every problem found, each with its TOML path and line.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut config = parse_in(text, base).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })?;
    overrides::apply_set(&mut config);
    Ok(config)
}

/// Parses and validates TOML text whose relative paths start at `base`: every unknown key and
/// wrong type first, then the semantic checks on whatever decoded.
fn parse_in(source: &str, base: &Path) -> Result<Config, Vec<Problem>> {
    let (file, mut problems) = validate::decode(source);
    let Some(mut file) = file else {
        return Err(problems);
    };
    // TLS overrides name files, so they are validated and loaded like the file's own.
    overrides::apply_set_to_file(&mut file);
    match validate::validate(file, base) {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(_) => Err(problems),
        Err(semantic) => {
            // A key the decoding set aside is already reported; the checks would only add
            // that it is missing.
            let semantic: Vec<Problem> = semantic
                .into_iter()
                .filter(|problem| !problems.iter().any(|p| p.path == problem.path))
                .map(|mut problem| {
                    problem.line = validate::locate(source, &problem.path);
                    problem
                })
                .collect();
            problems.extend(semantic);
            Err(problems)
        }
    }
}

fn serialize_methods<S: serde::Serializer>(
    methods: &Option<Vec<Method>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let names: Option<Vec<&str>> = methods
        .as_ref()
        .map(|list| list.iter().map(Method::as_str).collect());
    serde::Serialize::serialize(&names, serializer)
}

fn serialize_optional_duration<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => humantime_serde_compat::serialize(duration, serializer),
        None => serializer.serialize_none(),
    }
}

/// Durations are shown back to users in the same human form they write them in.
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }
}

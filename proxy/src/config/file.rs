//! The serde mirror of `config.toml`: one struct per TOML table, unknown keys rejected.
//!
//! Nothing here is validated beyond TOML types; durations and addresses stay strings so that
//! `validate` can report every bad value at once, each with its TOML path.

mod access;
mod admin;
mod balancing;
mod compress;
mod dns;
mod edge;
mod split;
mod tls;
mod tracing;
mod traffic;
mod transport;

pub use access::{FileBasic, FileClaimsToHeaders, FileCors, FileForward};
pub use admin::{FileAdmin, FileSecret};
pub use balancing::{FileCircuit, FileErrorRate, FileHash, FileOutlier, FileSticky};
pub use compress::{FileCompress, FileLevel};
pub use dns::{FileDiscovery, FileDns};
pub use edge::{FileHeaderRules, FileHosts, FileRedirect, FileRespond, FileRewrite};
pub use split::{FileMatch, FileMirror, FileRouteUpstream, FileSplitTarget};
pub use tls::{FileCertificate, FileTls};
pub use tracing::FileTracing;
pub use traffic::{FileQueue, FileRateLimit};
pub use transport::FileUpstreamTls;

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub proxy: FileProxy,
    #[serde(default)]
    pub upstreams: BTreeMap<String, FileUpstream>,
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    pub cache: Option<FileCache>,
    /// The `[redis]` table: the shared store of a fleet of proxies (the last cache tier).
    pub redis: Option<FileRedis>,
    /// The `[auth]` table, validated by the shared `scalelab-auth` crate (the gateway reads the
    /// same table with the same code).
    pub auth: Option<scalelab_auth::AuthFileConfig>,
    /// The `[tls]` table: certificates for `[proxy] tls_listen`.
    pub tls: Option<FileTls>,
    /// The `[admin]` table: the admin API's token.
    pub admin: Option<FileAdmin>,
    /// The `[dns]` table: resolvers and refresh times of servers given by name (`discovery`).
    pub dns: Option<FileDns>,
    /// The `[tracing]` table: trace context and the export of spans (OTLP).
    pub tracing: Option<FileTracing>,
    /// The `[lab]` table belongs to `scalelab up` (which processes to start); the proxy keeps it
    /// opaque so one file can describe the whole lab.
    #[serde(default)]
    pub lab: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProxy {
    pub listen: Option<Vec<String>>,
    pub tls_listen: Option<Vec<String>>,
    pub admin_listen: Option<String>,
    pub threads: Option<i64>,
    pub shutdown_timeout: Option<String>,
    pub max_header_bytes: Option<i64>,
    pub request_metrics: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub access_log: Option<FileAccessLog>,
    pub client_header_timeout: Option<String>,
    pub client_body_timeout: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub max_connections: Option<i64>,
    pub max_body_bytes: Option<ByteSize>,
    pub forward_h2c_upgrade: Option<bool>,
    pub tunnel_timeout: Option<String>,
    pub h2c: Option<bool>,
    /// Answer every plain-HTTP request with 308 to the same URL on the HTTPS listener.
    pub https_redirect: Option<bool>,
    /// Path prefixes `https_redirect` leaves alone (ACME's `/.well-known/acme-challenge/`).
    pub https_redirect_except: Option<Vec<String>>,
    pub request_headers: Option<FileHeaderRules>,
    pub response_headers: Option<FileHeaderRules>,
    /// Also send RFC 7239's `Forwarded` header upstream, beside `X-Forwarded-*`.
    pub forwarded: Option<bool>,
    pub debug_headers: Option<String>,
    pub debug_trusted: Option<Vec<String>>,
    /// Response compression for every route (see `file/compress`).
    pub compress: Option<FileCompress>,
    /// IP lists for every route (`file/access`).
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub allow_file: Option<String>,
    pub deny_file: Option<String>,
}

/// `[proxy] access_log = { path, format, enabled }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccessLog {
    pub path: Option<String>,
    pub format: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub strategy: Option<String>,
    #[serde(default)]
    pub servers: Vec<FileServer>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub retries: Option<i64>,
    pub fail_timeout: Option<String>,
    pub health_check: Option<FileHealthCheck>,
    pub queue: Option<FileQueue>,
    pub slow_start: Option<String>,
    pub protocol: Option<String>,
    pub tls: Option<FileUpstreamTls>,
    /// `strategy = "ewma"`'s decay time (see `file/balancing`).
    pub ewma_decay: Option<String>,
    pub hash: Option<FileHash>,
    pub sticky: Option<FileSticky>,
    pub outlier: Option<FileOutlier>,
    pub circuit: Option<FileCircuit>,
    /// The whole group from SRV records (`discovery`).
    pub discovery: Option<FileDiscovery>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    /// `IP:PORT`; or `name` and `port`, re-resolved live (`discovery`).
    pub addr: Option<String>,
    pub name: Option<String>,
    pub port: Option<i64>,
    pub weight: Option<i64>,
    pub max_connections: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealthCheck {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub name: Option<String>,
    pub path: String,
    pub host: Option<FileHosts>,
    pub methods: Option<Vec<String>>,
    /// Required unless the route answers by itself (`redirect` or `respond`): one group, or
    /// a weighted list of groups (a canary split, `file/split`).
    pub upstream: Option<FileRouteUpstream>,
    /// What makes a split sticky (`"header.X-User"`, `"cookie.NAME"`, ...); none: per request.
    pub split_key: Option<String>,
    /// A copy of some requests to a shadow group (`file/split`).
    pub mirror: Option<FileMirror>,
    pub redirect: Option<FileRedirect>,
    pub respond: Option<FileRespond>,
    pub add_prefix: Option<String>,
    pub rewrite: Option<FileRewrite>,
    pub request_headers: Option<FileHeaderRules>,
    pub response_headers: Option<FileHeaderRules>,
    pub https_redirect: Option<bool>,
    pub cache: Option<FileRouteCache>,
    pub auth: Option<String>,
    pub strip_prefix: Option<bool>,
    pub rate_limits: Option<Vec<FileRateLimit>>,
    pub max_body_bytes: Option<ByteSize>,
    pub upgrades: Option<bool>,
    /// This route's compression keys, over `[proxy]`'s.
    pub compress: Option<FileCompress>,
    /// The access gates (`file/access`).
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub allow_file: Option<String>,
    pub deny_file: Option<String>,
    pub basic: Option<FileBasic>,
    pub forward: Option<FileForward>,
    pub cors: Option<FileCors>,
    pub claims_to_headers: Option<FileClaimsToHeaders>,
    pub forward_credentials: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCache {
    pub max_object_bytes: Option<ByteSize>,
    pub cacheable_statuses: Option<Vec<i64>>,
    pub lock_timeout: Option<String>,
    #[serde(default)]
    pub tiers: Vec<FileTier>,
    pub promotion: Option<FilePromotion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTier {
    pub name: String,
    pub kind: Option<String>,
    pub max_entries: Option<i64>,
    pub max_bytes: Option<ByteSize>,
    pub ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePromotion {
    pub hits: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRouteCache {
    pub enabled: Option<bool>,
    pub key: Option<String>,
    pub default_ttl: Option<String>,
    pub stale_while_revalidate: Option<String>,
    pub stale_if_error: Option<String>,
}

/// A size written as a number of bytes or a string such as "16MiB".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRedis {
    pub url: RedisUrls,
    pub key_prefix: Option<String>,
    pub connect_timeout: Option<String>,
    pub command_timeout: Option<String>,
    /// A PEM file of the CA that signed a `rediss://` server's certificate.
    pub ca: Option<String>,
}

/// `[redis] url`: one server, or a list of a Redis Cluster's seed nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RedisUrls {
    One(String),
    Seeds(Vec<String>),
}

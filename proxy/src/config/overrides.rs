//! Command-line overrides of the config file, so several proxies can share one file: each gets
//! its own listeners and all of them the same shared cache. `main` sets them once with
//! [`set_overrides`]; [`super::parse`] applies them to every `Config` it builds (start-up,
//! `--check` and every reload), so a reload never sees them as a restart-required change.

use super::file::{FileCertificate, FileConfig, FileRedis, FileTls, FileTracing, RedisUrls};
use super::{Config, RedisSettings, TierKind};
use scalelab_common::problem::{Problem, Problems};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What the command line says instead of the file. Empty fields leave the file's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Replaces `[proxy] listen` when not empty.
    pub listen: Vec<SocketAddr>,
    /// Replaces `[proxy] admin_listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `--shared-cache-url`: the `[redis]` table to use when the file has none (the file's own
    /// table only takes its url).
    pub shared_cache: Option<RedisSettings>,
    /// Replaces `[proxy] tls_listen` when not empty.
    pub tls_listen: Vec<SocketAddr>,
    /// `--tls-cert` and `--tls-key`: replaces `[[tls.certificates]]` with this one pair, for
    /// `localhost`, checked and watched like the file's own.
    pub tls_certificate: Option<(PathBuf, PathBuf)>,
    /// `--otlp-endpoint`: replaces `[tracing] otlp_endpoint` (adding the table, with its
    /// defaults, when the file has none), so `scalelab up --observe` can point every proxy of
    /// the lab at its own receiver without rewriting the user's file.
    pub otlp_endpoint: Option<String>,
}

/// Why an override value cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct OverrideError(Vec<Problem>);

impl Overrides {
    /// Overrides with the shared cache at `url`, checked like `[redis] url` and with the
    /// `[redis]` table's defaults for everything else.
    ///
    /// # Errors
    /// `OverrideError` when `url` is not a Redis URL.
    pub fn with_shared_cache_url(mut self, url: &str) -> Result<Overrides, OverrideError> {
        let mut problems = Problems::new();
        let file = FileRedis {
            url: RedisUrls::One(url.to_owned()),
            key_prefix: None,
            connect_timeout: None,
            command_timeout: None,
            ca: None,
        };
        let settings =
            super::validate::redis_settings(&file, std::path::Path::new("."), &mut problems);
        self.shared_cache = Some(problems.into_result(settings).map_err(OverrideError)?);
        Ok(self)
    }

    /// Writes the overrides into `config`. With a shared cache URL, a file's `[redis]` table
    /// keeps its prefix and timeouts, and the last `[[cache.tiers]]` becomes the shared tier
    /// (the only one that may be `kind = "redis"`); a file without `[cache]` caches nothing still.
    pub fn apply(&self, config: &mut Config) {
        if !self.listen.is_empty() {
            config.proxy.listen.clone_from(&self.listen);
        }
        if let Some(admin) = self.admin_listen {
            config.proxy.admin_listen = admin;
        }
        if let Some(shared) = &self.shared_cache {
            match &mut config.redis {
                Some(redis) => {
                    // The command line's one server replaces the file's server or cluster.
                    redis.url.clone_from(&shared.url);
                    redis.cluster.clone_from(&shared.cluster);
                }
                None => config.redis = Some(shared.clone()),
            }
            if let Some(last) = config
                .cache
                .as_mut()
                .and_then(|cache| cache.tiers.last_mut())
            {
                last.kind = TierKind::Redis;
            }
        }
    }

    /// Writes the TLS overrides, the admin address and the OTLP endpoint into the file's tables
    /// before validation, so their files are read and checked like the file's own (and named by
    /// the same TOML paths), the admin listener's need for a token is judged on its real
    /// address, and a bad endpoint is the same problem as a bad `[tracing] otlp_endpoint`.
    pub fn apply_to_file(&self, file: &mut FileConfig) {
        if let Some(endpoint) = &self.otlp_endpoint {
            file.tracing
                .get_or_insert_with(FileTracing::default)
                .otlp_endpoint = Some(endpoint.clone());
        }
        if let Some(admin) = self.admin_listen {
            file.proxy.admin_listen = Some(admin.to_string());
        }
        if !self.tls_listen.is_empty() {
            file.proxy.tls_listen = Some(self.tls_listen.iter().map(ToString::to_string).collect());
        }
        if let Some((cert, key)) = &self.tls_certificate {
            let tls = file.tls.get_or_insert_with(FileTls::default);
            tls.certificates = vec![FileCertificate {
                cert: cert.display().to_string(),
                key: key.display().to_string(),
                server_names: vec!["localhost".to_string()],
            }];
        }
    }
}

static OVERRIDES: OnceLock<Overrides> = OnceLock::new();

/// Sets the overrides every later [`super::parse`] applies. Only the first call counts: the
/// command line is read once per process.
pub fn set_overrides(overrides: Overrides) {
    let _ = OVERRIDES.set(overrides);
}

/// Applies the overrides set by `main`, if any.
pub(super) fn apply_set(config: &mut Config) {
    if let Some(overrides) = OVERRIDES.get() {
        overrides.apply(config);
    }
}

/// Applies the TLS part of the overrides set by `main`, if any, to the file's tables.
pub(super) fn apply_set_to_file(file: &mut FileConfig) {
    if let Some(overrides) = OVERRIDES.get() {
        overrides.apply_to_file(file);
    }
}

#[cfg(test)]
#[path = "overrides/tests.rs"]
mod tests;

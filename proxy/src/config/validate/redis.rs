//! The `[redis]` table: one server (`url = "redis://..."` or `"rediss://..."` for TLS) or the
//! seed nodes of a Redis Cluster (`url = ["redis://a:7000", "redis://b:7001"]`), the key prefix,
//! the timeouts, and `ca`, a PEM file of the private CA a `rediss://` server's certificate is
//! checked against (without it, the system's roots).

use super::check::Check;
use crate::config::file::{FileRedis, RedisUrls};
use crate::config::units::DurationKind;
use crate::config::RedisSettings;
use scalelab_common::problem::Problems;
use std::path::Path;
use std::time::Duration;

/// The first line of a PEM certificate.
const PEM_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";

pub(in crate::config) fn validate_redis(
    redis: &FileRedis,
    base: &Path,
    problems: &mut Problems,
) -> RedisSettings {
    let (urls, cluster) = match &redis.url {
        RedisUrls::One(url) => (vec![url.clone()], false),
        RedisUrls::Seeds(urls) => (urls.clone(), true),
    };
    if urls.is_empty() {
        problems.push(
            "redis.url",
            "a Redis Cluster needs at least one seed node, like [\"redis://10.0.0.1:7000\"]",
        );
    }
    for url in &urls {
        let parsed = (url.starts_with("redis://") || url.starts_with("rediss://"))
            .then(|| redis::Client::open(url.as_str()).ok())
            .flatten();
        if parsed.is_none() {
            problems.push(
                "redis.url",
                format!(
                    "invalid Redis URL {url:?}: write it like \"redis://127.0.0.1:6379/0\" \
                     (\"rediss://\" for TLS)"
                ),
            );
        }
    }
    let tls = urls.iter().any(|url| url.starts_with("rediss://"));
    if tls && !urls.iter().all(|url| url.starts_with("rediss://")) {
        problems.push(
            "redis.url",
            "the seed nodes mix redis:// and rediss://: a cluster is all TLS or none",
        );
    }
    let ca = redis.ca.as_ref().map(|ca| base.join(ca));
    if let Some(path) = &ca {
        if !tls {
            problems.push("redis.ca", "a CA file only applies to rediss:// (TLS) URLs");
        }
        match std::fs::read_to_string(path) {
            Ok(text) if text.contains(PEM_CERTIFICATE) => {}
            Ok(_) => problems.push(
                "redis.ca",
                format!("{} holds no PEM certificate", path.display()),
            ),
            Err(error) => {
                problems.push(
                    "redis.ca",
                    format!("cannot read {}: {error}", path.display()),
                );
            }
        }
    }
    RedisSettings {
        url: urls.first().cloned().unwrap_or_default(),
        cluster: if cluster { urls } else { Vec::new() },
        ca,
        key_prefix: redis
            .key_prefix
            .clone()
            .unwrap_or_else(|| "scalelab:".to_owned()),
        connect_timeout: problems.duration(
            "redis.connect_timeout",
            redis.connect_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_millis(200),
        ),
        command_timeout: problems.duration(
            "redis.command_timeout",
            redis.command_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_millis(50),
        ),
    }
}

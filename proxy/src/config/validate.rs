//! `FileConfig` -> `Config`: every check runs and every failure is kept, so one `--check` run
//! shows the user all of them.
//!
//! One concept per module: `check` (reading one value with a fallback), `upstream` (the
//! `[upstreams]` tables and health checks), `cache` (the `[cache]` table and a route's cache),
//! `routes` (the `[[routes]]` tables), `decode` (text to `FileConfig`, every unknown key and
//! wrong type at once) and `lines` (finding the line of a problem). The `[proxy]`
//! table is small enough to stay here, next to `validate`, which ties the sections together.

mod access;
mod access_log;
mod admin;
mod balancing;
mod cache;
mod check;
mod client;
mod compress;
mod decode;
mod dns;
mod edge;
mod lines;
mod redis;
mod routes;
mod split;
mod tls;
mod tracing;
mod traffic;
mod transport;
mod upstream;

pub use decode::decode;
pub use lines::locate;
pub(super) use redis::validate_redis as redis_settings;
pub use upstream::MAX_SERVERS_PER_UPSTREAM;

use super::file::FileConfig;
use super::units::DurationKind;
use super::{Config, ProxySettings};
use cache::validate_cache;
use check::Check;
use redis::validate_redis;
use routes::validate_routes;
use scalelab_common::problem::{Problem, Problems};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use upstream::validate_upstream;

pub fn validate(file: FileConfig, base: &std::path::Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Problems::new();
    let mut proxy = validate_proxy(&file, &mut problems);
    proxy.access = access::validate_proxy_ip(&file, base, &mut problems);
    let mut upstreams = BTreeMap::new();
    for (name, upstream) in &file.upstreams {
        if let Some(valid) = validate_upstream(name, upstream, base, &mut problems) {
            upstreams.insert(name.clone(), valid);
        }
    }
    let redis = file
        .redis
        .as_ref()
        .map(|redis| validate_redis(redis, base, &mut problems));
    let cache = file
        .cache
        .as_ref()
        .map(|cache| validate_cache(cache, redis.is_some(), &mut problems));
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
    let routes = validate_routes(
        &file,
        base,
        cache.is_some(),
        file.auth.is_some(),
        &mut problems,
    );
    let tls = tls::validate_tls(&file, base, &mut problems);
    let admin = admin::validate_admin(&file, proxy.admin_listen, base, &mut problems);
    let dns = dns::validate_dns(&file, &mut problems);
    let tracing = file
        .tracing
        .as_ref()
        .map(|tracing| tracing::validate_tracing(tracing, &mut problems));
    problems.into_result(Config {
        proxy,
        upstreams,
        routes,
        cache,
        auth,
        redis,
        tls,
        admin,
        dns,
        tracing,
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
        tls_listen: tls::validate_tls_listen(file, problems),
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
        request_metrics: proxy.request_metrics.unwrap_or(true),
        trusted_proxies: traffic::validate_trusted_proxies(
            proxy.trusted_proxies.as_ref(),
            problems,
        ),
        access_log: access_log::validate_access_log(proxy.access_log.as_ref(), problems),
        h2c: proxy.h2c.unwrap_or(false),
        client: client::validate_client_limits(proxy, problems),
        forward_h2c_upgrade: proxy.forward_h2c_upgrade.unwrap_or(false),
        tunnel_timeout: problems.duration(
            "proxy.tunnel_timeout",
            proxy.tunnel_timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(3600),
        ),
        edge: edge::validate_proxy_edge(file, problems),
        debug_headers: admin::validate_debug(file, problems),
        compress: compress::validate_proxy_compress(proxy.compress.as_ref(), problems),
        // Filled by `validate`, which knows the config file's directory.
        access: Default::default(),
    }
}

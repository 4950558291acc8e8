//! Integration tests: real backends, the real `scalelab-proxy` binary, real HTTP clients.
#![allow(clippy::unwrap_used)]

/// Runs `async fn $name(client: Client)` as two tests, `$name::http1` and `$name::h2c`: the
/// same assertions over HTTP/1.1 and over HTTP/2 (prior knowledge) to the proxy.
macro_rules! over_each_client {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http1() {
                super::$name(crate::harness::Client::Http1).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn h2c() {
                super::$name(crate::harness::Client::H2c).await;
            }
        }
    )+};
}

mod access;
mod access_log;
mod admin_access;
mod attack;
mod auth;
mod balancer_series;
mod balancing;
pub mod balancing_more;
mod cache;
mod canary;
mod compression;
mod configmap;
mod debug_headers;
mod discovery;
mod edge_rules;
mod exemplars;
mod failover;
mod first_burst;
mod forwarding;
mod grpc;
mod harness;
mod http2;
mod lifecycle;
pub mod limits;
mod metrics;
mod outliers;
mod overrides;
mod packaging;
mod redis_deployments;
mod reload;
mod request_metrics;
pub mod shared_cache;
mod shared_tier_size;
mod slow_clients;
mod smuggling;
mod systemd;
mod tls;
mod tracing;
pub mod upgrades;
mod upgrades_reload;
mod upstream_faults;
mod upstream_protocols;

//! Integration tests: real backends, the real `scalelab-proxy` binary, real HTTP clients.
#![allow(clippy::unwrap_used)]

mod access_log;
mod attack;
mod auth;
mod balancing;
mod cache;
mod failover;
mod forwarding;
mod harness;
mod lifecycle;
pub mod limits;
mod metrics;
mod overrides;
mod redis_deployments;
mod reload;
mod request_metrics;
pub mod shared_cache;
mod shared_tier_size;
mod slow_clients;
mod smuggling;
mod upstream_faults;

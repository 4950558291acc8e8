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
mod limits;
mod metrics;
mod overrides;
mod reload;
mod request_metrics;
mod shared_cache;
mod slow_clients;
mod smuggling;
mod tls;
mod upstream_faults;

//! Integration tests that run the real backend binaries as child processes.
#![allow(clippy::unwrap_used)]

mod database;
mod harness;
mod local_cache;
mod metrics;
mod websocket;
mod worker;
mod worker_fleet;
mod worker_redis;

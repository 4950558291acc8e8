//! scalelab-proxy: a configuration-driven reverse proxy on Pingora.
//!
//! Code map: `config` (file types, validation) -> `snapshot` (routes and pools built from one
//! config) held in `state::Shared`; `service::Proxy` runs each request through `routing`,
//! `balance`/`upstream`, `headers` and `error`; `health` probes servers; `admin` serves the
//! admin listener; `server` assembles the pingora server and its shutdown.

pub mod access_control;
pub mod access_log;
pub mod admin;
pub mod balance;
pub mod cache;
pub mod compression;
pub mod config;
pub mod discovery;
pub mod dns;
pub mod error;
pub mod framing;
pub mod headers;
pub mod health;
pub mod http1;
pub mod https;
pub mod journal;
pub mod listeners;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod ratelimit;
pub mod reload;
pub mod routing;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod systemd;
pub mod tasks;
pub mod telemetry;
pub mod template;
pub mod trace;
pub mod upgrade;
pub mod upstream;
pub mod watch;

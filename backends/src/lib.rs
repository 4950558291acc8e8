//! The lab's backend services: gateway, microservice, database and priority worker.
//!
//! Each service module exposes `router(state) -> axum::Router`; the binaries in `src/bin/` only parse flags and call
//! [`serve::run`]. Everything a backend shares (health, metrics, chaos knobs, JSON errors, the `GET /ws`
//! WebSocket echo of [`websocket`]) lives in [`instance`].

pub mod chaos;
pub mod database;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod instance;
pub mod local_cache;
pub mod microservice;
pub mod priority_worker;
pub mod serve;
pub mod traced;
pub mod websocket;

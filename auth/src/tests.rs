//! Unit tests for configuration validation; the attack-vector table lives in `tests/vectors.rs`.
#![allow(clippy::unwrap_used)]

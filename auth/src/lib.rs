//! Strict JWT verification shared by the proxy, the gateway backend and the `scalelab token` CLI.
//!
//! Code map:
//! - `config`: `AuthFileConfig` mirrors the TOML `[auth]` table; `validate` turns it into `AuthSettings` or
//!   returns every problem with its TOML path.
//! - `keys`: loading PEM public keys and JWKS files into keys that are each bound to an algorithm family (and, for
//!   JWKS, to one exact algorithm).
//! - `verify`: `Verifier` extracts the token from an `Authorization` value, checks the raw segments and the header
//!   itself, and only then hands the token to `jsonwebtoken` with an explicit `Validation`.
//! - `rejection`: `Rejection` and its stable `reason()` strings, `WWW-Authenticate` value and JSON body.
//! - `mint`: issues HMAC tokens for the CLI and for tests.
//!
//! **Invariant:** the algorithm is always chosen by configuration, never by the token; the token's `alg` may only
//! narrow the configured set to one entry.
//!
//! **Invariant:** nothing in this crate does network IO; `jku` and `x5u` are never fetched.

mod config;
mod keys;
mod mint;
mod rejection;
mod verify;

#[cfg(test)]
mod tests;

pub use config::{
    load_from_config_file, parse_config_toml, validate, validate_with_env, AuthFileConfig,
    AuthIssue, AuthSettings, SecretSource, DEFAULT_MAX_TOKEN_BYTES,
};
pub use jsonwebtoken::Algorithm;
pub use mint::{mint, MintError};
pub use rejection::{Rejection, ACCEPTED, REALM};
pub use verify::{outcome_label, Claims, Verifier};

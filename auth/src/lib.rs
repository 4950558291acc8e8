//! Strict JWT verification shared by the proxy, the gateway backend and the `scalelab token` CLI.
//!
//! Code map:
//! - `config`: `AuthFileConfig` mirrors the TOML `[auth]` table; `validate` turns it into `AuthSettings` or
//!   returns every problem
//!   (`scalelab_common::problem::Problem`) with its TOML path.
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
//!
//! Policy choices a caller should know about:
//! - An absent or empty `Authorization` header is `missing`; `Bearer` with nothing after it is `malformed`; any
//!   scheme other than `Bearer` (in any case) is `bad_scheme`; a value without a scheme is taken as a bare token.
//! - A header carrying `jwk` or `x5c` is refused (`embedded_key`); `jku` and `x5u` are ignored, since keys only ever
//!   come from configuration. Any `crit` is refused (`crit_unsupported`).
//! - With a JWKS configured, a token's `kid` must name one of its keys (`unknown_kid` otherwise) and the key's own
//!   `alg` must equal the token's; without a JWKS the `kid` is ignored and every configured key of the right
//!   family is tried.
//! - A configured `issuer` or `audience` makes `iss` or `aud` required. A token carrying `aud` when no audience is
//!   configured is refused (`bad_audience`), as RFC 7519 §4.1.3 requires.
//! - `exp`, `nbf` and `iat` must be non-negative JSON numbers, `iss`, `sub` and `jti` strings, `aud` a string or
//!   an array of strings (`invalid_claims` otherwise); `iat` beyond the leeway in the future is `not_yet_valid`.

mod config;
mod keys;
mod mint;
mod rejection;
mod verify;

#[cfg(test)]
mod tests;

pub use config::{
    load_from_config_file, parse_config_toml, validate, validate_with_env, AuthFileConfig,
    AuthSettings, SecretSource, DEFAULT_MAX_TOKEN_BYTES,
};
pub use jsonwebtoken::Algorithm;
pub use mint::{mint, MintError};
pub use rejection::{Rejection, ACCEPTED, REALM};
pub use verify::{outcome_label, Claims, Verifier};

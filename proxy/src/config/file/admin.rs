//! `[admin]` as written: where the admin token comes from and whether `/metrics` needs it.

use serde::Deserialize;

/// `[admin] token = { file = "..." }` or `{ env = "NAME" }`, `metrics_auth = true`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    pub token: Option<FileSecret>,
    pub metrics_auth: Option<bool>,
}

/// A secret kept out of the config file: a file to read or an environment variable. An
/// inline value is deliberately not accepted, so the token never sits in `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecret {
    pub file: Option<String>,
    pub env: Option<String>,
    /// With `env`: an unset variable means no token rather than a problem (the lab's config,
    /// whose `scalelab up` sets the variable, and which also runs the proxy alone).
    pub optional: Option<bool>,
}

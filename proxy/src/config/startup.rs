//! The startup part of a `Config`: the settings a running process cannot change, because they
//! are built once into the listeners, the runtime or Pingora's `ServerConf`. A reload computes
//! "restart required" as `new.startup() != running.startup()`, field by field, and keeps the
//! running values (`Config::with_startup`), so this type is the one list of restart-only
//! settings: a field added here is compared, reported and kept without another list to edit.

use super::tls::TlsVersion;
use super::Config;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Every restart-only setting, each serialized under its TOML path so a difference names the
/// key a user edits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Startup {
    #[serde(rename = "proxy.listen")]
    pub listen: Vec<SocketAddr>,
    #[serde(rename = "proxy.tls_listen")]
    pub tls_listen: Vec<SocketAddr>,
    #[serde(rename = "proxy.admin_listen")]
    pub admin_listen: SocketAddr,
    #[serde(rename = "proxy.threads")]
    pub threads: usize,
    /// Pingora's grace period, fixed in its `ServerConf`.
    #[serde(
        rename = "proxy.shutdown_timeout",
        with = "super::humantime_serde_compat"
    )]
    pub shutdown_timeout: Duration,
    /// Pingora reads it from the listener's server options, fixed when the listener is built.
    #[serde(rename = "proxy.h2c")]
    pub h2c: bool,
    /// Built into the listeners' server options at start.
    #[serde(
        rename = "proxy.client_header_timeout",
        with = "super::humantime_serde_compat"
    )]
    pub client_header_timeout: Duration,
    /// Built into each listener's connection limit at start.
    #[serde(rename = "proxy.max_connections")]
    pub max_connections: usize,
    /// Built into the TLS listeners' rustls config at start (certificates are live). Without
    /// a `[tls]` table no TLS listener runs, and the default stands for it.
    #[serde(rename = "tls.min_version")]
    pub tls_min_version: TlsVersion,
}

/// One startup setting whose value in the file differs from the one the process runs with.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pending {
    /// The TOML path, as in the reload journal.
    pub path: String,
    pub running: Value,
    pub pending: Value,
}

impl Startup {
    /// Every field of `new` that differs from `self`, in path order. Compared through
    /// the serialized form, so no field can be left out of the comparison.
    pub fn pending(&self, new: &Startup) -> Vec<Pending> {
        let (Value::Object(running), Value::Object(new)) = (to_value(self), to_value(new)) else {
            return Vec::new();
        };
        running
            .into_iter()
            .filter_map(|(path, running)| {
                let pending = new.get(&path)?;
                (running != *pending).then(|| Pending {
                    pending: pending.clone(),
                    path,
                    running,
                })
            })
            .collect()
    }
}

fn to_value(startup: &Startup) -> Value {
    serde_json::to_value(startup).unwrap_or(Value::Null)
}

impl Config {
    /// The restart-only settings of this config.
    pub fn startup(&self) -> Startup {
        Startup {
            listen: self.proxy.listen.clone(),
            tls_listen: self.proxy.tls_listen.clone(),
            admin_listen: self.proxy.admin_listen,
            threads: self.proxy.threads,
            shutdown_timeout: self.proxy.shutdown_timeout,
            h2c: self.proxy.h2c,
            client_header_timeout: self.proxy.client.client_header_timeout,
            max_connections: self.proxy.client.max_connections,
            tls_min_version: self
                .tls
                .as_ref()
                .map_or_else(TlsVersion::default, |tls| tls.min_version),
        }
    }

    /// This config with `startup`'s values: a reload's config keeps what the process runs
    /// with. The destructuring names every field, so one added to `Startup` fails to compile
    /// here until it is kept too.
    pub fn with_startup(mut self, startup: Startup) -> Config {
        let Startup {
            listen,
            tls_listen,
            admin_listen,
            threads,
            shutdown_timeout,
            h2c,
            client_header_timeout,
            max_connections,
            tls_min_version,
        } = startup;
        self.proxy.listen = listen;
        self.proxy.tls_listen = tls_listen;
        self.proxy.admin_listen = admin_listen;
        self.proxy.threads = threads;
        self.proxy.shutdown_timeout = shutdown_timeout;
        self.proxy.h2c = h2c;
        self.proxy.client.client_header_timeout = client_header_timeout;
        self.proxy.client.max_connections = max_connections;
        if let Some(tls) = self.tls.as_mut() {
            tls.min_version = tls_min_version;
        }
        self
    }
}

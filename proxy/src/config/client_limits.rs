//! `[proxy]` limits on what one client may take from the edge: time to send a head, time
//! between body reads, keep-alive idle time, connections per listener, and body size (which a
//! route may lower or raise). Defaults are safe for a public edge; README lists them.

use std::time::Duration;

/// Validated client limits (the `[proxy]` keys of the same names).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClientLimits {
    /// The whole request head must arrive within this time (nginx `client_header_timeout`).
    #[serde(with = "super::humantime_serde_compat")]
    pub client_header_timeout: Duration,
    /// The longest wait between two reads of a request body.
    #[serde(with = "super::humantime_serde_compat")]
    pub client_body_timeout: Duration,
    /// How long an idle keep-alive connection is kept; whole seconds, at least one.
    #[serde(with = "super::humantime_serde_compat")]
    pub keepalive_timeout: Duration,
    /// Connections one listener serves at once; more are closed at once and counted.
    pub max_connections: usize,
    /// The largest request body accepted (413 beyond), unless the route sets its own.
    pub max_body_bytes: u64,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            client_header_timeout: Duration::from_secs(10),
            client_body_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

impl ClientLimits {
    /// The keep-alive timeout in Pingora's unit (whole seconds; 0 would mean "forever").
    pub fn keepalive_seconds(&self) -> u64 {
        self.keepalive_timeout.as_secs().max(1)
    }
}

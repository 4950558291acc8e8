//! systemd's service notifications (sd_notify(3)), sent only when systemd (or anything playing
//! it) set `NOTIFY_SOCKET`; without it every function here does nothing.
//!
//! - `READY=1` once every listener answers: `Service` polls them after Pingora has started, since
//!   Pingora binds its listeners inside its own runtimes and tells nobody when it is done. The
//!   first snapshot is published before the server is built, so it is serving by then.
//! - `RELOADING=1` with `MONOTONIC_USEC` when a reload starts and `READY=1` with its outcome in
//!   `STATUS=` when it ends, rejected or not (`reload::apply` calls `reloading` and `reloaded`),
//!   which is the protocol of systemd 253's `Type=notify-reload` and harmless under `Type=notify`.
//! - `STOPPING=1` when SIGTERM or SIGINT starts the shutdown (`server`'s signal watch).
//! - `WATCHDOG=1` every half of `WATCHDOG_USEC`, but only after a request through the proxy's
//!   own listener was answered: a timer alone would keep pinging while every request thread
//!   hangs, which is exactly what the watchdog is for.

use crate::journal::{Outcome, Record};
use crate::state::Shared;
use async_trait::async_trait;
use http::{HeaderMap, Method};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sd_notify::NotifyState;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How often readiness is polled while the listeners come up.
const READY_POLL: Duration = Duration::from_millis(20);

/// The longest a watchdog probe may take, whatever the watchdog interval.
const PROBE_TIMEOUT_CAP: Duration = Duration::from_secs(5);

/// Whether a service manager listens for notifications.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `states` in one datagram. A failure is logged and otherwise ignored: a lost
/// notification must not take the proxy down (systemd then times the unit out by itself).
fn send(states: &[NotifyState]) {
    if !enabled() {
        return;
    }
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}

/// `STATUS=` text: the serving generation and what the last reload did.
pub fn status(generation: u64, last: Option<&Record>) -> String {
    match last {
        None => format!("serving generation {generation}; no reload yet"),
        Some(record) => format!(
            "serving generation {generation}; last reload ({}): {}",
            record.trigger.name(),
            match record.result {
                Outcome::Applied => "applied",
                Outcome::Rejected => "rejected",
                Outcome::Unchanged => "unchanged",
            }
        ),
    }
}

/// A reload starts.
pub fn reloading() {
    if !enabled() {
        return;
    }
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        // systemd refuses `RELOADING=1` without the timestamp, but the log says why.
        Err(error) => tracing::warn!(%error, "cannot read the monotonic clock for RELOADING=1"),
    }
}

/// A reload ended with `record` (applied, rejected or unchanged).
pub fn reloaded(record: &Record, serving_generation: u64) {
    let status = status(serving_generation, Some(record));
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// The shutdown started.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Sends `READY=1` once the listeners answer, then the watchdog's pings; runs only when
/// `NOTIFY_SOCKET` is set (`server` adds it then).
pub struct Service {
    pub shared: Shared,
    /// The plain HTTP listeners: a probe is a real request there.
    pub plain: Vec<SocketAddr>,
    /// The TLS and admin listeners: a probe is a connection there.
    pub others: Vec<SocketAddr>,
}

#[async_trait]
impl BackgroundService for Service {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            if self.all_answer(PROBE_TIMEOUT_CAP).await {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(READY_POLL) => {}
                _ = shutdown.changed() => return,
            }
        }
        let status = status(self.shared.snapshot().generation, None);
        send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        tracing::info!("told the service manager: ready");
        let Some(interval) = sd_notify::watchdog_enabled() else {
            return;
        };
        let period = interval / 2;
        let timeout = period.min(PROBE_TIMEOUT_CAP);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.changed() => return,
            }
            if self.alive(timeout).await {
                send(&[NotifyState::Watchdog]);
            } else {
                tracing::warn!(
                    ?timeout,
                    "watchdog probe got no answer from the proxy listener; not pinging the watchdog"
                );
            }
        }
    }
}

impl Service {
    /// Whether every listener answers.
    async fn all_answer(&self, timeout: Duration) -> bool {
        for addr in &self.plain {
            if !request_answered(*addr, timeout).await {
                return false;
            }
        }
        for addr in &self.others {
            if tokio::time::timeout(timeout, tokio::net::TcpStream::connect(reachable(*addr)))
                .await
                .map_or(true, |connected| connected.is_err())
            {
                return false;
            }
        }
        true
    }

    /// Whether the request path is alive: a request on the first plain listener, or, with TLS
    /// listeners only, a connection to the first (which proves less: the kernel completes a
    /// connection before the proxy accepts it).
    async fn alive(&self, timeout: Duration) -> bool {
        match (self.plain.first(), self.others.first()) {
            // A proxy full at `max_connections` refuses the probe's connection, and is alive:
            // a watchdog that restarted it then would turn an overload into an outage.
            (Some(addr), _) => probe(*addr, timeout).await != Probe::Silent,
            (None, Some(addr)) => {
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(reachable(*addr)))
                    .await
                    .is_ok_and(|connected| connected.is_ok())
            }
            (None, None) => true,
        }
    }
}

/// What a probe request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// A complete response.
    Answered,
    /// The proxy closed the connection without answering: at `max_connections` it closes a
    /// new connection at once. Its request thread accepted and decided, so it is alive.
    Closed,
    /// No connection, or no answer within the timeout: a stuck request thread looks like this.
    Silent,
}

/// Sends `OPTIONS *` (the server-wide request of RFC 9110 9.3.7, which no route matches, so it
/// never reaches an upstream; Apache's own "dummy connection" uses it for the same purpose).
async fn probe(addr: SocketAddr, timeout: Duration) -> Probe {
    match crate::http1::send(
        Method::OPTIONS,
        reachable(addr),
        "*",
        HeaderMap::new(),
        timeout,
    )
    .await
    {
        Ok(_) => Probe::Answered,
        Err(crate::http1::Error::Http(_)) => Probe::Closed,
        Err(_) => Probe::Silent,
    }
}

async fn request_answered(addr: SocketAddr, timeout: Duration) -> bool {
    probe(addr, timeout).await == Probe::Answered
}

/// The address to connect to for a listener: a wildcard one is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Trigger;

    fn record(trigger: Trigger, result: Outcome) -> Record {
        Record {
            generation: 0,
            time: String::new(),
            unix_ms: 0,
            trigger,
            result,
            sha256: String::new(),
            duration_us: 0,
            errors: Vec::new(),
            changes: Vec::new(),
            dns: None,
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(status(1, None), "serving generation 1; no reload yet");
        for (trigger, result, expected) in [
            (
                Trigger::Signal,
                Outcome::Applied,
                "serving generation 3; last reload (signal): applied",
            ),
            (
                Trigger::File,
                Outcome::Rejected,
                "serving generation 3; last reload (file): rejected",
            ),
            (
                Trigger::Api,
                Outcome::Unchanged,
                "serving generation 3; last reload (api): unchanged",
            ),
        ] {
            assert_eq!(status(3, Some(&record(trigger, result))), expected);
        }
    }

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        for (listen, probed) in [
            ("0.0.0.0:80", "127.0.0.1:80"),
            ("[::]:443", "[::1]:443"),
            ("10.0.0.5:8000", "10.0.0.5:8000"),
        ] {
            let listen: SocketAddr = listen.parse().unwrap();
            assert_eq!(reachable(listen).to_string(), probed);
        }
    }
}

//! `[proxy] max_connections`: a bound on the client connections one listener serves at once
//! (every listener is served by one Pingora service; each keeps its own count).
//! Pingora has no such bound, so its HTTP application is wrapped: a connection over the bound
//! is closed at once (before anything is read) and counted in
//! `scalelab_connections_refused_total{listener}`. Closing rather than leaving it in the kernel's
//! accept queue keeps the refusal visible and bounded: Pingora's accept loop takes every
//! connection as fast as it can, so there is no queue to leave it in without a patch there.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use prometheus::{IntCounterVec, Opts};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// A server application that serves at most `limit` connections at once on each listener.
pub struct ConnectionLimit<A> {
    inner: Arc<A>,
    listeners: Vec<Listener>,
}

/// One listen address's slots and its label.
struct Listener {
    addr: SocketAddr,
    slots: Semaphore,
    label: String,
}

impl<A> ConnectionLimit<A> {
    pub fn new(inner: A, limit: usize, addrs: Vec<SocketAddr>) -> ConnectionLimit<A> {
        ConnectionLimit {
            inner: Arc::new(inner),
            listeners: addrs
                .into_iter()
                .map(|addr| Listener {
                    addr,
                    slots: Semaphore::new(limit),
                    label: addr.to_string(),
                })
                .collect(),
        }
    }

    /// The listener a connection arrived on, by its local address: the exact address, or the
    /// port of a listener bound to the unspecified address (`0.0.0.0`, `::`), whose
    /// connections arrive on a concrete one.
    fn listener_of(&self, local: Option<SocketAddr>) -> Option<&Listener> {
        let local = local?;
        self.listeners
            .iter()
            .find(|listener| listener.addr == local)
            .or_else(|| {
                self.listeners.iter().find(|listener| {
                    listener.addr.ip().is_unspecified() && listener.addr.port() == local.port()
                })
            })
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionLimit<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let local = stream
            .get_socket_digest()
            .and_then(|digest| digest.local_addr().and_then(|addr| addr.as_inet()).copied());
        // A connection from no known listener (none today) is served unbounded rather than
        // refused: the bound is a protection, not an access rule.
        let Some(listener) = self.listener_of(local) else {
            return self.inner.process_new(stream, shutdown).await;
        };
        let Ok(_slot) = listener.slots.try_acquire() else {
            if let Some(refused) = refused() {
                refused.with_label_values(&[&listener.label]).inc();
            }
            tracing::debug!(listener = %listener.label, "connection over max_connections closed");
            return None;
        };
        // The slot is held while the application serves the connection, keep-alive requests
        // included; it is given back when the connection ends.
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

fn refused() -> Option<&'static IntCounterVec> {
    static REFUSED: OnceLock<Option<IntCounterVec>> = OnceLock::new();
    REFUSED
        .get_or_init(|| {
            super::register(IntCounterVec::new(
                Opts::new(
                    "scalelab_connections_refused_total",
                    "Client connections closed at once because the listener already served max_connections.",
                ),
                &["listener"],
            ))
        })
        .as_ref()
}

//! `[proxy] max_connections`: a bound on the client connections one listener serves at once.
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
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// A server application that serves at most `limit` connections at once.
pub struct ConnectionLimit<A> {
    inner: Arc<A>,
    slots: Arc<Semaphore>,
    listener: String,
}

impl<A> ConnectionLimit<A> {
    pub fn new(inner: A, limit: usize, listener: String) -> ConnectionLimit<A> {
        ConnectionLimit {
            inner: Arc::new(inner),
            slots: Arc::new(Semaphore::new(limit)),
            listener,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionLimit<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(_slot) = self.slots.try_acquire() else {
            if let Some(refused) = refused() {
                refused.with_label_values(&[&self.listener]).inc();
            }
            tracing::debug!(listener = %self.listener, "connection over max_connections closed");
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

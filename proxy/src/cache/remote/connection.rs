//! The connection to the shared tier: one server through the crate's `ConnectionManager`, or a
//! Redis Cluster through its cluster connection, both lazy (a proxy starts while Redis is down)
//! and both over TLS for `rediss://` URLs, checked against the `[redis] ca` file when there is
//! one. `Connection` is either, so every command and script runs the same way on both.

use crate::config::RedisSettings;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, TlsCertificates, Value};
use std::time::Duration;

/// One server's connection, or a cluster's.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The connection `settings` describe, made lazily on the current runtime (which must be the
/// tier's own), and a client of one server for the purge channel's subscription (a cluster
/// forwards every PUBLISH to all its nodes, so its first seed node hears them all).
///
/// # Errors
/// A malformed URL, or a CA file that cannot be read or holds no certificate.
pub fn connect(settings: &RedisSettings) -> Result<(Connection, redis::Client), RedisError> {
    // The ring provider, which pingora-rustls uses too; set once per process (an error only
    // says one is already installed), so rustls never has to guess between two.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificates = match &settings.ca {
        Some(path) => Some(TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(path).map_err(|error| {
                RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "cannot read [redis] ca",
                    format!("{}: {error}", path.display()),
                ))
            })?),
        }),
        None => None,
    };
    let client = match &certificates {
        Some(certificates) => {
            redis::Client::build_with_tls(settings.url.as_str(), certificates.clone())?
        }
        None => redis::Client::open(settings.url.as_str())?,
    };
    if settings.cluster.is_empty() {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = client.get_connection_manager_lazy(config)?;
        return Ok((Connection::Single(manager), client));
    }
    let mut builder = ClusterClient::builder(settings.cluster.clone())
        .connection_timeout(settings.connect_timeout)
        .response_timeout(settings.command_timeout)
        .retries(1);
    if let Some(certificates) = certificates {
        builder = builder.certs(certificates);
    }
    let config = ClusterConfig::new()
        .set_connection_timeout(settings.connect_timeout)
        .set_response_timeout(settings.command_timeout);
    let cluster = builder
        .build()?
        .get_pending_async_connection_with_config(config);
    Ok((Connection::Cluster(cluster), client))
}

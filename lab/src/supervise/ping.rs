//! The readiness of a child that speaks Redis rather than HTTP (a fleet's redis-server): it is ready when a PING
//! on a fresh connection answers PONG. The `redis` crate, which the proxy and the worker use, speaks the protocol.
//! A name server (`up --dns`'s dnsmasq, `dns://IP:PORT`) is ready when it answers a query.

use std::time::Duration;

/// How long one PING may take, connection included; a slower answer counts as not ready yet.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the Redis at `url` (`redis://host:port`) answers PING with PONG within [`PING_TIMEOUT`].
pub async fn answers(url: &str) -> bool {
    let ping = async {
        let client = redis::Client::open(url).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(PING_TIMEOUT, ping).await,
        Ok(Some(pong)) if pong == "PONG"
    )
}

/// Whether the name server at `addr` (`IP:PORT`) answers a DNS query within [`PING_TIMEOUT`].
pub async fn dns_answers(addr: &str) -> bool {
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        return false;
    };
    // The probe is a blocking UDP exchange of at most the timeout.
    tokio::task::spawn_blocking(move || scalelab_common::dnsmasq::answers(addr, PING_TIMEOUT))
        .await
        .unwrap_or(false)
}

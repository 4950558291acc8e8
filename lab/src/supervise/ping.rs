//! The readiness of a child that speaks Redis rather than HTTP (a fleet's redis-server): it is ready when a PING
//! on a fresh connection answers PONG. The `redis` crate, which the proxy and the worker use, speaks the protocol.

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

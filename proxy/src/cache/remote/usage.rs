//! The shared tier's `max_bytes`. Redis keeps no count of one prefix's bytes (objects expire on
//! their own, unseen), so the tier's usage is the server's `used_memory` (`INFO memory`, summed
//! over a cluster's primaries): everything in that Redis counts, which is why the tier should
//! have a Redis (or a cluster) of its own. A task on the tier's runtime samples it once a second,
//! off the request path; while it is over `max_bytes` the proxy stores nothing new in Redis
//! (lookups, purges and locks go on), and each change of state is logged once and shown by
//! `scalelab_cache_redis_full`. Objects larger than `max_bytes` are never stored at all.

use super::RemoteTier;
use redis::Value;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the usage is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

impl RemoteTier {
    /// Sets the tier's `max_bytes` (a reload may change it) and starts the sampler once.
    pub fn limit_usage(self: &Arc<Self>, max_bytes: usize) {
        self.usage_limit.store(
            u64::try_from(max_bytes).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if self.sampling.swap(true, Ordering::Relaxed) {
            return;
        }
        let tier = Arc::downgrade(self);
        if let Some(runtime) = &self.runtime {
            runtime.spawn(sample(tier));
        }
    }

    /// Whether the tier is over its `max_bytes` (new objects are not stored).
    pub fn is_full(&self) -> bool {
        self.counters.full.load(Ordering::Relaxed)
    }

    /// Measures the usage now and updates the state; `None` when Redis did not answer (the
    /// state stays as it was).
    async fn measure(&self) -> Option<u64> {
        if !self.breaker.allows() {
            return None;
        }
        let mut connection = self.connection.clone();
        let reply = tokio::time::timeout(
            self.settings.command_timeout,
            redis::cmd("INFO")
                .arg("memory")
                .query_async::<Value>(&mut connection),
        )
        .await
        .ok()?
        .ok()?;
        let used = used_memory(&reply)?;
        self.counters.used_bytes.store(used, Ordering::Relaxed);
        let limit = self.usage_limit.load(Ordering::Relaxed);
        let full = used > limit;
        if self.counters.full.swap(full, Ordering::Relaxed) != full {
            if full {
                tracing::warn!(
                    used,
                    max_bytes = limit,
                    "the redis tier is over max_bytes: new objects are not stored in it"
                );
            } else {
                tracing::info!(
                    used,
                    max_bytes = limit,
                    "the redis tier is under max_bytes again: new objects are stored in it"
                );
            }
        }
        Some(used)
    }
}

/// Samples until the tier is gone.
async fn sample(tier: Weak<RemoteTier>) {
    loop {
        let Some(tier) = tier.upgrade() else {
            return;
        };
        tier.measure().await;
        drop(tier);
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// `used_memory` in an `INFO memory` reply: one server's text, or (from a cluster) one text per
/// primary, summed.
fn used_memory(reply: &Value) -> Option<u64> {
    match reply {
        Value::BulkString(bytes) => field(&String::from_utf8_lossy(bytes)),
        Value::VerbatimString { text, .. } => field(text),
        Value::SimpleString(text) => field(text),
        Value::Map(nodes) => nodes.iter().map(|(_, info)| used_memory(info)).sum(),
        Value::Array(nodes) => nodes.iter().map(used_memory).sum(),
        _ => None,
    }
}

fn field(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::used_memory;
    use redis::Value;

    #[test]
    fn used_memory_is_read_from_one_server_or_summed_over_a_cluster() {
        let info = |bytes: u64| {
            Value::BulkString(
                format!("# Memory\r\nused_memory:{bytes}\r\nused_memory_human:1M\r\n").into_bytes(),
            )
        };
        assert_eq!(used_memory(&info(1_048_576)), Some(1_048_576));
        let cluster = Value::Map(vec![
            (Value::SimpleString("127.0.0.1:7000".into()), info(100)),
            (Value::SimpleString("127.0.0.1:7001".into()), info(20)),
        ]);
        assert_eq!(used_memory(&cluster), Some(120));
        for unreadable in [Value::Nil, Value::BulkString(b"# Memory\r\n".to_vec())] {
            assert_eq!(used_memory(&unreadable), None);
        }
    }
}

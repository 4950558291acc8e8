//! Fleet-wide purges: every proxy subscribes to the shared tier's channel and applies the purges
//! other proxies publish to its own memory tiers, so a purge on one proxy is seen on all of them
//! (within the channel's delivery time, milliseconds on a LAN).
//!
//! A subscription that breaks may have missed purges, so after a reconnect the proxy drops its
//! memory tiers' objects: they come back from the shared tier on the next hits.

use super::RemoteTier;
use crate::cache::{CacheHandle, Selector};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long a broken subscription waits before it tries again.
const RETRY: Duration = Duration::from_millis(500);

/// One purge on the channel.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// The publishing proxy (it already purged its own tiers).
    from: String,
    selector: String,
    value: String,
    soft: bool,
}

impl Message {
    pub fn new(from: &str, selector: &Selector, soft: bool) -> Message {
        let (field, value) = match selector {
            Selector::Key(value) => ("key", value),
            Selector::Prefix(value) => ("prefix", value),
            Selector::Tag(value) => ("tag", value),
            Selector::Route(value) => ("route", value),
        };
        Message {
            from: from.to_owned(),
            selector: field.to_owned(),
            value: value.clone(),
            soft,
        }
    }

    pub fn encode(&self) -> String {
        // A struct of strings and a bool always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The purge a payload asks for, or `None` for a payload this version does not understand.
    pub fn decode(payload: &str) -> Option<(String, Selector, bool)> {
        let message: Message = serde_json::from_str(payload).ok()?;
        let selector = match message.selector.as_str() {
            "key" => Selector::Key(message.value),
            "prefix" => Selector::Prefix(message.value),
            "tag" => Selector::Tag(message.value),
            "route" => Selector::Route(message.value),
            _ => return None,
        };
        Some((message.from, selector, message.soft))
    }
}

/// Applies other proxies' purges to this proxy's memory tiers, for the life of the process.
pub async fn run(remote: Arc<RemoteTier>, cache: Arc<CacheHandle>) {
    let mut first = true;
    loop {
        match subscribe(&remote, &cache, first).await {
            Ok(()) => tracing::warn!("redis purge subscription ended; subscribing again"),
            Err(error) => tracing::debug!(%error, "redis purge subscription failed; retrying"),
        }
        first = false;
        tokio::time::sleep(RETRY).await;
    }
}

async fn subscribe(
    remote: &RemoteTier,
    cache: &CacheHandle,
    first: bool,
) -> redis::RedisResult<()> {
    let mut pubsub = remote.client().get_async_pubsub().await?;
    pubsub.subscribe(remote.channel()).await?;
    if !first {
        if let Some(store) = cache.current() {
            let dropped = store.invalidate(&Selector::Prefix(String::new()), false);
            tracing::warn!(
                dropped,
                "redis purge subscription restored; dropped the memory tiers' objects, which may have missed purges"
            );
        }
    } else {
        tracing::info!("subscribed to the fleet's cache purges");
    }
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        let Some((from, selector, soft)) = Message::decode(&payload) else {
            tracing::warn!(payload, "ignoring a purge message this version cannot read");
            continue;
        };
        if from == remote.instance {
            continue;
        }
        if let Some(store) = cache.current() {
            let removed = store.invalidate(&selector, soft);
            tracing::debug!(?selector, soft, removed, from, "applied a fleet purge");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_message_reads_back_and_a_foreign_one_is_ignored() {
        let message = Message::new("p1", &Selector::Tag("users".into()), true).encode();
        let (from, selector, soft) = Message::decode(&message).unwrap();
        assert_eq!(from, "p1");
        assert!(matches!(selector, Selector::Tag(tag) if tag == "users"));
        assert!(soft);
        assert!(Message::decode(
            "{\"from\":\"p\",\"selector\":\"everything\",\"value\":\"\",\"soft\":false}"
        )
        .is_none());
        assert!(Message::decode("not json").is_none());
    }
}

//! Purges in the shared tier: the storage keys a `Selector` picks (the variants and tag sets the
//! store script keeps, or a SCAN for a prefix), removed or soft-purged by `purge.lua`, and the
//! purge published on the fleet's channel.

use super::subscriber;
use super::RemoteTier;
use crate::cache::selector::Selector;
use redis::AsyncCommands;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

impl RemoteTier {
    /// Removes (or soft-purges) what `selector` picks in Redis and tells every proxy; returns
    /// how many objects Redis held.
    pub async fn invalidate(&self, selector: &Selector, soft: bool) -> u64 {
        let keys = self.selected_keys(selector).await;
        let mut purged = 0;
        for batch in self.batches(keys) {
            let count: Option<u64> = self
                .run(|mut connection| async move {
                    let mut invocation = self.scripts.purge.prepare_invoke();
                    for object in batch {
                        invocation.key(object);
                    }
                    invocation
                        .arg(if soft { "1" } else { "0" })
                        .invoke_async(&mut connection)
                        .await
                })
                .await;
            purged += count.unwrap_or(0);
        }
        self.counters.purged.fetch_add(purged, Ordering::Relaxed);
        let message = subscriber::Message::new(&self.instance, selector, soft).encode();
        let channel = self.channel();
        let _: Option<u64> = self
            .run(|mut connection| async move { connection.publish(channel, message).await })
            .await;
        purged
    }

    /// The object keys of `storage_keys` in batches one script may touch: up to 256 on one
    /// server; on a cluster, the keys of one primary key (one slot) at a time.
    fn batches(&self, storage_keys: Vec<String>) -> Vec<Vec<String>> {
        if !self.connection.is_cluster() {
            return storage_keys
                .chunks(256)
                .map(|chunk| chunk.iter().map(|key| self.key("obj", key)).collect())
                .collect();
        }
        let mut by_slot: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in storage_keys {
            let object = self.key("obj", &key);
            let slot = object.split('}').next().unwrap_or_default().to_owned();
            by_slot.entry(slot).or_default().push(object);
        }
        by_slot.into_values().collect()
    }

    /// The storage keys `selector` picks in Redis.
    async fn selected_keys(&self, selector: &Selector) -> Vec<String> {
        let members = |set: String| async move {
            self.run(|mut connection| async move { connection.smembers(set).await })
                .await
                .unwrap_or_default()
        };
        match selector {
            Selector::Key(key) => {
                let mut keys: Vec<String> = members(self.key("var", key)).await;
                keys.push(key.clone());
                keys
            }
            Selector::Tag(tag) => members(self.tag_key(tag)).await,
            Selector::Prefix(prefix) => self.scan_prefix(prefix).await,
            // Route purges follow key template changes, which make old keys unreachable
            // anyway; Redis lets them expire.
            Selector::Route(_) => Vec::new(),
        }
    }

    /// Every stored key starting with `prefix` (SCAN: purges by prefix are rare, and an index
    /// would cost every store a write). A cluster has no SCAN across its nodes, so there it is
    /// KEYS, which the crate sends to every primary.
    async fn scan_prefix(&self, prefix: &str) -> Vec<String> {
        let layout = format!("{}cache:", self.settings.key_prefix);
        // The hash tag is 16 hex digits in braces (see `key`).
        let pattern = format!(
            "{layout}{{{}}}:obj:{}*",
            "?".repeat(16),
            glob_escape(prefix)
        );
        let cluster = self.connection.is_cluster();
        let found: Option<Vec<String>> = self
            .run(|mut connection| async move {
                if cluster {
                    return redis::cmd("KEYS")
                        .arg(&pattern)
                        .query_async(&mut connection)
                        .await;
                }
                let mut keys = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut connection)
                        .await?;
                    keys.extend(batch);
                    if next == 0 {
                        return Ok(keys);
                    }
                    cursor = next;
                }
            })
            .await;
        found
            .unwrap_or_default()
            .into_iter()
            .filter_map(|key| {
                let tagged = key.strip_prefix(&layout)?.get(18..)?;
                tagged.strip_prefix(":obj:").map(str::to_owned)
            })
            .collect()
    }
}

/// `text` with Redis glob's special characters escaped, so a prefix matches literally.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn a_prefix_matches_literally() {
        for (prefix, pattern) in [
            ("GET:/data/", "GET:/data/"),
            ("GET:/a*b?", "GET:/a\\*b\\?"),
            ("[x]\\", "\\[x\\]\\\\"),
        ] {
            assert_eq!(glob_escape(prefix), pattern);
        }
    }
}

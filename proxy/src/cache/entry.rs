//! One stored response (`Entry`), what it is built from (`NewEntry`), the storage key of one
//! variant, and the size an object is charged against its tier's `max_bytes`.

use super::policy::{self, TtlSource, Usability};
use super::{ENTRY_OVERHEAD, HEADER_OVERHEAD, VARIANT_SEPARATOR};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bytes `headers` are charged for.
pub(super) fn headers_size(headers: &[(HeaderName, HeaderValue)]) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + HEADER_OVERHEAD)
        .sum()
}

/// The bytes an object with this storage key is charged for.
pub(super) fn object_size(key: &str, new: &NewEntry) -> usize {
    new.body.len() + key.len() + headers_size(&new.headers) + ENTRY_OVERHEAD
}

/// The storage key of one variant of `primary`: the key itself when the response does not
/// vary, else the key followed by each varying request header's value (absent headers are
/// written without `=`, so "absent" and "empty" are different variants).
pub fn variant_key(primary: &str, values: &[(String, Option<String>)]) -> String {
    let mut key = primary.to_string();
    for (name, value) in values {
        key.push(VARIANT_SEPARATOR);
        key.push_str(name);
        if let Some(value) = value {
            key.push('=');
            key.push_str(value);
        }
    }
    key
}

/// One stored response.
#[derive(Debug)]
pub struct Entry {
    pub key: Arc<str>,
    /// The route that stored it, so a change of that route's key template can drop it.
    pub route: Arc<str>,
    pub(super) id: u64,
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Stored from a HEAD response: it has no body and cannot answer a GET.
    pub head_only: bool,
    pub stored_at: Instant,
    pub ttl: Duration,
    pub ttl_source: TtlSource,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub tags: Vec<String>,
    /// Request header values this response varies on, as they were when it was stored.
    pub vary: Vec<(String, Option<String>)>,
    pub size: usize,
    pub(super) tier_hits: AtomicU32,
    pub(super) total_hits: AtomicU64,
    pub(super) referenced: AtomicBool,
    pub(super) tier_entered: Mutex<Instant>,
    pub(super) soft_purged: AtomicBool,
    pub(super) refreshing: AtomicBool,
}

/// What a new entry is built from.
#[derive(Debug)]
pub struct NewEntry {
    pub key: String,
    pub route: String,
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub head_only: bool,
    pub ttl: Duration,
    pub ttl_source: TtlSource,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub tags: Vec<String>,
    pub vary: Vec<(String, Option<String>)>,
}

impl Entry {
    /// The object `new` stored under storage key `key`, charged `size` bytes.
    pub(super) fn new(id: u64, key: String, size: usize, new: NewEntry) -> Arc<Entry> {
        Arc::new(Entry {
            key: Arc::from(key),
            route: Arc::from(new.route),
            id,
            status: new.status,
            headers: new.headers,
            body: new.body,
            head_only: new.head_only,
            stored_at: Instant::now(),
            ttl: new.ttl,
            ttl_source: new.ttl_source,
            stale_while_revalidate: new.stale_while_revalidate,
            stale_if_error: new.stale_if_error,
            tags: new.tags,
            vary: new.vary,
            size,
            tier_hits: AtomicU32::new(0),
            total_hits: AtomicU64::new(0),
            referenced: AtomicBool::new(false),
            tier_entered: Mutex::new(Instant::now()),
            soft_purged: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
        })
    }

    /// An object read back from a shared tier, stored `age` ago by some proxy.
    pub(super) fn restored(
        id: u64,
        key: String,
        size: usize,
        new: NewEntry,
        age: Duration,
    ) -> Arc<Entry> {
        let mut entry = Entry::new(id, key, size, new);
        if let Some(entry) = Arc::get_mut(&mut entry) {
            let now = Instant::now();
            entry.stored_at = now.checked_sub(age).unwrap_or(now);
        }
        entry
    }

    pub fn age(&self) -> Duration {
        self.stored_at.elapsed()
    }

    pub fn usability(&self) -> Usability {
        if self.soft_purged.load(Ordering::Relaxed) {
            // A soft-purged object is served stale while one request refreshes it.
            return Usability::StaleRevalidate;
        }
        policy::usability(
            self.age(),
            self.ttl,
            self.stale_while_revalidate,
            self.stale_if_error,
        )
    }

    pub fn ttl_left(&self) -> Duration {
        self.ttl.saturating_sub(self.age())
    }

    pub fn hits(&self) -> u64 {
        self.total_hits.load(Ordering::Relaxed)
    }

    /// Claims the background refresh of a stale object; only the first caller gets it.
    pub fn claim_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Gives a failed refresh's claim back, so the next request for the stale object tries
    /// again instead of every request being served stale until the window ends.
    pub fn release_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// Whether this object answers a request with these header values (its `Vary`).
    pub fn matches_vary(&self, header: &dyn Fn(&str) -> Option<String>) -> bool {
        self.vary.iter().all(|(name, value)| header(name) == *value)
    }

    /// The first stored value of a response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    pub fn validators(&self) -> policy::Validators<'_> {
        policy::Validators {
            etag: self.header("etag"),
            last_modified: self.header("last-modified"),
        }
    }

    pub(super) fn headers_size(&self) -> usize {
        headers_size(&self.headers)
    }

    /// The route key this object was stored under, without its variant part.
    pub fn primary_key(&self) -> &str {
        self.key
            .split(VARIANT_SEPARATOR)
            .next()
            .unwrap_or(&self.key)
    }

    /// How long after it was stored the object stays worth keeping: its TTL and the longer
    /// stale window. Saturating, so that no lifetime can make the sweeper's sum overflow.
    pub(super) fn keep_for(&self) -> Duration {
        self.ttl
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
    }
}

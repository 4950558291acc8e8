//! The multi-tier response cache: tiers L1..Ln (first is hottest), each bounded by entries and
//! bytes and evicting with CLOCK (second chance), objects entering the last tier, moving up
//! after `promotion.hits` hits and down when evicted or when their tier's TTL ends, plus
//! per-key fill locks for request coalescing. A plain hit takes only read locks (and its
//! object's own `tier_entered` mutex); the hit that promotes an object moves it, with the
//! write locks a move takes (see ARCHITECTURE.md's invariants).
//!
//! One concept per module: `entry` (a stored object and its size), `tier` (one CLOCK tier and
//! its counters), `moves` (objects between two tiers), `store` (lookup, insert, freshen,
//! placement and sweeping over all tiers), `fill` (who fetches a missing key),
//! `request_lookup` (the protocol for one request, as one call with an `Outcome`), `storing`
//! (what becomes of the origin's answer, as one call with a `Storing` outcome), `fleet` (what
//! the store does with the shared tier), `shared_tier`, `invalidation` (purges and how a request
//! for one is read), `selector` (what a purge selects), `object_report` (one object's place) and
//! `handle` (the store that follows config reloads). `policy` and `codec` are the pure parts.

pub mod codec;
mod entry;
mod fill;
mod fleet;
mod handle;
mod invalidation;
mod moves;
mod object_report;
pub mod policy;
pub mod remote;
mod request_lookup;
mod selector;
mod shared_tier;
mod store;
mod storing;
mod tier;

#[cfg(test)]
mod tests;

pub use entry::{variant_key, Entry, NewEntry};
pub use fill::{Fill, FillGuard};
pub use handle::{CacheConfig, CacheHandle};
pub use invalidation::{Invalidation, InvalidationError};
pub use object_report::EntryReport;
pub use remote::RemoteTier;
pub use request_lookup::{Lookup, Outcome};
pub use selector::Selector;
pub use store::{CacheStore, Found};
pub use storing::{Collect, Lifetimes, OriginResponse, Storing};
pub use tier::TierStats;

/// How many shards each tier's map, the fill table and the move registry are split into.
const SHARDS: usize = 16;

/// The shard `key` lives in, in every sharded table of the cache. Here rather than in `tier`,
/// so that `moves` and `fill` use it without importing the tier that imports them.
fn shard_of(key: &str) -> usize {
    use std::hash::BuildHasher as _;
    // A fixed hasher: shard choice only spreads lock contention, it is not security relevant.
    let hasher =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    (hasher.hash_one(key) as usize) % SHARDS
}

/// How many times a lookup scans the tiers when objects moved while it looked. A move takes
/// microseconds; more passes than this means moves are constant and a miss is acceptable.
const MAX_SCANS: usize = 8;

/// Separates a route's key from the request header values of one variant in a storage key.
/// Neither a rendered key nor a header value can contain a newline, so the split is exact.
const VARIANT_SEPARATOR: char = '\n';

/// Memory an object costs beyond its key, headers and body: the `Entry` itself, its `Arc`s, its
/// map slot, its CLOCK ring item and the allocator's rounding. Counting it keeps `max_bytes` a
/// bound on memory, not only on payload, for small objects. Calibrated with 1 KiB objects
/// (`bench/cachememory.sh OBJECT_KIB=1`): about 2.9 KiB of RSS each with seven headers.
pub const ENTRY_OVERHEAD: usize = 1024;

/// Memory one stored header costs beyond its name and value bytes (its `Vec` slot and the
/// value's own allocation).
pub const HEADER_OVERHEAD: usize = 128;

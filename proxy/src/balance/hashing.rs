//! Consistent hashing: a request's key picks a server so that a change of membership moves
//! only the keys of the server that came or went (about 1/N of them). Two algorithms: a ring of
//! virtual nodes (ketama; nginx's `hash ... consistent`, Envoy's `RING_HASH`) and Google's
//! Maglev lookup table (Envoy's `MAGLEV`). A `HashTable` is built for one healthy set (`mask`)
//! and cached like a `Schedule`, so a request only hashes its key and looks it up.

#[cfg(test)]
mod tests;

use super::latency::mix;
use super::Candidate;

/// Virtual nodes per server of the largest weight on the ring: enough that shares are within a
/// few percent of fair (the spread shrinks as 1/sqrt(nodes); at 160, ketama's number, a 1:1:1:3
/// group's heavy server had 56% instead of 50%). At most 64 x 400 points, built per health change.
pub const RING_NODES: u32 = 400;
/// Maglev's table size: a prime well above 100 x the 64 servers a group may have, as the
/// paper advises, so shares differ by well under 1%.
pub const MAGLEV_SIZE: usize = 65_537;

/// A stable 64-bit hash of a key (FNV-1a, then splitmix64's finaliser so nearby keys land far
/// apart): the same bytes give the same number in every process and version, unlike std's
/// `DefaultHasher`, so a fleet of proxies agrees.
pub fn key_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// Points on the ring, sorted, each with its server.
    Ring(Vec<(u64, u8)>),
    /// `MAGLEV_SIZE` entries, each a server index.
    Maglev(Vec<u8>),
}

/// A lookup structure for one healthy set of servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashTable {
    pub mask: u64,
    /// The weights it was built for, so a reload that changes them rebuilds it.
    pub weights: Vec<u32>,
    layout: Layout,
}

impl HashTable {
    /// An empty table, which no mask matches: the first lookup builds the real one.
    pub fn empty() -> HashTable {
        HashTable {
            mask: u64::MAX,
            weights: Vec::new(),
            layout: Layout::Ring(Vec::new()),
        }
    }

    /// The ring over the servers in `mask`: server `i` (identified by `ids[i]`, a hash of its
    /// address, so positions do not depend on the order of the list) gets
    /// `RING_NODES x weight / max weight` points, at least one.
    pub fn ring(mask: u64, ids: &[u64], weights: &[u32]) -> HashTable {
        let max = members(mask, ids.len())
            .map(|i| weights[i])
            .max()
            .unwrap_or(1)
            .max(1);
        let mut points = Vec::new();
        for i in members(mask, ids.len()) {
            let nodes = (u64::from(RING_NODES) * u64::from(weights[i]) / u64::from(max)).max(1);
            for node in 0..nodes {
                points.push((mix(ids[i] ^ mix(node)), i as u8));
            }
        }
        points.sort_unstable();
        HashTable {
            mask,
            weights: weights.to_vec(),
            layout: Layout::Ring(points),
        }
    }

    /// Maglev's table over the servers in `mask`: each server walks its own permutation of the
    /// slots (an offset and a skip from its id) and takes turns claiming the next free slot;
    /// a lighter server takes its turn only in `weight / max weight` of the rounds (Envoy's
    /// weighted Maglev), so its share of the table follows its weight.
    pub fn maglev(mask: u64, ids: &[u64], weights: &[u32]) -> HashTable {
        let servers: Vec<usize> = members(mask, ids.len()).collect();
        let mut table = vec![u8::MAX; if servers.is_empty() { 0 } else { MAGLEV_SIZE }];
        let size = MAGLEV_SIZE as u64;
        let max = servers
            .iter()
            .map(|&i| weights[i])
            .max()
            .unwrap_or(1)
            .max(1);
        let permutation: Vec<(u64, u64)> = servers
            .iter()
            .map(|&i| {
                (
                    mix(ids[i]) % size,
                    mix(ids[i] ^ 0x5bd1_e995) % (size - 1) + 1,
                )
            })
            .collect();
        let mut next = vec![0u64; servers.len()];
        let mut filled = 0;
        let mut round: u64 = 0;
        while filled < table.len() {
            round += 1;
            for (k, &i) in servers.iter().enumerate() {
                let weight = u64::from(weights[i]);
                let max = u64::from(max);
                if round * weight / max == (round - 1) * weight / max {
                    continue;
                }
                let (offset, skip) = permutation[k];
                loop {
                    let slot = ((offset + next[k] * skip) % size) as usize;
                    next[k] += 1;
                    if table[slot] == u8::MAX {
                        table[slot] = i as u8;
                        filled += 1;
                        break;
                    }
                }
                if filled == table.len() {
                    break;
                }
            }
        }
        HashTable {
            mask,
            weights: weights.to_vec(),
            layout: Layout::Maglev(table),
        }
    }

    /// The server for `key`: its owner when eligible, else the next eligible one along the
    /// ring (or the table), which is where its keys go while it is excluded or full.
    /// Returns the server and whether it is the key's owner.
    pub fn lookup(&self, key: u64, candidates: &[Candidate]) -> Option<(usize, bool)> {
        let eligible = |i: usize| candidates.get(i).is_some_and(Candidate::eligible);
        match &self.layout {
            Layout::Ring(points) => {
                if points.is_empty() {
                    return None;
                }
                let start = points.partition_point(|&(point, _)| point < key);
                (0..points.len())
                    .map(|offset| usize::from(points[(start + offset) % points.len()].1))
                    .enumerate()
                    .find(|&(_, i)| eligible(i))
                    .map(|(offset, i)| (i, offset == 0))
            }
            Layout::Maglev(table) => {
                if table.is_empty() {
                    return None;
                }
                let start = (key % table.len() as u64) as usize;
                let owner = usize::from(table[start]);
                if eligible(owner) {
                    return Some((owner, true));
                }
                // Excluded by a retry or at its limit: the entries after the owner's slot are a
                // well-mixed sequence of the others, the same for every request of this key.
                (1..table.len())
                    .map(|offset| usize::from(table[(start + offset) % table.len()]))
                    .find(|&i| eligible(i))
                    .map(|i| (i, false))
            }
        }
    }
}

fn members(mask: u64, count: usize) -> impl Iterator<Item = usize> {
    (0..count.min(64)).filter(move |&i| mask & (1 << i) != 0)
}

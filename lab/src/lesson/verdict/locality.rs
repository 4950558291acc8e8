//! The verdict of `hash-locality`: whether hashing on the item id raised the gateways' local cache hit ratio over
//! round robin, and why (or why not) from the sizes. Pure, table-tested.

use super::{ms, pct};

/// One phase of `hash-locality`, from the answers' `X-Local-Cache` and the latencies clients saw.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalityRun {
    pub name: String,
    pub hits: u64,
    pub misses: u64,
    pub p50: f64,
    pub p99: f64,
}

impl LocalityRun {
    /// Hits among the answers that named a lookup, from 0 to 1.
    pub fn hit_ratio(&self) -> f64 {
        hit_ratio(self.hits, self.misses)
    }
}

/// Hits among lookups, from 0 to 1 (0 without lookups).
pub fn hit_ratio(hits: u64, misses: u64) -> f64 {
    let looked_up = hits + misses;
    if looked_up == 0 {
        0.0
    } else {
        hits as f64 / looked_up as f64
    }
}

/// The lesson's sizes: distinct item ids asked for, entries of each gateway's cache, gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub keys: u64,
    pub entries: u64,
    pub gateways: u64,
}

/// How far apart two hit ratios must be for one strategy to win: below it, the difference is the run's noise (which
/// ids came first, how the ring split them).
pub const MARGIN: f64 = 0.05;

/// `hash-locality`: round robin (`spread`) against a hash on the item id (`hashed`).
pub fn hash_locality(sizes: Sizes, spread: &LocalityRun, hashed: &LocalityRun) -> String {
    let Sizes {
        keys,
        entries,
        gateways,
    } = sizes;
    if spread.hits + spread.misses == 0 || hashed.hits + hashed.misses == 0 {
        return "no answer of a run carried X-Local-Cache, so the gateways' local caches were off or never \
                reached (a cache in front answered, or every request failed): there is nothing to compare"
            .to_owned();
    }
    let (rr, hash) = (spread.hit_ratio(), hashed.hit_ratio());
    let numbers = format!(
        "{} of the requests hit a gateway's local cache under {} against {} under {} (p50 {} against {}, p99 {} \
         against {})",
        pct(hash),
        hashed.name,
        pct(rr),
        spread.name,
        ms(hashed.p50),
        ms(spread.p50),
        ms(hashed.p99),
        ms(spread.p99)
    );
    let steady = if keys == 0 {
        0.0
    } else {
        (entries as f64 / keys as f64).min(1.0)
    };
    if hash > rr + MARGIN {
        format!(
            "Hashing on the item id wins: {numbers}. Round robin sends every gateway all {keys} ids, and each keeps \
             only {entries} of them, so at best {} of its lookups hit, and the {gateways} gateways hold the same \
             ids {gateways} times over; the hash sends each id to one gateway, about {} ids each, which fit its \
             {entries} entries, so the fleet holds the whole set once. Both runs include each id's first miss: the \
             longer the run, the nearer the hash gets to every lookup hitting.",
            pct(steady),
            keys.div_ceil(gateways.max(1))
        )
    } else if rr > hash + MARGIN {
        format!(
            "Round robin won, which the sizes do not predict: {numbers}. Look at how evenly the hash split the ids \
             ({keys} ids over {gateways} gateways of {entries} entries): one gateway given far more than its share \
             evicts as round robin does."
        )
    } else {
        let why = if keys <= entries {
            format!(
                "all {keys} ids fit one gateway's {entries} entries, so it does not matter which gateway an id goes to"
            )
        } else if keys > entries * gateways {
            format!(
                "the {keys} ids exceed even the whole fleet's {} entries, so every gateway evicts under either \
                 strategy",
                entries * gateways
            )
        } else {
            "the runs were too short for the caches to fill: each id's first request misses under either strategy"
                .to_owned()
        };
        format!(
            "Neither strategy won: {numbers}, within {} of each other, because {why}.",
            pct(MARGIN)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, hits: u64, misses: u64, p50: f64) -> LocalityRun {
        LocalityRun {
            name: name.to_owned(),
            hits,
            misses,
            p50,
            p99: p50 * 3.0,
        }
    }

    const LAB: Sizes = Sizes {
        keys: 200,
        entries: 100,
        gateways: 3,
    };

    #[test]
    fn the_verdict_follows_the_hit_ratios_and_explains_them_from_the_sizes() {
        let rr = run("round robin", 300, 700, 120.0);
        let cases: &[(&str, Sizes, LocalityRun, &[&str])] = &[
            (
                "hash well above round robin",
                LAB,
                run("hash", 750, 250, 1.5),
                &[
                    "Hashing on the item id wins: 75% of the requests hit a gateway's local cache under hash \
                     against 30% under round robin (p50 1.5 ms against 120 ms",
                    "at best 50% of its lookups hit",
                    "about 67 ids each",
                ],
            ),
            (
                "within the margin, the working set fits one cache",
                Sizes {
                    keys: 80,
                    ..LAB
                },
                run("hash", 330, 670, 110.0),
                &[
                    "Neither strategy won: 33% of the requests",
                    "within 5% of each other, because all 80 ids fit one gateway's 100 entries",
                ],
            ),
            (
                "within the margin, the working set exceeds the fleet",
                Sizes {
                    keys: 1000,
                    ..LAB
                },
                run("hash", 310, 690, 110.0),
                &["exceed even the whole fleet's 300 entries"],
            ),
            (
                "within the margin, sizes that should favour the hash",
                LAB,
                run("hash", 320, 680, 110.0),
                &["the runs were too short for the caches to fill"],
            ),
            (
                "round robin ahead",
                LAB,
                run("hash", 100, 900, 200.0),
                &["Round robin won, which the sizes do not predict: 10% of the requests"],
            ),
            (
                "no lookups at all",
                LAB,
                run("hash", 0, 0, 1.0),
                &["no answer of a run carried X-Local-Cache"],
            ),
        ];
        for (name, sizes, hashed, expected) in cases {
            let verdict = hash_locality(*sizes, &rr, hashed);
            for part in *expected {
                assert!(
                    verdict.contains(part),
                    "{name}: {part:?} not in {verdict:?}"
                );
            }
        }
    }

    #[test]
    fn the_hit_ratio_counts_only_lookups() {
        assert_eq!(run("r", 1, 3, 0.0).hit_ratio(), 0.25);
        assert_eq!(run("r", 0, 0, 0.0).hit_ratio(), 0.0);
    }
}

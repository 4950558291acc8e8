//! The LRU's rules as tables, and the shared cache's counting and resize.

use super::*;

/// One step of a table: `Put(id)` stores `id` (its value is the id), `Get(id, expected)` looks it up.
#[derive(Debug, Clone, Copy)]
enum Step {
    Put(i64),
    Get(i64, Expect),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Off,
    Hit,
    Miss,
}

use Expect::{Hit, Miss, Off};
use Step::{Get, Put};

#[test]
fn the_lru_keeps_the_most_recently_used_ids_within_its_capacity() {
    let cases: &[(&str, usize, &[Step])] = &[
        (
            "off: nothing is stored, every lookup is off",
            0,
            &[Put(1), Get(1, Off), Get(2, Off)],
        ),
        ("a stored id hits, another misses", 2, &[Put(1), Get(1, Hit), Get(2, Miss)]),
        (
            "the least recently stored id goes first",
            2,
            &[Put(1), Put(2), Put(3), Get(1, Miss), Get(2, Hit), Get(3, Hit)],
        ),
        (
            "a hit makes an id the most recently used",
            2,
            &[Put(1), Put(2), Get(1, Hit), Put(3), Get(2, Miss), Get(1, Hit), Get(3, Hit)],
        ),
        (
            "storing an id again refreshes it without taking a second slot",
            2,
            &[Put(1), Put(2), Put(1), Put(3), Get(2, Miss), Get(1, Hit), Get(3, Hit)],
        ),
        (
            "one entry: every other id replaces it",
            1,
            &[Put(1), Get(1, Hit), Put(2), Get(1, Miss), Get(2, Hit)],
        ),
        (
            "a cyclic scan over more ids than entries never hits (LRU's worst case, what round robin does to a \
             working set larger than one gateway's cache)",
            3,
            &[
                Get(1, Miss), Put(1), Get(2, Miss), Put(2), Get(3, Miss), Put(3), Get(4, Miss), Put(4),
                Get(1, Miss), Put(1), Get(2, Miss), Put(2),
            ],
        ),
    ];
    for (name, capacity, steps) in cases {
        let mut lru = ItemLru::new(*capacity);
        assert_eq!(lru.capacity(), *capacity, "{name}");
        for (index, step) in steps.iter().enumerate() {
            match *step {
                Put(id) => lru.put(id, id),
                Get(id, expected) => {
                    let got = match lru.get(id) {
                        Lookup::Off => Off,
                        Lookup::Hit(value) => {
                            assert_eq!(value, id, "{name}: step {index}");
                            Hit
                        }
                        Lookup::Miss => Miss,
                    };
                    assert_eq!(got, expected, "{name}: step {index} ({step:?})");
                }
            }
            assert!(lru.len() <= *capacity, "{name}: over capacity");
        }
    }
}

#[test]
fn lookups_are_labelled_only_while_on() {
    assert_eq!(Lookup::<()>::Off.label(), None);
    assert_eq!(Lookup::Hit(()).label(), Some("hit"));
    assert_eq!(Lookup::<()>::Miss.label(), Some("miss"));
}

fn item(n: i64) -> Item {
    Item {
        db_data: serde_json::json!({ "id": n }),
        service_data: serde_json::json!({ "message": "ok" }),
    }
}

#[test]
fn the_shared_cache_counts_resizes_cold_and_refuses_a_huge_size() {
    let registry = Registry::new();
    let cache = LocalCache::register(&registry, 0).unwrap();
    assert_eq!(cache.get(1), Lookup::Off);
    cache.put(1, item(1));
    assert_eq!(
        cache.status(),
        Status {
            entries: 0,
            stored: 0,
            hits: 0,
            misses: 0
        },
        "off counts and stores nothing"
    );

    cache.resize(2).unwrap();
    assert_eq!(cache.get(1), Lookup::Miss);
    cache.put(1, item(1));
    assert_eq!(cache.get(1), Lookup::Hit(Arc::new(item(1))));
    assert_eq!(
        cache.status(),
        Status {
            entries: 2,
            stored: 1,
            hits: 1,
            misses: 1
        }
    );

    // The same size again still empties it: each phase of a lesson starts cold.
    cache.resize(2).unwrap();
    assert_eq!(cache.status().stored, 0);
    assert_eq!(cache.get(1), Lookup::Miss);

    let error = cache.resize(MAX_ENTRIES + 1).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "entries must be at most {MAX_ENTRIES} (0 turns the cache off), got {}",
            MAX_ENTRIES + 1
        )
    );
    assert_eq!(cache.status().entries, 2, "a refused size changes nothing");
    assert!(LocalCache::register(&Registry::new(), MAX_ENTRIES + 1).is_err());

    let text = {
        use prometheus::Encoder;
        let mut buffer = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut buffer)
            .unwrap();
        String::from_utf8(buffer).unwrap()
    };
    assert!(
        text.contains("scalelab_gateway_local_cache_requests_total{result=\"hit\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("scalelab_gateway_local_cache_requests_total{result=\"miss\"} 2"),
        "{text}"
    );
}

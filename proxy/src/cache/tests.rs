use super::policy::*;
use super::*;

fn settings(entries: &[usize], promotion_hits: u32) -> CacheSettings {
    CacheSettings {
        max_object_bytes: 1 << 20,
        cacheable_statuses: vec![200],
        lock_timeout: Duration::from_secs(1),
        tiers: entries
            .iter()
            .enumerate()
            .map(|(i, &max_entries)| TierSettings {
                name: format!("L{}", i + 1),
                max_entries,
                max_bytes: 1 << 20,
                ttl: Duration::from_secs(3600),
            })
            .collect(),
        promotion_hits,
    }
}

fn object(key: &str, tags: &[&str]) -> NewEntry {
    NewEntry {
        key: key.to_string(),
        route: "r".to_string(),
        status: 200,
        headers: Vec::new(),
        body: Bytes::from_static(b"body"),
        head_only: false,
        ttl: Duration::from_secs(60),
        ttl_source: TtlSource::RouteDefault,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        vary: Vec::new(),
    }
}

fn tier_of(store: &CacheStore, key: &str) -> Option<String> {
    store.report(key).map(|r| r.tier)
}

#[test]
fn new_objects_enter_the_last_tier_and_climb_after_promotion_hits() {
    let store = CacheStore::new(settings(&[10, 10, 10], 2));
    assert_eq!(store.insert(object("k", &[])).as_deref(), Some("L3"));
    let first = store.lookup("k").expect("hit");
    assert_eq!(
        (first.tier_name.as_str(), first.promoted.as_deref()),
        ("L3", None)
    );
    let second = store.lookup("k").expect("hit");
    assert_eq!(
        (second.tier_name.as_str(), second.promoted.as_deref()),
        ("L2", Some("L3->L2"))
    );
    assert_eq!(tier_of(&store, "k").as_deref(), Some("L2"));
    store.lookup("k");
    let promoted = store.lookup("k").expect("hit");
    assert_eq!(promoted.promoted.as_deref(), Some("L2->L1"));
    for _ in 0..5 {
        assert_eq!(store.lookup("k").expect("hit").tier_name, "L1");
    }
    let stats = store.stats();
    assert_eq!(
        (
            stats[2].promotions,
            stats[1].promotions,
            stats[0].promotions
        ),
        (1, 1, 0)
    );
    assert_eq!(stats[2].sets, 1);
}

#[test]
fn capacity_eviction_demotes_one_tier_and_falls_out_of_the_last() {
    let store = CacheStore::new(settings(&[1, 1, 2], 1));
    store.insert(object("a", &[]));
    store.lookup("a"); // L3 -> L2
    store.lookup("a"); // L2 -> L1
    store.insert(object("b", &[]));
    store.lookup("b"); // L3 -> L2
    store.lookup("b"); // L2 -> L1: evicts a from L1 into L2
    assert_eq!(tier_of(&store, "b").as_deref(), Some("L1"));
    assert_eq!(tier_of(&store, "a").as_deref(), Some("L2"));
    assert_eq!(store.stats()[0].demotions, 1);

    // The last tier holds two; a third object pushes the oldest unreferenced one out.
    store.insert(object("c", &[]));
    store.insert(object("d", &[]));
    store.insert(object("e", &[]));
    let present: Vec<bool> = ["c", "d", "e"]
        .iter()
        .map(|k| store.report(k).is_some())
        .collect();
    assert_eq!(present, vec![false, true, true]);
    assert_eq!(store.stats()[2].evictions, 1);
    assert_eq!(store.stats()[2].items, 2);
}

#[test]
fn clock_gives_referenced_objects_a_second_chance() {
    let store = CacheStore::new(settings(&[2], 100));
    store.insert(object("old", &[]));
    store.insert(object("young", &[]));
    store.lookup("old");
    store.insert(object("new", &[]));
    assert!(
        store.report("old").is_some(),
        "a referenced object survives one sweep"
    );
    assert!(store.report("young").is_none());
}

#[test]
fn byte_bound_is_enforced_per_tier() {
    // Each object costs its 30-byte body, its 1-byte key and the per-entry overhead.
    let object_size = 30 + 1 + ENTRY_OVERHEAD;
    let mut s = settings(&[100], 100);
    s.tiers[0].max_bytes = 3 * object_size + object_size / 2;
    let store = CacheStore::new(s);
    for key in ["a", "b", "c", "d", "e"] {
        let mut o = object(key, &[]);
        o.body = Bytes::from(vec![0u8; 30]);
        store.insert(o);
    }
    let stats = store.stats();
    assert_eq!(stats[0].bytes, 3 * object_size, "{stats:?}");
    assert_eq!(stats[0].items, 3);
}

#[test]
fn invalidation_by_key_prefix_tag_and_soft() {
    let store = CacheStore::new(settings(&[10, 10], 1));
    store.insert(object("my_data", &["data"]));
    store.insert(object("complex_data_1", &["complex", "data"]));
    store.insert(object("complex_data_2", &["complex"]));
    store.lookup("complex_data_2"); // moves it to L1: invalidation must look in every tier
    assert_eq!(store.invalidate(&Selector::Key("my_data".into()), false), 1);
    assert_eq!(store.invalidate(&Selector::Key("my_data".into()), false), 0);
    assert_eq!(store.invalidate(&Selector::Tag("complex".into()), true), 2);
    let soft = store.lookup("complex_data_1").expect("still stored");
    assert_eq!(soft.entry.usability(), Usability::StaleRevalidate);
    assert!(soft.entry.claim_refresh());
    assert!(!soft.entry.claim_refresh(), "only one request refreshes");
    assert_eq!(
        store.invalidate(&Selector::Prefix("complex_".into()), false),
        2
    );
    assert_eq!(store.stats().iter().map(|t| t.items).sum::<usize>(), 0);
}

#[test]
fn expired_objects_are_removed_on_lookup_and_sweep() {
    let store = CacheStore::new(settings(&[10], 1));
    let mut o = object("k", &[]);
    o.ttl = Duration::ZERO;
    store.insert(o);
    assert!(store.lookup("k").is_none());
    assert_eq!(store.stats()[0].expirations, 1);
    let mut o = object("j", &[]);
    o.ttl = Duration::ZERO;
    store.insert(o);
    store.sweep();
    assert_eq!(store.stats()[0].items, 0);
}

#[test]
fn tier_ttl_end_moves_a_fresh_object_down() {
    let mut s = settings(&[10, 10], 2);
    s.tiers[0].ttl = Duration::ZERO;
    let store = CacheStore::new(s);
    store.insert(object("k", &[]));
    store.lookup("k");
    assert_eq!(
        store.lookup("k").expect("hit").promoted.as_deref(),
        Some("L2->L1")
    );
    let found = store.lookup("k").expect("still fresh");
    assert_eq!(found.tier_name, "L2");
    assert_eq!(store.stats()[0].demotions, 1);
}

#[test]
fn resize_keeps_what_fits() {
    let store = CacheStore::new(settings(&[10, 10], 1));
    for key in ["a", "b", "c"] {
        store.insert(object(key, &[]));
    }
    let smaller = store.resized(settings(&[10, 2], 1));
    assert_eq!(smaller.stats()[1].items, 2);
}

#[tokio::test]
async fn fill_lock_has_one_leader_and_wakes_waiters_when_dropped() {
    let store = CacheStore::new(settings(&[10], 1));
    let Fill::Leader(guard) = store.begin_fill("k", &|_| true) else {
        panic!("first is leader")
    };
    let Fill::Wait(mut waiter) = store.begin_fill("k", &|_| true) else {
        panic!("second waits")
    };
    drop(guard);
    assert!(
        waiter.changed().await.is_err(),
        "the waiter wakes when the leader goes"
    );
    assert!(matches!(store.begin_fill("k", &|_| true), Fill::Leader(_)));
}

#[test]
fn a_claim_on_a_key_stored_meanwhile_says_look_again_unless_the_object_cannot_answer() {
    let store = CacheStore::new(settings(&[10], 1));
    store.insert(object("k", &[]));
    assert!(matches!(store.begin_fill("k", &|_| true), Fill::Stored));
    // An object that cannot answer this request (another variant, HEAD-only, stale) does not
    // stop it from fetching.
    assert!(matches!(store.begin_fill("k", &|_| false), Fill::Leader(_)));
}

#[test]
fn storable_table() {
    let public = CacheControl::parse(["public, max-age=300"].into_iter());
    let private = CacheControl::parse(["private, max-age=300"].into_iter());
    let no_store = CacheControl::parse(["no-store"].into_iter());
    let plain = CacheControl::default();
    let base = StoreInput {
        method: "GET",
        status: 200,
        cacheable_statuses: &[200, 203, 301, 404],
        response_cc: &plain,
        has_set_cookie: false,
        vary_star: false,
        request_has_authorization: false,
        proxy_verified_token: false,
        content_length: Some(10),
        max_object_bytes: 100,
    };
    let cases: Vec<(StoreInput, Result<(), NotStored>)> = vec![
        (base, Ok(())),
        (
            StoreInput {
                method: "POST",
                ..base
            },
            Err(NotStored::Method),
        ),
        (
            StoreInput {
                status: 500,
                ..base
            },
            Err(NotStored::Status),
        ),
        (
            StoreInput {
                status: 404,
                ..base
            },
            Ok(()),
        ),
        (
            StoreInput {
                response_cc: &no_store,
                ..base
            },
            Err(NotStored::NoStore),
        ),
        (
            StoreInput {
                response_cc: &private,
                ..base
            },
            Err(NotStored::Private),
        ),
        (
            StoreInput {
                has_set_cookie: true,
                ..base
            },
            Err(NotStored::SetCookie),
        ),
        (
            StoreInput {
                vary_star: true,
                ..base
            },
            Err(NotStored::VaryStar),
        ),
        (
            StoreInput {
                request_has_authorization: true,
                ..base
            },
            Err(NotStored::UnverifiedAuthorization),
        ),
        (
            StoreInput {
                request_has_authorization: true,
                proxy_verified_token: true,
                ..base
            },
            Err(NotStored::AuthorizedNotPublic),
        ),
        (
            StoreInput {
                request_has_authorization: true,
                proxy_verified_token: true,
                response_cc: &public,
                ..base
            },
            Ok(()),
        ),
        (
            StoreInput {
                content_length: Some(101),
                ..base
            },
            Err(NotStored::TooLarge),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(storable(&input), expected, "{input:?}");
    }
}

#[test]
fn freshness_precedence_table() {
    let both = CacheControl::parse(["max-age=10, s-maxage=20"].into_iter());
    let max_age = CacheControl::parse(["max-age=10"].into_iter());
    let none = CacheControl::default();
    let default = Duration::from_secs(300);
    let cases = [
        (Some("5"), &both, (5, TtlSource::CacheTtlParam)),
        (Some("x"), &both, (20, TtlSource::SMaxage)),
        (None, &max_age, (10, TtlSource::MaxAge)),
        (None, &none, (300, TtlSource::RouteDefault)),
    ];
    for (param, cc, (seconds, source)) in cases {
        assert_eq!(
            freshness(param, cc, default),
            (Duration::from_secs(seconds), source)
        );
    }
}

#[test]
fn usability_windows() {
    let s = Duration::from_secs;
    let cases = [
        (s(5), Usability::Fresh),
        (s(10), Usability::StaleRevalidate),
        (s(14), Usability::StaleRevalidate),
        (s(15), Usability::StaleIfError),
        (s(69), Usability::StaleIfError),
        (s(70), Usability::Expired),
    ];
    for (age, expected) in cases {
        assert_eq!(usability(age, s(10), s(5), s(60)), expected, "age {age:?}");
    }
}

#[test]
fn variant_keys_separate_present_absent_and_empty_values() {
    let v = |pairs: &[(&str, Option<&str>)]| {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect::<Vec<_>>()
    };
    for (values, expected) in [
        (v(&[]), "k"),
        (
            v(&[("accept-language", Some("fr"))]),
            "k\naccept-language=fr",
        ),
        (v(&[("accept-language", Some(""))]), "k\naccept-language="),
        (v(&[("accept-language", None)]), "k\naccept-language"),
        (
            v(&[("accept-encoding", Some("gzip")), ("accept-language", None)]),
            "k\naccept-encoding=gzip\naccept-language",
        ),
    ] {
        assert_eq!(variant_key("k", &values), expected, "{values:?}");
    }
}

fn varying(key: &str, language: Option<&str>, body: &'static str) -> NewEntry {
    let mut o = object(key, &[]);
    o.vary = vec![("accept-language".to_string(), language.map(str::to_string))];
    o.body = Bytes::from_static(body.as_bytes());
    o
}

fn language(value: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
    move |name: &str| (name == "accept-language").then_some(value.map(str::to_string))?
}

#[test]
fn each_variant_of_a_varying_key_is_its_own_object() {
    let store = CacheStore::new(settings(&[10, 10], 2));
    assert_eq!(store.storage_key("k", &language(Some("en"))), "k");
    store.insert(varying("k", Some("en"), "hello"));
    store.insert(varying("k", Some("fr"), "bonjour"));
    store.insert(varying("k", None, "default"));
    for (value, body) in [
        (Some("en"), "hello"),
        (Some("fr"), "bonjour"),
        (None, "default"),
    ] {
        let key = store.storage_key("k", &language(value));
        let found = store.lookup(&key).expect("variant stored");
        assert_eq!(found.entry.body, body.as_bytes(), "{value:?}");
        assert_eq!(found.entry.primary_key(), "k");
    }
    assert!(store
        .lookup(&store.storage_key("k", &language(Some("de"))))
        .is_none());
    let report = store.report("k").expect("a variant");
    assert_eq!(report.key, "k");
    assert!(report
        .variant
        .is_some_and(|v| v.starts_with("accept-language")));
    // Invalidating the key removes every variant, and the next sweep forgets that it varied.
    assert_eq!(store.invalidate(&Selector::Key("k".into()), false), 3);
    assert!(store.report("k").is_none());
    store.sweep();
    assert!(matches!(
        store.storage_key("k", &language(Some("en"))),
        std::borrow::Cow::Borrowed("k")
    ));
}

#[test]
fn a_key_that_starts_varying_drops_its_plain_object_and_one_that_stops_is_plain_again() {
    let store = CacheStore::new(settings(&[10], 1));
    store.insert(object("k", &[]));
    store.insert(varying("k", Some("en"), "hello"));
    assert_eq!(
        store.stats()[0].items,
        1,
        "the plain object is unreachable, so gone"
    );
    store.insert(object("k", &[]));
    let key = store.storage_key("k", &language(Some("en")));
    assert_eq!(key, "k");
    assert_eq!(store.lookup(&key).expect("plain").entry.body, "body");
}

#[test]
fn a_resize_keeps_what_varies() {
    let store = CacheStore::new(settings(&[10], 1));
    store.insert(varying("k", Some("fr"), "bonjour"));
    let resized = store.resized(settings(&[20], 1));
    let key = resized.storage_key("k", &language(Some("fr")));
    assert_eq!(resized.lookup(&key).expect("kept").entry.body, "bonjour");
}

#[test]
fn not_modified_table() {
    const DATE: &str = "Sat, 28 Nov 2026 07:00:00 GMT";
    const LATER: &str = "Sat, 28 Nov 2026 08:00:00 GMT";
    let stored = Validators {
        etag: Some("\"v1\""),
        last_modified: Some(DATE),
    };
    let weak_stored = Validators {
        etag: Some("W/\"v1\""),
        last_modified: None,
    };
    let no_validators = Validators::default();
    let ask = |inm: Option<&'static str>, ims: Option<&'static str>| Conditionals {
        if_none_match: inm,
        if_modified_since: ims,
    };
    let cases = [
        (ask(Some("\"v1\""), None), stored, true),
        (ask(Some("\"v0\", \"v1\""), None), stored, true),
        (ask(Some("W/\"v1\""), None), stored, true),
        (ask(Some("\"v1\""), None), weak_stored, true),
        (ask(Some("*"), None), stored, true),
        (ask(Some("\"v2\""), None), stored, false),
        // If-None-Match decides alone, even when the date would match.
        (ask(Some("\"v2\""), Some(DATE)), stored, false),
        (ask(None, Some(DATE)), stored, true),
        (ask(None, Some(LATER)), stored, false),
        (ask(None, None), stored, false),
        (ask(Some("*"), None), no_validators, false),
        (ask(None, Some(DATE)), no_validators, false),
    ];
    for (request, validators, expected) in cases {
        assert_eq!(
            not_modified(request, validators),
            expected,
            "{request:?} {validators:?}"
        );
    }
}

/// What one simulated request did in the coalescing race tests.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Hit,
    Origin,
}

/// One request's path through the store as `caching::lookup` walks it: look up, claim the
/// fill, and either go to the origin (store, release) or wait for the leader and look again.
fn request(store: &Arc<CacheStore>, key: &str, between: impl Fn()) -> Outcome {
    loop {
        if store.lookup(key).is_some() {
            return Outcome::Hit;
        }
        between();
        match store.begin_fill(key, &|_| true) {
            Fill::Leader(guard) => {
                store.insert(object(key, &[]));
                drop(guard);
                return Outcome::Origin;
            }
            Fill::Wait(waiter) => {
                // The leader drops its sender when done; spin until then.
                while waiter.has_changed().is_ok() {
                    std::thread::yield_now();
                }
            }
            Fill::Stored => {}
        }
    }
}

#[test]
fn a_request_that_missed_before_the_fill_ended_does_not_lead_a_second_fill() {
    // The interleaving behind the flaky coalescing test, step by step: B looks up and misses,
    // then A fills the key and releases the claim, then B claims.
    let store = CacheStore::new(settings(&[10, 10], 2));
    let late = request(&store, "k", || {
        assert_eq!(request(&store, "k", || {}), Outcome::Origin);
    });
    assert_eq!(
        late,
        Outcome::Hit,
        "B must find A's object, not fetch again"
    );
}

#[test]
fn racing_requests_fill_a_cold_key_once() {
    // Threads race lookup, claim, insert and release on a fresh key, thousands of times.
    let threads = 4;
    for round in 0..10_000 {
        let store = CacheStore::new(settings(&[10, 10], 2));
        let key = format!("k{round}");
        let barrier = std::sync::Barrier::new(threads);
        let origin = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    barrier.wait();
                    if request(&store, &key, std::thread::yield_now) == Outcome::Origin {
                        origin.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(origin.load(Ordering::Relaxed), 1, "round {round}");
    }
}

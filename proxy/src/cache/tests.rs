//! Unit tests of the store (tiers, eviction, expiry, invalidation, variants); the pure policy
//! is tested in `policy`, fill coalescing and its races in `race`.

mod policy;
mod race;
mod request_lookup;
mod storing;

use super::policy::{TtlSource, Usability};
use super::*;
use crate::config::{CacheSettings, TierSettings};
use bytes::Bytes;
use std::time::Duration;

pub(super) fn settings(entries: &[usize], promotion_hits: u32) -> CacheSettings {
    CacheSettings {
        max_object_bytes: 1 << 20,
        cacheable_statuses: vec![200],
        lock_timeout: Duration::from_secs(1),
        tiers: entries
            .iter()
            .enumerate()
            .map(|(i, &max_entries)| TierSettings {
                name: format!("L{}", i + 1),
                kind: crate::config::TierKind::Memory,
                max_entries,
                max_bytes: 1 << 20,
                ttl: Duration::from_secs(3600),
            })
            .collect(),
        promotion_hits,
    }
}

pub(super) fn object(key: &str, tags: &[&str]) -> NewEntry {
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
fn an_object_with_the_longest_lifetimes_is_kept_and_swept_without_overflow() {
    let store = CacheStore::new(settings(&[10], 1));
    let mut forever = object("forever", &[]);
    forever.ttl = Duration::MAX;
    forever.stale_while_revalidate = Duration::MAX;
    forever.stale_if_error = Duration::MAX;
    store.insert(forever);
    let mut short = object("short", &[]);
    short.ttl = Duration::ZERO;
    store.insert(short);
    store.sweep();
    let report = store.report("forever").expect("kept");
    assert!(report.ttl_left_seconds > 0.0);
    assert!(
        store.report("short").is_none(),
        "the sweep still expires others"
    );
    assert_eq!(
        store.lookup("forever").expect("hit").entry.usability(),
        Usability::Fresh
    );
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
    let smaller = store.resized(settings(&[10, 2], 1), None);
    assert_eq!(smaller.stats()[1].items, 2);
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
    let resized = store.resized(settings(&[20], 1), None);
    let key = resized.storage_key("k", &language(Some("fr")));
    assert_eq!(resized.lookup(&key).expect("kept").entry.body, "bonjour");
}

#[test]
fn invalidation_requests_select_exactly_one_key_prefix_or_tag() {
    let selects = |body: &str| match Invalidation::from_json(body.as_bytes()) {
        Ok(request) => Ok((format!("{:?}", request.selector), request.soft)),
        Err(error) => Err(error.to_string()),
    };
    let one_of = "expected exactly one of \"key\", \"prefix\" (non-empty) or \"tag\" as a string";
    // Each body and the selector and softness it asks for, or the error message.
    type Expected = Result<(&'static str, bool), &'static str>;
    let cases: [(&str, Expected); 9] = [
        (r#"{"key": "k"}"#, Ok((r#"Key("k")"#, false))),
        (
            r#"{"prefix": "/c/", "soft": true}"#,
            Ok((r#"Prefix("/c/")"#, true)),
        ),
        (r#"{"tag": "t", "soft": "yes"}"#, Ok((r#"Tag("t")"#, false))),
        (r#"{}"#, Err(one_of)),
        (r#"{"key": 1}"#, Err(one_of)),
        (r#"{"key": "a", "tag": "b"}"#, Err(one_of)),
        (r#"{"prefix": ""}"#, Err(one_of)),
        (r#"[]"#, Err(one_of)),
        ("{not json", Err("invalid JSON body")),
    ];
    for (body, expected) in cases {
        let expected = expected
            .map(|(selector, soft)| (selector.to_string(), soft))
            .map_err(str::to_string);
        assert_eq!(selects(body), expected, "{body}");
    }
    let from_query = Invalidation::from_fields(None, None, None, false);
    assert_eq!(
        from_query.map(|_| ()).map_err(|e| e.to_string()),
        Err(one_of.to_string()),
        "the admin API's query fields give the same answer"
    );
}

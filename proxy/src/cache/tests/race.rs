//! Fill coalescing: one leader per key, and no second leader for a request that missed just
//! before the first fill ended.

use super::{object, settings};
use crate::cache::{CacheStore, Fill};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

#[test]
fn a_newer_object_is_never_shadowed_by_an_older_one_moving_between_tiers() {
    // One thread keeps promoting the stored object (one hit per tier moves it up) while
    // another stores a new version, as a refresh does; afterwards only the new one is found.
    for round in 0..3000 {
        let store = CacheStore::new(settings(&[10, 10, 10], 1));
        let mut old = object("k", &[]);
        old.body = bytes::Bytes::from_static(b"old");
        store.insert(old);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..3 {
                    store.lookup("k");
                    std::thread::yield_now();
                }
            });
            scope.spawn(|| {
                std::thread::yield_now();
                let mut new = object("k", &[]);
                new.body = bytes::Bytes::from_static(b"new");
                store.insert(new);
            });
        });
        let found = store.lookup("k").expect("stored");
        assert_eq!(found.entry.body, "new", "round {round}");
    }
}

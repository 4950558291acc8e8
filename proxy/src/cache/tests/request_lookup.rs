//! The request protocol (`CacheStore::lookup_for_request`) on a memory-only store: which
//! outcome each stored state gives, and coalescing as a request sees it.

use super::{object, settings};
use crate::cache::{CacheStore, Lookup, NewEntry, Outcome};
use std::sync::Arc;
use std::time::Duration;

fn no_headers(_: &str) -> Option<String> {
    None
}

fn english(name: &str) -> Option<String> {
    (name == "accept-language").then(|| "en".to_string())
}

async fn outcome(
    store: &Arc<CacheStore>,
    head: bool,
    header: fn(&str) -> Option<String>,
) -> Outcome {
    store
        .lookup_for_request(&Lookup {
            key: "k",
            head,
            header: &header,
        })
        .await
}

/// The outcome's shape, for a table: ("hit" | "stale hit" | "lead" | "forward", refresh
/// claimed, a stale object carried).
fn shape(outcome: &Outcome) -> (&'static str, bool, bool) {
    match outcome {
        Outcome::Hit { stale, refresh, .. } => {
            (if *stale { "stale hit" } else { "hit" }, *refresh, false)
        }
        Outcome::Lead { stale, .. } => ("lead", false, stale.is_some()),
        Outcome::Forward { stale } => ("forward", false, stale.is_some()),
    }
}

#[tokio::test]
async fn each_stored_state_gives_its_outcome() {
    let fresh = object("k", &[]);
    let while_revalidate = NewEntry {
        ttl: Duration::ZERO,
        stale_while_revalidate: Duration::from_secs(60),
        ..object("k", &[])
    };
    let if_error = NewEntry {
        ttl: Duration::ZERO,
        stale_if_error: Duration::from_secs(60),
        ..object("k", &[])
    };
    let head_only = || NewEntry {
        head_only: true,
        ..object("k", &[])
    };
    let varies = || NewEntry {
        vary: vec![("accept-language".into(), Some("en".into()))],
        ..object("k", &[])
    };
    type Header = fn(&str) -> Option<String>;
    type Case = (
        &'static str,
        Option<NewEntry>,
        bool,
        Header,
        (&'static str, bool, bool),
    );
    let table: Vec<Case> = vec![
        (
            "nothing stored",
            None,
            false,
            no_headers,
            ("lead", false, false),
        ),
        (
            "fresh",
            Some(fresh),
            false,
            no_headers,
            ("hit", false, false),
        ),
        (
            "within stale-while-revalidate",
            Some(while_revalidate),
            false,
            no_headers,
            ("stale hit", true, false),
        ),
        (
            "within stale-if-error only",
            Some(if_error),
            false,
            no_headers,
            ("lead", false, true),
        ),
        (
            "stored from a HEAD, asked by a GET",
            Some(head_only()),
            false,
            no_headers,
            ("lead", false, false),
        ),
        (
            "stored from a HEAD, asked by a HEAD",
            Some(head_only()),
            true,
            no_headers,
            ("hit", false, false),
        ),
        (
            "another variant",
            Some(varies()),
            false,
            no_headers,
            ("lead", false, false),
        ),
        (
            "the same variant",
            Some(varies()),
            false,
            english,
            ("hit", false, false),
        ),
    ];
    for (case, stored, head, header, expected) in table {
        let store = CacheStore::new(settings(&[10], 1));
        if let Some(stored) = stored {
            store.insert(stored);
        }
        assert_eq!(
            shape(&outcome(&store, head, header).await),
            expected,
            "{case}"
        );
    }
}

#[tokio::test]
async fn only_the_first_stale_hit_claims_the_background_refresh() {
    let store = CacheStore::new(settings(&[10], 1));
    store.insert(NewEntry {
        ttl: Duration::ZERO,
        stale_while_revalidate: Duration::from_secs(60),
        ..object("k", &[])
    });
    assert_eq!(
        shape(&outcome(&store, false, no_headers).await),
        ("stale hit", true, false)
    );
    assert_eq!(
        shape(&outcome(&store, false, no_headers).await),
        ("stale hit", false, false)
    );
}

#[tokio::test]
async fn a_waiter_is_answered_by_what_its_leader_stored() {
    let store = CacheStore::new(settings(&[10], 1));
    let Outcome::Lead { fill, .. } = outcome(&store, false, no_headers).await else {
        panic!("the first request leads")
    };
    let waiter = tokio::spawn({
        let store = store.clone();
        async move { shape(&outcome(&store, false, no_headers).await) }
    });
    // The waiter is parked on the fill until the leader stores and lets go.
    tokio::task::yield_now().await;
    store.insert(object("k", &[]));
    drop(fill);
    assert_eq!(waiter.await.unwrap(), ("hit", false, false));
}

#[tokio::test]
async fn a_slow_leader_sends_its_waiters_to_the_origin_without_leading() {
    let mut quick = settings(&[10], 1);
    quick.lock_timeout = Duration::from_millis(20);
    let store = CacheStore::new(quick);
    let Outcome::Lead { fill: _held, .. } = outcome(&store, false, no_headers).await else {
        panic!("the first request leads")
    };
    assert_eq!(
        shape(&outcome(&store, false, no_headers).await),
        ("forward", false, false)
    );
}

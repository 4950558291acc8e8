use super::buckets::{Buckets, MAX_KEYS};
use super::gcra::{ceil_secs, Decision, Gcra};
use super::key::client_ip;
use crate::config::TrustedProxies;
use std::net::IpAddr;

const SECOND: u64 = 1_000_000_000;

/// 20/s with a burst of 40: one request costs 50 ms, and 40 pass back to back.
const TWENTY_PER_SECOND: Gcra = Gcra {
    interval_ns: SECOND / 20,
    burst: 40,
};

#[test]
fn gcra_table() {
    let ms = SECOND / 1000;
    let g = TWENTY_PER_SECOND;
    let allow = |tat, remaining, reset_ns| Decision::Allow {
        tat,
        remaining,
        reset_ns,
    };
    let deny = |retry_after_ns| Decision::Deny { retry_after_ns };
    // (stored TAT, now, decision)
    let cases = [
        // A new key has its whole burst.
        (0, 1000 * ms, allow(1050 * ms, 39, 50 * ms)),
        // A TAT in the past is the same as a new key.
        (500 * ms, 1000 * ms, allow(1050 * ms, 39, 50 * ms)),
        // 39 requests already charged: the 40th passes with nothing left.
        (
            1000 * ms + 1950 * ms,
            1000 * ms,
            allow(3000 * ms, 0, 2000 * ms),
        ),
        // A full burst charged: the next waits one interval.
        (3000 * ms, 1000 * ms, deny(50 * ms)),
        // ... and passes once it has waited it.
        (3000 * ms, 1050 * ms, allow(3050 * ms, 0, 2000 * ms)),
        // Far over: the wait is what is over the tolerance.
        (4000 * ms, 1000 * ms, deny(1050 * ms)),
    ];
    for (tat, now, expected) in cases {
        assert_eq!(g.decide(tat, now), expected, "tat={tat} now={now}");
    }
}

#[test]
fn gcra_lets_through_the_burst_then_exactly_the_rate() {
    let g = Gcra {
        interval_ns: SECOND / 10,
        burst: 5,
    };
    let mut tat = 0;
    let mut allowed = 0;
    // One request every millisecond for three seconds, starting idle.
    for ms in 0..3000u64 {
        if let Decision::Allow { tat: next, .. } = g.decide(tat, SECOND + ms * SECOND / 1000) {
            tat = next;
            allowed += 1;
        }
    }
    // The burst plus 10/s over 3 s (the first request of each interval).
    assert_eq!(allowed, 5 + 30 - 1);
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    for (ns, secs) in [(0, 0), (1, 1), (SECOND, 1), (SECOND + 1, 2)] {
        assert_eq!(ceil_secs(ns), secs);
    }
}

#[test]
fn buckets_count_exactly_under_concurrency() {
    let buckets = std::sync::Arc::new(Buckets::default());
    let g = Gcra {
        interval_ns: SECOND,
        burst: 100,
    };
    let now = 5 * SECOND;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let buckets = buckets.clone();
            std::thread::spawn(move || {
                (0..50)
                    .filter(|_| matches!(buckets.check(Some(b"k"), g, now), Decision::Allow { .. }))
                    .count()
            })
        })
        .collect();
    let allowed: usize = threads.into_iter().map(|t| t.join().expect("join")).sum();
    assert_eq!(allowed, 100, "400 concurrent requests, burst 100");
}

#[test]
fn a_missing_key_shares_one_bucket_apart_from_real_values() {
    let buckets = Buckets::default();
    let g = Gcra {
        interval_ns: SECOND,
        burst: 1,
    };
    assert!(matches!(
        buckets.check(None, g, SECOND),
        Decision::Allow { .. }
    ));
    assert!(matches!(
        buckets.check(None, g, SECOND),
        Decision::Deny { .. }
    ));
    // An empty value is a value, not the missing bucket.
    assert!(matches!(
        buckets.check(Some(b""), g, SECOND),
        Decision::Allow { .. }
    ));
}

#[test]
fn a_million_distinct_keys_stay_within_the_bound() {
    let buckets = Buckets::default();
    let g = Gcra {
        interval_ns: SECOND,
        burst: 10,
    };
    // Every key active at once (no time passes): the worst case for the bound.
    for i in 0..1_000_000u32 {
        let decision = buckets.check(Some(&i.to_le_bytes()), g, SECOND);
        assert!(matches!(decision, Decision::Allow { remaining: 9, .. }));
    }
    let held = buckets.len();
    assert!(held <= MAX_KEYS, "{held} keys held, bound {MAX_KEYS}");
    assert!(
        held > MAX_KEYS / 4,
        "{held} keys: the store should stay useful"
    );
    // Once every key is idle, new keys find room by dropping idle ones.
    for i in 0..MAX_KEYS as u32 {
        buckets.check(Some(&(i + 2_000_000).to_le_bytes()), g, 100 * SECOND);
    }
    assert!(buckets.len() <= MAX_KEYS);
}

#[test]
fn idle_keys_expire_without_changing_any_decision() {
    let buckets = Buckets::default();
    let g = Gcra {
        interval_ns: SECOND,
        burst: 2,
    };
    for i in 0..MAX_KEYS as u32 {
        buckets.check(Some(&i.to_le_bytes()), g, SECOND);
    }
    let busy = b"busy".as_slice();
    buckets.check(Some(busy), g, 10 * SECOND);
    buckets.check(Some(busy), g, 10 * SECOND);
    assert!(matches!(
        buckets.check(Some(busy), g, 10 * SECOND),
        Decision::Deny { .. }
    ));
    // Fill every shard again at a time when all the first keys are idle: they go, "busy" stays.
    for i in 0..MAX_KEYS as u32 {
        buckets.check(Some(&(i + MAX_KEYS as u32).to_le_bytes()), g, 10 * SECOND);
    }
    assert!(buckets.len() <= MAX_KEYS);
    assert!(matches!(
        buckets.check(Some(busy), g, 10 * SECOND),
        Decision::Deny { .. }
    ));
}

#[test]
fn client_ip_walks_forwarded_for_past_trusted_proxies_only() {
    let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
    let trusted = TrustedProxies(vec![
        "10.0.0.0/8".parse().expect("net"),
        "127.0.0.1/32".parse().expect("net"),
    ]);
    // (peer, X-Forwarded-For, client)
    let cases = [
        // An untrusted peer is the client, whatever it claims.
        ("203.0.113.9", Some("1.2.3.4"), "203.0.113.9"),
        // A trusted peer without the header is the client.
        ("127.0.0.1", None, "127.0.0.1"),
        // A trusted peer: the nearest untrusted hop.
        ("127.0.0.1", Some("1.2.3.4"), "1.2.3.4"),
        // Spoofed entries to the left of the real client are ignored.
        ("127.0.0.1", Some("6.6.6.6, 1.2.3.4, 10.1.1.1"), "1.2.3.4"),
        // Only trusted hops: the leftmost one.
        ("10.0.0.2", Some("10.0.0.1"), "10.0.0.1"),
        // Garbage stops at the last trusted hop.
        ("127.0.0.1", Some("1.2.3.4, nonsense"), "127.0.0.1"),
    ];
    for (peer, forwarded, client) in cases {
        assert_eq!(
            client_ip(ip(peer), forwarded, &trusted),
            ip(client),
            "peer={peer} xff={forwarded:?}"
        );
    }
}

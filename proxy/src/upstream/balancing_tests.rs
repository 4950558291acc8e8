//! `select_with` for the strategies of issue 28: limits and health honoured, the hash table
//! built once per healthy set, sticky tokens.

use super::*;
use crate::balance::hashing;
use crate::balance::Strategy;
use crate::config::balancing::{Balancing, HashAlgorithm, HashKey, HashSettings};
use crate::config::{Server, Upstream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn pool(count: usize, max: Option<u32>, balancing: Balancing) -> UpstreamPool {
    let config = Upstream {
        name: "g".into(),
        strategy: Strategy::RoundRobin,
        dns: Default::default(),
        servers: (0..count)
            .map(|i| Server {
                addr: SocketAddr::from(([127, 0, 0, 1], 7100 + i as u16)),
                weight: 1,
                max_connections: max,
                origin: None,
                priority: 0,
            })
            .collect(),
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        retries: 1,
        fail_timeout: Duration::from_secs(10),
        health_check: None,
        queue: crate::config::QueueSettings::default(),
        slow_start: None,
        protocol: Default::default(),
        tls: None,
        balancing,
    };
    UpstreamPool::new(config, &Registry::default())
}

fn hashing(algorithm: HashAlgorithm) -> Balancing {
    Balancing {
        hash: Some(HashSettings {
            key: HashKey::Path,
            algorithm,
        }),
        ..Balancing::default()
    }
}

#[test]
fn p2c_and_ewma_never_exceed_max_connections_and_refuse_when_all_are_full() {
    for strategy in [Strategy::P2c, Strategy::Ewma] {
        let pool = pool(3, Some(2), Balancing::default());
        let leases: Vec<Lease> = (0..6)
            .map(|_| pool.select(strategy, 0, false).expect("a free slot").1)
            .collect();
        for server in &pool.servers {
            assert_eq!(server.state.in_flight(), 2, "{strategy:?}");
        }
        assert!(
            matches!(pool.select(strategy, 0, false), Err(true)),
            "{strategy:?}"
        );
        drop(leases);
    }
}

#[test]
fn p2c_skips_an_ejected_server() {
    let pool = pool(3, None, Balancing::default());
    assert!(pool.servers[1]
        .state
        .record_connect_failure(false, Duration::from_secs(60)));
    for _ in 0..50 {
        let (selection, _lease) = pool.select(Strategy::P2c, 0, false).expect("a pick");
        assert_ne!(selection.index, 1);
    }
}

#[test]
fn ewma_prefers_the_server_with_the_lower_estimate() {
    let pool = pool(2, None, Balancing::default());
    pool.servers[0]
        .state
        .observe_latency(Duration::from_millis(100));
    pool.servers[1]
        .state
        .observe_latency(Duration::from_millis(2));
    assert!(pool.servers[0].state.ewma_us() > 90_000.0);
    for _ in 0..20 {
        let (selection, lease) = pool.select(Strategy::Ewma, 0, false).expect("a pick");
        assert_eq!(selection.index, 1);
        drop(lease);
    }
}

#[test]
fn the_hash_table_is_built_once_per_healthy_set() {
    for algorithm in [HashAlgorithm::Ring, HashAlgorithm::Maglev] {
        let pool = pool(3, None, hashing(algorithm));
        let key = Hint {
            key: Some(hashing::key_hash(b"/item/7")),
            ..Hint::default()
        };
        let (first, lease) = pool
            .select_with(Strategy::Hash, 0, false, key)
            .expect("a pick");
        drop(lease);
        let table = pool.hash_table.load_full();
        for _ in 0..10 {
            let (again, lease) = pool
                .select_with(Strategy::Hash, 0, false, key)
                .expect("a pick");
            assert_eq!(again.index, first.index);
            drop(lease);
        }
        assert!(
            Arc::ptr_eq(&table, &pool.hash_table.load_full()),
            "rebuilt without a change"
        );
        // The owner is ejected: a new table, another server; back when it returns.
        assert!(pool.servers[first.index]
            .state
            .record_connect_failure(false, Duration::from_secs(60)));
        let (moved, _lease) = pool
            .select_with(Strategy::Hash, 0, false, key)
            .expect("a pick");
        assert_ne!(moved.index, first.index);
        assert!(!Arc::ptr_eq(&table, &pool.hash_table.load_full()));
    }
}

#[test]
fn a_sticky_hint_wins_while_eligible_and_tokens_are_opaque_and_distinct() {
    let balancing = Balancing {
        sticky: Some(crate::config::balancing::StickySettings {
            cookie: "srv".into(),
            ttl: Duration::from_secs(60),
            secure: false,
            http_only: true,
        }),
        ..Balancing::default()
    };
    let pool = pool(3, Some(1), balancing);
    let tokens: Vec<&str> = pool
        .servers
        .iter()
        .map(|s| s.sticky_token.as_deref().expect("a token"))
        .collect();
    assert!(tokens[0] != tokens[1] && tokens[1] != tokens[2] && tokens[0] != tokens[2]);
    assert!(tokens.iter().all(|t| t.len() == 32 && !t.contains("7100")));
    assert_eq!(pool.sticky_server(tokens[2]), Some(2));
    assert_eq!(pool.sticky_server("00"), None);
    let hint = Hint {
        sticky: Some(2),
        ..Hint::default()
    };
    let (selection, lease) = pool
        .select_with(Strategy::RoundRobin, 0, false, hint)
        .expect("a pick");
    assert_eq!(selection.index, 2);
    // At its max_connections the sticky server gives way to another.
    let (other, _second) = pool
        .select_with(Strategy::RoundRobin, 0, true, hint)
        .expect("a pick");
    assert_ne!(other.index, 2);
    assert!(other
        .explanation
        .expect("explained")
        .contains("sticky cookie names no available server, re-balanced"));
    drop(lease);
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    let tag = sticky_token::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

fn outlier_pool(error_rate: Option<crate::config::balancing::ErrorRate>) -> UpstreamPool {
    pool(
        3,
        None,
        Balancing {
            outlier: Some(crate::config::balancing::OutlierSettings {
                consecutive_5xx: 0,
                consecutive_gateway_errors: 0,
                base_ejection: Duration::from_secs(30),
                max_ejection_percent: 50,
                error_rate,
            }),
            ..Balancing::default()
        },
    )
}

#[test]
fn error_rate_ejects_a_server_failing_a_third_of_its_answers_but_not_one_failing_a_tenth() {
    let rate = crate::config::balancing::ErrorRate {
        threshold_percent: 25,
        min_requests: 20,
        window: Duration::from_secs(60),
    };
    let pool = outlier_pool(Some(rate));
    let (bad, mild) = (&pool.servers[0].state, &pool.servers[1].state);
    // Every third answer a 500 (33%): out at the first failure once 20 answers are in.
    let mut answered = 0;
    while !bad.ejected() && answered < 100 {
        answered += 1;
        let status = if answered % 3 == 0 { 500 } else { 200 };
        pool.observe_outcome(bad, Some(status));
    }
    assert_eq!(
        answered, 21,
        "ejected at the first failure after 20 answers"
    );
    assert_eq!(bad.outlier.ejections(), 1);
    // Every tenth a 500 (10%): never.
    for n in 1..=200 {
        pool.observe_outcome(mild, Some(if n % 10 == 0 { 503 } else { 200 }));
    }
    assert!(!mild.ejected());
}

#[test]
fn consecutive_rules_eject_once_and_respect_the_last_available_server() {
    let mut pool = outlier_pool(None);
    if let Some(outlier) = pool.config.balancing.outlier.as_mut() {
        outlier.consecutive_5xx = 3;
        outlier.consecutive_gateway_errors = 2;
        outlier.max_ejection_percent = 100;
    }
    let servers: Vec<&ServerState> = pool.servers.iter().map(|s| &*s.state).collect();
    // Two 500s and a success: the run is broken, nothing happens.
    for status in [500, 500, 200, 500, 500] {
        pool.observe_outcome(servers[0], Some(status));
    }
    assert!(!servers[0].ejected());
    pool.observe_outcome(servers[0], Some(501));
    assert!(servers[0].ejected(), "three 5xx in a row");
    // Two gateway errors (a 502 and no answer at all) eject the second.
    pool.observe_outcome(servers[1], Some(502));
    pool.observe_outcome(servers[1], None);
    assert!(servers[1].ejected());
    // The third is the last available server: never ejected, even at 100%.
    for _ in 0..10 {
        pool.observe_outcome(servers[2], Some(500));
    }
    assert!(!servers[2].ejected());
    assert_eq!(servers[2].outlier.ejections(), 0);
}

#[test]
fn the_ewma_explanation_shows_each_estimate_after_the_limit_and_the_two_loads() {
    let pool = pool(2, Some(4), Balancing::default());
    pool.servers[0]
        .state
        .observe_latency(Duration::from_millis(50));
    pool.servers[1]
        .state
        .observe_latency(Duration::from_millis(1));
    let (selection, _lease) = pool.select(Strategy::Ewma, 0, true).expect("a pick");
    let text = selection.explanation.expect("explained");
    assert_eq!(selection.index, 1, "{text}");
    assert!(
        text.starts_with("strategy=ewma; candidates=127.0.0.1:7100(w=1,inflight=0/4,ewma_us="),
        "{text}"
    );
    assert!(
        text.contains("; winner=127.0.0.1:7101 (power of two choices by peak EWMA us x (in flight + 1) / weight: 127.0.0.1:7101 load="),
        "{text}"
    );
    assert!(text.contains(" beat 127.0.0.1:7100 load="), "{text}");
}

#[test]
fn the_circuit_caps_the_group_across_servers_and_a_lease_gives_its_place_back() {
    let balancing = Balancing {
        circuit: Some(crate::config::balancing::CircuitSettings {
            max_requests: 2,
            max_pending: 0,
        }),
        ..Balancing::default()
    };
    let pool = pool(3, None, balancing);
    let (_, first) = pool
        .select(Strategy::RoundRobin, 0, false)
        .expect("a place");
    let (_, second) = pool
        .select(Strategy::RoundRobin, 0, false)
        .expect("a place");
    assert_eq!(pool.circuit.in_flight(), 2);
    // Three servers, each idle but one: the circuit, not the servers, refuses.
    assert!(matches!(
        pool.select(Strategy::RoundRobin, 0, false),
        Err(true)
    ));
    assert!(pool.circuit.is_full(2));
    drop(first);
    assert_eq!(pool.circuit.in_flight(), 1);
    let (_, third) = pool.select(Strategy::P2c, 0, false).expect("a place again");
    drop((second, third));
    assert_eq!(pool.circuit.in_flight(), 0);
}

use super::*;
use crate::balance::Strategy;
use crate::config::HealthCheck;
use crate::config::{Server, Upstream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn check(healthy: u32, unhealthy: u32) -> HealthCheck {
    HealthCheck {
        path: "/health".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        healthy_threshold: healthy,
        unhealthy_threshold: unhealthy,
    }
}

#[test]
fn health_threshold_table() {
    use Transition::*;
    // (healthy, ever_passed, passed, consecutive, expected)
    let cases = [
        (false, false, true, 1, Some(Up)),
        (false, true, true, 1, None),
        (false, true, true, 2, Some(Up)),
        (true, true, false, 2, None),
        (true, true, false, 3, Some(Down)),
        (true, true, true, 9, None),
        (false, true, false, 9, None),
    ];
    for (healthy, ever, passed, consecutive, expected) in cases {
        assert_eq!(
            next_health(healthy, ever, passed, consecutive, &check(2, 3)),
            expected,
            "healthy={healthy} ever={ever} passed={passed} consecutive={consecutive}"
        );
    }
}

fn pool(weights: &[u32], active_check: bool) -> UpstreamPool {
    limited_pool(weights, active_check, None)
}

fn limited_pool(weights: &[u32], active_check: bool, max: Option<u32>) -> UpstreamPool {
    let config = Upstream {
        name: "g".into(),
        strategy: Strategy::RoundRobin,
        dns: Default::default(),
        servers: weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Server {
                addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
                weight,
                max_connections: max,
                origin: None,
                priority: 0,
            })
            .collect(),
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        retries: 1,
        fail_timeout: Duration::from_secs(10),
        health_check: active_check.then(|| check(2, 3)),
        queue: crate::config::QueueSettings::default(),
        slow_start: None,
        protocol: Default::default(),
        tls: None,
        balancing: Default::default(),
    };
    UpstreamPool::new(config, &Registry::default())
}

#[test]
fn new_servers_with_active_check_take_no_traffic_until_they_pass() {
    let pool = pool(&[1, 1], true);
    assert!(pool.select(Strategy::RoundRobin, 0, false).is_err());
    pool.servers[1]
        .state
        .record_check(true, "200".into(), Duration::ZERO, &check(2, 3));
    let (selection, _lease) = pool.select(Strategy::RoundRobin, 0, false).expect("pick");
    assert_eq!(selection.index, 1);
}

#[test]
fn leases_count_in_flight_and_release_on_drop() {
    let pool = pool(&[1, 1], false);
    let (a, lease_a) = pool
        .select(Strategy::LeastConnections, 0, false)
        .expect("pick");
    let (b, lease_b) = pool
        .select(Strategy::LeastConnections, 0, false)
        .expect("pick");
    assert_ne!(
        a.index, b.index,
        "the second pick must avoid the busy server"
    );
    assert_eq!(pool.servers[a.index].state.in_flight(), 1);
    drop(lease_a);
    drop(lease_b);
    assert_eq!(
        pool.servers[0].state.in_flight() + pool.servers[1].state.in_flight(),
        0
    );
}

#[test]
fn weighted_pool_follows_schedule_and_adapts_to_health() {
    let pool = pool(&[3, 2, 1], false);
    let picks: Vec<usize> = (0..6)
        .map(|_| {
            pool.select(Strategy::Weighted, 0, false)
                .expect("pick")
                .0
                .index
        })
        .collect();
    assert_eq!(picks, vec![0, 1, 0, 2, 1, 0]);
    assert!(pool.servers[0]
        .state
        .record_connect_failure(false, Duration::from_secs(60)));
    let mut counts = [0usize; 3];
    for _ in 0..30 {
        counts[pool
            .select(Strategy::Weighted, 0, false)
            .expect("pick")
            .0
            .index] += 1;
    }
    assert_eq!(counts, [0, 20, 10]);
}

#[test]
fn explanation_names_every_candidate_and_the_winner() {
    let pool = pool(&[3, 1], false);
    let (selection, _lease) = pool.select(Strategy::Weighted, 0b10, true).expect("pick");
    let text = selection.explanation.expect("explanation");
    assert_eq!(
        text,
        "strategy=weighted; candidates=127.0.0.1:7000(w=3,inflight=0,up),\
         127.0.0.1:7001(w=1,inflight=0,tried); winner=127.0.0.1:7000 \
         (next in the smooth weighted round-robin schedule)"
    );
}

#[test]
fn max_connections_is_never_exceeded_and_a_full_group_says_so() {
    let pool = limited_pool(&[1, 1], false, Some(2));
    for strategy in [
        Strategy::RoundRobin,
        Strategy::Weighted,
        Strategy::LeastConnections,
    ] {
        let leases: Vec<_> = (0..4)
            .map(|_| pool.select(strategy, 0, false).expect("a free slot").1)
            .collect();
        assert_eq!(
            pool.servers
                .iter()
                .map(|s| s.state.in_flight())
                .collect::<Vec<_>>(),
            [2, 2]
        );
        // Every healthy server is at its limit: the request may queue.
        assert_eq!(pool.select(strategy, 0, false).err(), Some(true));
        // A tried server that is full leaves nothing to queue for either.
        drop(leases);
        assert!(pool.select(strategy, 0b11, false).err() == Some(false));
    }
    let (selection, _lease) = pool.select(Strategy::RoundRobin, 0, true).expect("pick");
    let text = selection.explanation.expect("explanation");
    assert!(text.contains("(w=1,inflight=0/2,up)"), "{text}");
}

#[test]
fn a_concurrent_rush_takes_exactly_the_limit() {
    let pool = Arc::new(limited_pool(&[1], false, Some(3)));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            std::thread::spawn(move || {
                let leases: Vec<_> = (0..20)
                    .filter_map(|_| pool.select(Strategy::LeastConnections, 0, false).ok())
                    .collect();
                // Every thread holds what it got until all have tried.
                barrier.wait();
                leases.len()
            })
        })
        .collect();
    let held: usize = threads.into_iter().map(|t| t.join().expect("join")).sum();
    assert_eq!(held, 3, "160 concurrent picks, max_connections = 3");
    assert_eq!(
        pool.servers[0].state.in_flight(),
        0,
        "every slot given back"
    );
}

#[tokio::test]
async fn the_queue_wakes_its_head_in_order_and_a_dropped_ticket_passes_the_wake_on() {
    let queue = WaitQueue::new("test");
    let first = queue.join(3).expect("room");
    let second = queue.join(3).expect("room");
    let third = queue.join(3).expect("room");
    assert!(queue.join(3).is_none(), "the queue is full at max");
    assert_eq!(queue.len(), 3);
    assert!(first.is_head() && !second.is_head());
    queue.wake_head();
    first.woken().await;
    // The head leaves without using its wake: the next one is woken and is now the head.
    drop(first);
    second.woken().await;
    assert!(second.is_head());
    drop(second);
    assert!(third.is_head());
    drop(third);
    assert!(queue.is_empty());
}

#[test]
fn a_recovered_server_slow_starts_and_a_first_pass_does_not() {
    let mut pool = pool(&[1, 1, 1], true);
    pool.config.slow_start = Some(Duration::from_secs(30));
    let check = check(2, 3);
    let window = pool.config.slow_start;
    for server in &pool.servers {
        server
            .state
            .record_check(true, "ok".into(), Duration::ZERO, &check);
    }
    assert!(pool
        .servers
        .iter()
        .all(|s| s.state.ramp_tenths(window) == 10));
    let recovering = &pool.servers[2].state;
    for _ in 0..3 {
        recovering.record_check(false, "down".into(), Duration::ZERO, &check);
    }
    for _ in 0..2 {
        recovering.record_check(true, "ok".into(), Duration::ZERO, &check);
    }
    assert!(recovering.is_available());
    assert_eq!(
        recovering.ramp_tenths(window),
        1,
        "10% right after recovering"
    );
    assert_eq!(recovering.ramp_tenths(None), 10, "no window, no ramp");
    // Every strategy gives it about a tenth of a fair share.
    for strategy in [
        Strategy::RoundRobin,
        Strategy::Weighted,
        Strategy::LeastConnections,
    ] {
        let picks = (0..2100)
            .filter(|_| pool.select(strategy, 0, false).expect("pick").0.index == 2)
            .count();
        assert!((30..=110).contains(&picks), "{strategy:?}: {picks} of 2100");
    }
    let (selection, _lease) = pool.select(Strategy::Weighted, 0b011, true).expect("pick");
    let text = selection.explanation.expect("explanation");
    assert!(
        text.contains("(w=1,slow_start=10%,inflight=0,up)"),
        "{text}"
    );
    assert_eq!(recovering.report(1, window).effective_weight, 0.1);
}

#[test]
fn servers_a_reload_adds_and_servers_back_from_passive_ejection_slow_start() {
    let window = Some(Duration::from_secs(30));
    let registry = Registry::default();
    let at_start = registry.server("g", SocketAddr::from(([127, 0, 0, 1], 7100)), false);
    registry.seal();
    let added = registry.server("g", SocketAddr::from(([127, 0, 0, 1], 7101)), false);
    assert_eq!(
        at_start.ramp_tenths(window),
        10,
        "start-up servers take their weight"
    );
    assert_eq!(
        added.ramp_tenths(window),
        1,
        "a server a reload adds starts at 10%"
    );
    // Ejected for a moment without an active check: back at 10% when the ejection ends.
    assert!(at_start.record_connect_failure(false, Duration::from_millis(1)));
    std::thread::sleep(Duration::from_millis(5));
    assert!(at_start.is_available());
    assert_eq!(at_start.ramp_tenths(window), 1);
}

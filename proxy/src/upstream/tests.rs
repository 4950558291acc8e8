use super::*;
use crate::config::{Server, Upstream};

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
    let config = Upstream {
        name: "g".into(),
        strategy: Strategy::RoundRobin,
        servers: weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Server {
                addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
                weight,
            })
            .collect(),
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        retries: 1,
        fail_timeout: Duration::from_secs(10),
        health_check: active_check.then(|| check(2, 3)),
    };
    UpstreamPool::new(config, &Registry::default())
}

#[test]
fn new_servers_with_active_check_take_no_traffic_until_they_pass() {
    let pool = pool(&[1, 1], true);
    assert!(pool.select(Strategy::RoundRobin, 0, false).is_none());
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

use super::*;

fn candidates(weights: &[u32]) -> Vec<Candidate> {
    weights
        .iter()
        .map(|&weight| Candidate {
            weight,
            in_flight: 0,
            healthy: true,
            excluded: false,
            full: false,
            ramp_tenths: 10,
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[test]
fn peak_ewma_decay_arithmetic() {
    // (stored cost us, age ms, decay ms, observed rtt us, expected new cost us)
    let e = std::f64::consts::E;
    let cases = [
        // A slower response replaces the estimate at once: the peak.
        (10_000.0, 0.0, 10_000.0, 50_000.0, 50_000.0),
        // A faster one just after the last update barely moves it.
        (100_000.0, 0.0, 10_000.0, 10_000.0, 100_000.0),
        // One decay time later the old estimate weighs 1/e.
        (
            100_000.0,
            10_000.0,
            10_000.0,
            10_000.0,
            100_000.0 / e + 10_000.0 * (1.0 - 1.0 / e),
        ),
        // Ten decay times later the old estimate has faded below the response, which is
        // then the estimate.
        (100_000.0, 100_000.0, 10_000.0, 10_000.0, 10_000.0),
        // The first observation of a server is its estimate.
        (0.0, 5_000.0, 10_000.0, 3_000.0, 3_000.0),
    ];
    for (cost, age, decay, rtt, expected) in cases {
        let got = observe(cost, age, decay, rtt);
        assert!(
            close(got, expected),
            "observe({cost}, {age}, {decay}, {rtt}) = {got}, expected {expected}"
        );
    }
    // An idle estimate fades towards zero: half-life is decay x ln 2.
    let half = decayed(80_000.0, 10_000.0 * std::f64::consts::LN_2, 10_000.0);
    assert!(close(half, 40_000.0), "{half}");
    assert!(close(decayed(80_000.0, 0.0, 10_000.0), 80_000.0));
    // A faster response after the estimate decayed below it is a new peak.
    assert!(close(
        observe(
            80_000.0,
            10_000.0 * std::f64::consts::LN_2,
            10_000.0,
            50_000.0
        ),
        50_000.0
    ));
}

#[test]
fn ewma_load_counts_the_request_to_come_and_penalises_unmeasured_busy_servers() {
    assert_eq!(ewma_load(2_000.0, 0), 2_000.0);
    assert_eq!(ewma_load(2_000.0, 3), 8_000.0);
    assert_eq!(ewma_load(0.0, 0), 0.0);
    assert_eq!(ewma_load(0.0, 2), 2.0 * UNMEASURED_PENALTY_US);
}

#[test]
fn p2c_draws_follow_weights_when_idle() {
    let candidates = candidates(&[1, 1, 2]);
    let mut counts = [0usize; 3];
    for seed in 0..40_000u64 {
        let pick = pick_two(&candidates, mix(seed), |_| 0.0).expect("a pick");
        assert_ne!(pick.other, Some(pick.winner));
        counts[pick.winner] += 1;
    }
    // Idle ties go to the first draw, which follows the weights: 1/4, 1/4, 1/2.
    for (i, expected) in [0.25, 0.25, 0.5].iter().enumerate() {
        let share = counts[i] as f64 / 40_000.0;
        assert!(
            (share - expected).abs() < 0.02,
            "server {i}: {share} ({counts:?})"
        );
    }
}

#[test]
fn p2c_prefers_the_less_loaded_of_two_and_never_the_most_loaded_of_three() {
    let mut candidates = candidates(&[1, 1, 1]);
    candidates[0].in_flight = 9;
    candidates[1].in_flight = 1;
    candidates[2].in_flight = 0;
    let mut counts = [0usize; 3];
    for seed in 0..30_000u64 {
        let pick =
            pick_two(&candidates, mix(seed), |i| candidates[i].in_flight as f64).expect("a pick");
        counts[pick.winner] += 1;
    }
    // The busiest wins no comparison; the idlest wins both it is in (2/3 of draws).
    assert_eq!(counts[0], 0, "{counts:?}");
    let idle = counts[2] as f64 / 30_000.0;
    assert!((idle - 2.0 / 3.0).abs() < 0.02, "{counts:?}");
}

#[test]
fn p2c_skips_ineligible_servers_and_handles_one_or_none() {
    let mut candidates = candidates(&[1, 1, 1]);
    candidates[0].healthy = false;
    candidates[1].full = true;
    for seed in 0..100 {
        let pick = pick_two(&candidates, seed, |_| 0.0).expect("a pick");
        assert_eq!((pick.winner, pick.other), (2, None));
    }
    candidates[2].excluded = true;
    assert_eq!(pick_two(&candidates, 7, |_| 0.0), None);
}

#[test]
fn a_slow_server_gets_less_traffic_under_ewma() {
    // Server 1 answers in 50 ms, the others in 5 ms; each has one request in flight.
    let costs = [5_000.0, 50_000.0, 5_000.0];
    let mut candidates = candidates(&[1, 1, 1]);
    for c in &mut candidates {
        c.in_flight = 1;
    }
    let mut counts = [0usize; 3];
    for seed in 0..30_000u64 {
        let pick = pick_two(&candidates, mix(seed), |i| {
            ewma_load(costs[i], candidates[i].in_flight)
        })
        .expect("a pick");
        counts[pick.winner] += 1;
    }
    // The slow server loses every comparison it is in.
    assert_eq!(counts[1], 0, "{counts:?}");
    // A slow-start server at 10% is drawn less and looks ten times busier.
    candidates[1].ramp_tenths = 1;
    let mut ramping = 0;
    for seed in 0..30_000u64 {
        let pick =
            pick_two(&candidates, mix(seed), |i| candidates[i].in_flight as f64).expect("a pick");
        ramping += usize::from(pick.winner == 1);
    }
    assert_eq!(
        ramping, 0,
        "a ramping server with equal in-flight loses every comparison"
    );
}

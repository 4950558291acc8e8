use super::*;

fn healthy(weights: &[u32]) -> Vec<Candidate> {
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

fn picks(schedule: &Schedule, candidates: &[Candidate], n: usize) -> Vec<usize> {
    (0..n)
        .map(|step| schedule.pick(step, candidates).expect("a pick"))
        .collect()
}

#[test]
fn smooth_weighted_matches_nginx_sequence() {
    let candidates = healthy(&[3, 2, 1]);
    let schedule = Schedule::smooth_weighted(healthy_mask(&candidates), &[3, 2, 1]);
    assert_eq!(schedule.order, vec![0, 1, 0, 2, 1, 0]);
}

#[test]
fn smooth_weighted_any_six_consecutive_picks_are_3_2_1() {
    let candidates = healthy(&[3, 2, 1]);
    let schedule = Schedule::smooth_weighted(healthy_mask(&candidates), &[3, 2, 1]);
    let sequence = picks(&schedule, &candidates, 60);
    for window in sequence.windows(6) {
        let count = |server| window.iter().filter(|&&s| s == server).count();
        assert_eq!(
            (count(0), count(1), count(2)),
            (3, 2, 1),
            "window {window:?}"
        );
    }
    for window in sequence.windows(3) {
        assert!(window != [0, 0, 0], "heaviest server three times in a row");
    }
}

#[test]
fn smooth_weighted_table() {
    // (weights, healthy flags, expected one period)
    let cases: &[(&[u32], &[bool], &[u8])] = &[
        (&[1, 1, 1], &[true, true, true], &[0, 1, 2]),
        (&[5, 1, 1], &[true, true, true], &[0, 0, 1, 0, 2, 0, 0]),
        (&[3, 2, 1], &[false, true, true], &[1, 2, 1]),
        (&[3, 2, 1], &[true, false, false], &[0, 0, 0]),
        (&[3, 2, 1], &[false, false, false], &[]),
    ];
    for (weights, health, expected) in cases {
        let mut candidates = healthy(weights);
        for (c, h) in candidates.iter_mut().zip(health.iter()) {
            c.healthy = *h;
        }
        let schedule = Schedule::smooth_weighted(healthy_mask(&candidates), weights);
        assert_eq!(
            &schedule.order[..],
            *expected,
            "weights {weights:?} health {health:?}"
        );
    }
}

#[test]
fn round_robin_cycles_over_healthy_only() {
    let mut candidates = healthy(&[1, 1, 1, 1]);
    candidates[1].healthy = false;
    let schedule = Schedule::round_robin(healthy_mask(&candidates), candidates.len());
    assert_eq!(picks(&schedule, &candidates, 6), vec![0, 2, 3, 0, 2, 3]);
}

#[test]
fn schedule_skips_excluded_server_to_the_next_eligible() {
    let mut candidates = healthy(&[1, 1, 1]);
    let schedule = Schedule::round_robin(healthy_mask(&candidates), 3);
    candidates[0].excluded = true;
    assert_eq!(schedule.pick(0, &candidates), Some(1));
    candidates[1].excluded = true;
    candidates[2].excluded = true;
    assert_eq!(schedule.pick(0, &candidates), None);
}

#[test]
fn least_connections_table() {
    // (weights, in flight, healthy, excluded, rotation, expected)
    type Case<'a> = (
        &'a [u32],
        &'a [usize],
        &'a [bool],
        &'a [bool],
        usize,
        Option<usize>,
    );
    let cases: &[Case] = &[
        (&[1, 1, 1], &[3, 1, 2], &[true; 3], &[false; 3], 0, Some(1)),
        // Fewest in flight wins even against a heavier server.
        (&[5, 1, 1], &[2, 1, 3], &[true; 3], &[false; 3], 0, Some(1)),
        // A tie on in-flight goes to the heavier server.
        (&[1, 3, 2], &[0, 0, 0], &[true; 3], &[false; 3], 0, Some(1)),
        // A full tie rotates.
        (&[1, 1, 1], &[0, 0, 0], &[true; 3], &[false; 3], 0, Some(0)),
        (&[1, 1, 1], &[0, 0, 0], &[true; 3], &[false; 3], 1, Some(1)),
        (&[1, 1, 1], &[0, 0, 0], &[true; 3], &[false; 3], 5, Some(2)),
        // Unhealthy and excluded servers are never picked.
        (
            &[1, 1, 1],
            &[9, 0, 0],
            &[true, false, true],
            &[false, false, true],
            0,
            Some(0),
        ),
        (&[1, 1], &[0, 0], &[false, false], &[false, false], 0, None),
        (&[], &[], &[], &[], 0, None),
    ];
    for (weights, in_flight, health, excluded, rotation, expected) in cases {
        let candidates: Vec<Candidate> = (0..weights.len())
            .map(|i| Candidate {
                weight: weights[i],
                in_flight: in_flight[i],
                healthy: health[i],
                excluded: excluded[i],
                full: false,
                ramp_tenths: 10,
            })
            .collect();
        assert_eq!(
            pick_least_connections(&candidates, *rotation),
            *expected,
            "weights {weights:?} in_flight {in_flight:?} rotation {rotation}"
        );
    }
}

#[test]
fn strategy_names_round_trip() {
    for name in Strategy::NAMES {
        assert_eq!(Strategy::parse(name).map(Strategy::name), Some(name));
    }
    assert_eq!(Strategy::parse("random"), None);
}

#[test]
fn slow_start_ramps_linearly_in_tenths_from_ten_percent() {
    let window = std::time::Duration::from_secs(30);
    let cases = [
        (0, 1),
        (3, 1),
        (4, 2),
        (10, 4),
        (15, 5),
        (20, 7),
        (29, 9),
        (30, 10),
        (300, 10),
    ];
    for (seconds, tenths) in cases {
        assert_eq!(
            ramp_tenths(std::time::Duration::from_secs(seconds), window),
            tenths,
            "{seconds}s into 30s"
        );
    }
    assert_eq!(
        ramp_tenths(std::time::Duration::ZERO, std::time::Duration::ZERO),
        10
    );
}

#[test]
fn ramp_admits_its_share_of_any_run_of_picks() {
    for tenths in 1..=10 {
        let admitted = (0..10_000).filter(|&r| ramp_admits(r, tenths)).count();
        let expected = tenths as usize * 1000;
        assert!(
            admitted.abs_diff(expected) < 300,
            "{tenths} tenths admitted {admitted} of 10000"
        );
    }
}

#[test]
fn least_connections_caps_a_ramping_servers_share() {
    let mut candidates = healthy(&[1, 1, 1]);
    candidates[2].ramp_tenths = 2;
    let mut counts = [0usize; 3];
    for rotation in 0..3000 {
        let pick = pick_least_connections(&candidates, rotation).expect("pick");
        counts[pick] += 1;
    }
    // A fair share is 1000; at 20% of its weight the ramping server gets about 200.
    assert!((120..=280).contains(&counts[2]), "{counts:?}");
    // Alone, it is still used: slow start never refuses a request.
    let alone = [candidates[2]];
    assert_eq!(pick_least_connections(&alone, 7), Some(0));
}

#[test]
fn normalized_weights_have_no_common_factor() {
    for (mut weights, expected) in [
        (vec![30, 20, 10], vec![3, 2, 1]),
        (vec![10, 10, 10], vec![1, 1, 1]),
        (vec![10, 10, 1], vec![10, 10, 1]),
        (vec![0, 0], vec![0, 0]),
    ] {
        normalized(&mut weights);
        assert_eq!(weights, expected);
    }
}

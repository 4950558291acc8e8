use super::*;

#[test]
fn classify_table() {
    let cases = [
        (Some(200), (false, false)),
        (Some(404), (false, false)),
        (Some(500), (true, false)),
        (Some(501), (true, false)),
        (Some(502), (true, true)),
        (Some(503), (true, true)),
        (Some(504), (true, true)),
        (Some(599), (true, false)),
        (None, (true, true)),
    ];
    for (status, expected) in cases {
        assert_eq!(classify(status), expected, "{status:?}");
    }
}

#[test]
fn broken_rule_table() {
    use Reason::*;
    // (consecutive 5xx, consecutive gateway errors, thresholds (5xx, gateway), expected)
    let cases = [
        (4, 0, (5, 3), None),
        (5, 0, (5, 3), Some(Consecutive5xx)),
        (3, 3, (5, 3), Some(ConsecutiveGatewayErrors)),
        (9, 9, (0, 0), None),
        (9, 2, (0, 3), None),
        (1, 1, (1, 0), Some(Consecutive5xx)),
    ];
    for (fives, gateway, (max_5xx, max_gateway), expected) in cases {
        assert_eq!(
            broken_rule(fives, gateway, max_5xx, max_gateway),
            expected,
            "{fives} {gateway} {max_5xx} {max_gateway}"
        );
    }
}

#[test]
fn rate_breaks_table() {
    // (errors, total, threshold %, min requests, expected)
    let cases = [
        (10, 19, 50, 20, false), // too few answers yet
        (10, 20, 50, 20, true),
        (9, 20, 50, 20, false),
        (6, 20, 30, 20, true),
        (0, 0, 1, 0, false), // an empty window never breaks
        (100, 100, 100, 20, true),
        (99, 100, 100, 20, false),
    ];
    for (errors, total, threshold, min, expected) in cases {
        assert_eq!(
            rate_breaks(errors, total, threshold, min),
            expected,
            "{errors}/{total} at {threshold}% (min {min})"
        );
    }
}

#[test]
fn ejection_time_grows_with_each_ejection_up_to_ten_times_the_base() {
    let base = Duration::from_secs(30);
    let times: Vec<u64> = [0, 1, 2, 3, 10, 11, 50]
        .iter()
        .map(|&n| ejection_time(base, n).as_secs())
        .collect();
    assert_eq!(times, vec![30, 30, 60, 90, 300, 300, 300]);
}

#[test]
fn may_eject_table() {
    // (group size, ejected now, available now, max %, expected)
    let cases = [
        (3, 0, 3, 50, true),
        (3, 1, 2, 50, false),
        (4, 1, 3, 50, true),
        (4, 2, 2, 50, false),
        (2, 0, 2, 100, true),
        (2, 1, 1, 100, false), // never the last available server
        (1, 0, 1, 100, false),
        (10, 0, 10, 10, true),
        (10, 1, 9, 10, false),
        (5, 0, 5, 10, false),  // 10% of 5 is no whole server
        (3, 0, 1, 100, false), // two down by their health check: the last one stays
    ];
    for (size, ejected, available, max, expected) in cases {
        assert_eq!(
            may_eject(size, ejected, available, max),
            expected,
            "size {size} ejected {ejected} available {available} max {max}%"
        );
    }
}

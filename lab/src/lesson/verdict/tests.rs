use super::*;

fn balance(name: &str, share: f64, p50: f64, p99: f64, mean: f64) -> Balance {
    Balance {
        name: name.to_owned(),
        share,
        p50,
        p99,
        mean,
    }
}

#[test]
fn durations_and_shares_read_well() {
    let cases = [
        (0.423, "0.42 ms"),
        (3.25, "3.2 ms"),
        (240.4, "240 ms"),
        (1100.0, "1.1 s"),
    ];
    for (value, text) in cases {
        assert_eq!(ms(value), text, "{value}");
    }
    assert_eq!(pct(0.333), "33%");
    assert_eq!(shares(&[0.5, 0.333, 0.167]), "50/33/17%");
}

#[test]
fn slow_server_verdicts_follow_the_numbers() {
    let cases = [
        (
            vec![
                balance("round_robin", 0.333, 265.0, 495.0, 0.0),
                balance("least_connections", 0.09, 222.0, 240.0, 0.0),
            ],
            "round_robin sent the slow gateway g:3 33% of its requests (p50 265 ms, p99 495 ms); \
             least_connections sent it 9% (less than round_robin), p50 265 ms -> 222 ms, p99 495 ms -> 240 ms. ",
        ),
        (
            vec![
                balance("round_robin", 0.333, 10.0, 20.0, 0.0),
                balance("weighted", 0.333, 10.0, 20.0, 0.0),
            ],
            "round_robin sent the slow gateway g:3 33% of its requests (p50 10 ms, p99 20 ms); \
             weighted sent it 33% (as much as round_robin), p50 10 ms -> 10 ms, p99 20 ms -> 20 ms. ",
        ),
    ];
    for (runs, expected) in cases {
        assert_eq!(
            slow_server("g:3", &runs),
            format!("{expected}{SLOW_SERVER_REACTS}")
        );
    }
    assert_eq!(
        slow_server("g:3", &[]),
        "no run finished, so there is nothing to compare"
    );
    assert!(SLOW_SERVER_REACTS.contains("does not react to a server's latency"));
}

#[test]
fn the_slow_server_report_explains_its_tail() {
    let runs = [
        balance("round_robin", 0.333, 265.0, 495.0, 0.0),
        balance("weighted", 0.34, 262.0, 497.0, 0.0),
        balance("least_connections", 0.06, 222.0, 480.0, 0.0),
    ];
    assert_eq!(
        slow_server_tail(&runs).unwrap(),
        "Why the p99 barely moves: the p99 is the latency that 1 % of the requests exceed. Even \
         least_connections sent the slow gateway 6.0 % of the requests, more than 1 %, so under every strategy \
         the p99 is one of the slow gateway's answers (round_robin 495 ms, weighted 497 ms, least_connections \
         480 ms). What a strategy changes is how many requests get a slow answer: that shows in the p50, the \
         mean and the latency curves, not in the p99. A slower gateway (--slow-ms) is avoided more by least \
         connections and pushes its share towards 1 %."
    );
    let runs = [
        balance("round_robin", 0.333, 265.0, 495.0, 0.0),
        balance("least_connections", 0.004, 222.0, 40.0, 0.0),
    ];
    assert_eq!(
        slow_server_tail(&runs).unwrap(),
        "Why the p99 moved: the p99 is the latency that 1 % of the requests exceed, and least_connections \
         sent the slow gateway only 0.4 % of the requests, under 1 %, so its p99 is a fast gateway's answer \
         (round_robin 495 ms, least_connections 40 ms)."
    );
    assert_eq!(slow_server_tail(&[]), None);
}

#[test]
fn uneven_capacity_says_whether_weights_helped() {
    let equal = balance("equal weights", 0.333, 300.0, 800.0, 400.0);
    let good = balance("weights 3/2/1", 0.167, 250.0, 700.0, 320.0);
    let text = uneven_capacity("g:3", &equal, &good);
    assert_eq!(
        text,
        "weights 3/2/1 sent the weakest gateway g:3 17% of the requests instead of 33%; mean latency 400 ms -> \
         320 ms, p50 300 ms -> 250 ms, p99 800 ms -> 700 ms: weights matching capacity made clients wait less."
    );
    let bad = balance("weights 3/2/1", 0.167, 350.0, 900.0, 450.0);
    assert!(
        uneven_capacity("g:3", &equal, &bad).ends_with("did not make clients wait less this time.")
    );
}

#[test]
fn strategies_and_single_runs() {
    let runs = vec![
        ("round_robin".to_owned(), vec![0.34, 0.33, 0.33], 200.0),
        ("weighted".to_owned(), vec![0.5, 0.33, 0.17], 210.0),
    ];
    assert_eq!(
        strategies(&runs),
        "With identical gateways the strategies only spread the load differently (round_robin 34/33/33%, \
         weighted 50/33/17%); their p50s lie between 200 ms and 210 ms, so no tactic wins when nothing is uneven."
    );
    assert_eq!(
        single(100, 2, 3.0, 12.0, 950.4),
        "100 requests, 2 failed; p50 3.0 ms, p99 12 ms, 950 requests/s."
    );
}

#[test]
fn cache_verdicts_compare_with_the_uncached_run() {
    let run = |name: &str, hit_ratio, origin, p50| CacheRun {
        name: name.to_owned(),
        hit_ratio,
        origin,
        requests: 100,
        p50,
    };
    let text = cache(&[
        run("cache off", 0.0, 100, 400.0),
        run("cache on", 0.6, 40, 2.0),
        run("small tiers", 0.3, 70, 500.0),
    ]);
    assert_eq!(
        text,
        "cache off: 100 of 100 requests reached the gateways, p50 400 ms; cache on: hit ratio 60%, 40 of 100 \
         reached the gateways, p50 2.0 ms (200.0x faster); small tiers: hit ratio 30%, 70 of 100 reached the \
         gateways, p50 500 ms (0.8x slower)."
    );
}

#[test]
fn failing_server_compares_retries() {
    let run = |name: &str, dead, ejected, back| FailingRun {
        name: name.to_owned(),
        failed_half: 40,
        failed_dead: dead,
        failed: 40 + dead,
        requests: 500,
        ejected_after: ejected,
        back_after: back,
    };
    let text = failing_server(&[
        run("retries=2", 0, Some(3.2), Some(2.1)),
        run("no retries", 25, Some(3.0), None),
    ]);
    assert_eq!(
        text,
        "retries=2: 40 of 500 requests failed (40 while it failed half its requests, 0 while it was dead; ejected \
         after 3.2 s, taken back after 2.1 s); no retries: 65 of 500 requests failed (40 while it failed half its \
         requests, 25 while it was dead; ejected after 3.0 s, never taken back during the run). While the gateway \
         hung, retries saved requests: a timed-out GET went to another gateway (0 vs 25 failures); a 500 is an \
         answer, so it is never retried (40 vs 40)."
    );
}

#[test]
fn flood_verdicts_say_what_aging_did() {
    let strict = Waits {
        name: "aging off".to_owned(),
        high_p50: 0.1,
        high_max: 0.3,
        low_p50: 4.0,
        low_max: 5.6,
    };
    let aging = Waits {
        name: "aging on".to_owned(),
        high_p50: 0.9,
        high_max: 1.5,
        low_p50: 1.8,
        low_max: 2.4,
    };
    assert_eq!(
        priority_flood(&strict, &aging),
        "aging on cut the longest low-priority wait from 5.6 s to 2.4 s, while high-priority tasks waited 900 ms \
         at p50 (max 1.5 s) instead of 100 ms (max 300 ms); low p50 4.0 s -> 1.8 s."
    );
    assert!(priority_flood(&aging, &strict).starts_with("aging off did not shorten"));
}

#[test]
fn reload_verdicts_count_failures() {
    assert_eq!(
        reload(8, (3, 11), 812, 0),
        "8 config rewrites, generation 3 -> 11 (8 applied) during 812 requests: 0 failed, a reload never dropped \
         a request."
    );
    assert_eq!(
        reload(8, (3, 10), 812, 2),
        "8 config rewrites, generation 3 -> 10 (7 applied) during 812 requests: 2 failed."
    );
}

//! The verdict of each scenario: one or two sentences computed from its numbers, never canned, so a lesson that
//! did not happen says so. Pure, table-tested.

/// A duration in milliseconds as a reader wants it: "0.42 ms", "12 ms", "240 ms", "1.1 s".
pub fn ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// A share from 0 to 1 as a whole percentage.
pub fn pct(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// "less than", "as much as" or "more than": `value` against `base`, with a tolerance of one point of share.
fn compared(value: f64, base: f64) -> &'static str {
    if value < base - 0.01 {
        "less than"
    } else if value > base + 0.01 {
        "more than"
    } else {
        "as much as"
    }
}

/// One run of a balancing lesson: the share the watched server got, and the latencies clients saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub name: String,
    /// Share of answered requests the watched server (slow, weakest) got, from 0 to 1.
    pub share: f64,
    pub p50: f64,
    pub p99: f64,
    pub mean: f64,
}

/// What the strategies of `slow-server` react to, said after its numbers so that the verdict reads on its own.
pub const SLOW_SERVER_REACTS: &str = "Every gateway has the same weight in this lesson, so weighted \
    behaves like round robin here: its weights are static numbers from the config, and it does not react to a \
    server's latency (only health checks and passive ejection take a failing server out, under every strategy). \
    Least connections reacts without being told: a slow gateway holds its requests longer, so it has more in \
    flight and is picked less.";

/// `slow-server`: how much each strategy sent the slow gateway, against the first run (round robin), then what
/// each strategy reacts to.
pub fn slow_server(slow: &str, runs: &[Balance]) -> String {
    let Some((base, others)) = runs.split_first() else {
        return "no run finished, so there is nothing to compare".to_owned();
    };
    let mut text = format!(
        "{} sent the slow gateway {slow} {} of its requests (p50 {}, p99 {})",
        base.name,
        pct(base.share),
        ms(base.p50),
        ms(base.p99)
    );
    for run in others {
        text.push_str(&format!(
            "; {} sent it {} ({} {}), p50 {} -> {}, p99 {} -> {}",
            run.name,
            pct(run.share),
            compared(run.share, base.share),
            base.name,
            ms(base.p50),
            ms(run.p50),
            ms(base.p99),
            ms(run.p99)
        ));
    }
    text.push_str(". ");
    text.push_str(SLOW_SERVER_REACTS);
    text
}

/// `slow-server`: why the p99 moves so little (or, when a strategy kept the slow gateway under 1 % of the
/// requests, why it moved), from the numbers of the runs; `None` without runs.
pub fn slow_server_tail(runs: &[Balance]) -> Option<String> {
    let best = runs.iter().min_by(|a, b| a.share.total_cmp(&b.share))?;
    let p99s: Vec<String> = runs
        .iter()
        .map(|run| format!("{} {}", run.name, ms(run.p99)))
        .collect();
    Some(if best.share > 0.01 {
        format!(
            "Why the p99 barely moves: the p99 is the latency that 1 % of the requests exceed. Even {} sent the slow \
             gateway {:.1} % of the requests, more than 1 %, so under every strategy the p99 is one of the slow \
             gateway's answers ({}). What a strategy changes is how many requests get a slow answer: that shows in \
             the p50, the mean and the latency curves, not in the p99. A slower gateway (--slow-ms) is avoided \
             more by least connections and pushes its share towards 1 %.",
            best.name,
            best.share * 100.0,
            p99s.join(", ")
        )
    } else {
        format!(
            "Why the p99 moved: the p99 is the latency that 1 % of the requests exceed, and {} sent the slow \
             gateway only {:.1} % of the requests, under 1 %, so its p99 is a fast gateway's answer ({}).",
            best.name,
            best.share * 100.0,
            p99s.join(", ")
        )
    })
}

/// `uneven-capacity`: equal weights (first run) against weights matching capacity (second).
pub fn uneven_capacity(weakest: &str, equal: &Balance, weighted: &Balance) -> String {
    let better = weighted.mean < equal.mean;
    format!(
        "{} sent the weakest gateway {weakest} {} of the requests instead of {}; mean latency {} -> {}, p50 {} -> {}, \
         p99 {} -> {}: {}.",
        weighted.name,
        pct(weighted.share),
        pct(equal.share),
        ms(equal.mean),
        ms(weighted.mean),
        ms(equal.p50),
        ms(weighted.p50),
        ms(equal.p99),
        ms(weighted.p99),
        if better {
            "weights matching capacity made clients wait less"
        } else {
            "the weights did not make clients wait less this time"
        }
    )
}

/// A run's share of requests per server, as "33/33/33%".
pub fn shares(shares: &[f64]) -> String {
    let parts: Vec<String> = shares
        .iter()
        .map(|share| format!("{:.0}", share * 100.0))
        .collect();
    format!("{}%", parts.join("/"))
}

/// `strategies` (identical gateways): how each strategy spread the load, and how little the latency differs.
pub fn strategies(runs: &[(String, Vec<f64>, f64)]) -> String {
    if runs.is_empty() {
        return "no run finished, so there is nothing to compare".to_owned();
    }
    let spread: Vec<String> = runs
        .iter()
        .map(|(name, run_shares, _)| format!("{name} {}", shares(run_shares)))
        .collect();
    let p50s = runs.iter().map(|(_, _, p50)| *p50);
    let low = p50s.clone().fold(f64::INFINITY, f64::min);
    let high = p50s.fold(0.0, f64::max);
    format!(
        "With identical gateways the strategies only spread the load differently ({}); their p50s lie between {} and {}, \
         so no tactic wins when nothing is uneven.",
        spread.join(", "),
        ms(low),
        ms(high)
    )
}

/// `single`: the one run's outcome.
pub fn single(requests: u64, failed: u64, p50: f64, p99: f64, per_s: f64) -> String {
    format!(
        "{requests} requests, {failed} failed; p50 {}, p99 {}, {per_s:.0} requests/s.",
        ms(p50),
        ms(p99)
    )
}

/// One run of a cache lesson.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheRun {
    pub name: String,
    pub hit_ratio: f64,
    /// Requests that reached a gateway.
    pub origin: u64,
    pub requests: u64,
    pub p50: f64,
}

/// `cache` and `hot-key`: each run's hit ratio, origin load and p50, against the first run (cache off).
pub fn cache(runs: &[CacheRun]) -> String {
    let Some((base, others)) = runs.split_first() else {
        return "no run finished, so there is nothing to compare".to_owned();
    };
    let mut text = format!(
        "{}: {} of {} requests reached the gateways, p50 {}",
        base.name,
        base.origin,
        base.requests,
        ms(base.p50)
    );
    for run in others {
        let faster = if run.p50 > 0.0 {
            base.p50 / run.p50
        } else {
            0.0
        };
        text.push_str(&format!(
            "; {}: hit ratio {}, {} of {} reached the gateways, p50 {} ({faster:.1}x {})",
            run.name,
            pct(run.hit_ratio),
            run.origin,
            run.requests,
            ms(run.p50),
            if faster >= 1.0 { "faster" } else { "slower" }
        ));
    }
    text.push('.');
    text
}

/// One run of `failing-server`.
#[derive(Debug, Clone, PartialEq)]
pub struct FailingRun {
    pub name: String,
    /// Failed requests while the gateway answered half its requests with 500.
    pub failed_half: u64,
    /// Failed requests while it was dead (hanging, health failing).
    pub failed_dead: u64,
    pub failed: u64,
    pub requests: u64,
    /// Seconds from its death to the proxy taking it out of rotation.
    pub ejected_after: Option<f64>,
    /// Seconds from its recovery to the proxy taking it back.
    pub back_after: Option<f64>,
}

fn seconds(value: Option<f64>, what: &str) -> String {
    match value {
        Some(seconds) => format!("{what} after {seconds:.1} s"),
        None => format!("never {what} during the run"),
    }
}

/// `failing-server`: errors clients saw in each phase with and without retries, and the health check's timing.
pub fn failing_server(runs: &[FailingRun]) -> String {
    let phases: Vec<String> = runs
        .iter()
        .map(|run| {
            format!(
                "{}: {} of {} requests failed ({} while it failed half its requests, {} while it was dead; {}, {})",
                run.name,
                run.failed,
                run.requests,
                run.failed_half,
                run.failed_dead,
                seconds(run.ejected_after, "ejected"),
                seconds(run.back_after, "taken back")
            )
        })
        .collect();
    let mut text = phases.join("; ");
    if let [with, without] = runs {
        text.push_str(&format!(
            ". While the gateway hung, retries {} ({} vs {} failures); a 500 is an answer, so it is never retried \
             ({} vs {})",
            if with.failed_dead < without.failed_dead {
                "saved requests: a timed-out GET went to another gateway"
            } else {
                "saved nothing"
            },
            with.failed_dead,
            without.failed_dead,
            with.failed_half,
            without.failed_half
        ));
    }
    text.push('.');
    text
}

/// Waits of one `priority-flood` run, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Waits {
    pub name: String,
    pub high_p50: f64,
    pub high_max: f64,
    pub low_p50: f64,
    pub low_max: f64,
}

/// `priority-flood`: strict priority (first run) against aging (second).
pub fn priority_flood(strict: &Waits, aging: &Waits) -> String {
    let s = |seconds: f64| ms(seconds * 1000.0);
    let effect = if aging.low_max < strict.low_max {
        format!(
            "{} cut the longest low-priority wait from {} to {}",
            aging.name,
            s(strict.low_max),
            s(aging.low_max)
        )
    } else {
        format!(
            "{} did not shorten the longest low-priority wait ({} vs {})",
            aging.name,
            s(aging.low_max),
            s(strict.low_max)
        )
    };
    format!(
        "{effect}, while high-priority tasks waited {} at p50 (max {}) instead of {} (max {}); low p50 {} -> {}.",
        s(aging.high_p50),
        s(aging.high_max),
        s(strict.high_p50),
        s(strict.high_max),
        s(strict.low_p50),
        s(aging.low_p50)
    )
}

/// `reload-under-load`: reloads applied during the load, and what clients saw.
pub fn reload(rewrites: u64, generations: (u64, u64), requests: u64, failed: u64) -> String {
    let (from, to) = generations;
    format!(
        "{rewrites} config rewrites, generation {from} -> {to} ({} applied) during {requests} requests: {failed} failed{}.",
        to.saturating_sub(from),
        if failed == 0 {
            ", a reload never dropped a request"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
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
        assert!(uneven_capacity("g:3", &equal, &bad)
            .ends_with("did not make clients wait less this time."));
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
}

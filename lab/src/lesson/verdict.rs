//! The verdict of each scenario: one or two sentences computed from its numbers, never canned, so a lesson that
//! did not happen says so. Pure, table-tested.

pub mod canary;
pub mod locality;
pub mod scale_out;
pub mod traffic;

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
mod tests;

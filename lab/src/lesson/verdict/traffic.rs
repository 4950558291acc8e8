//! The verdicts of `latency-aware` (which strategy kept clients away from a slow gateway) and `bad-server` (what
//! outlier detection saved clients from). Pure, table-tested.

use super::{ms, pct, Balance};

/// What each strategy of `latency-aware` reacts to, said after the numbers.
pub const LATENCY_AWARE_REACTS: &str = "Round robin ignores latency. Least connections and p2c see it only \
    through requests in flight (a slow gateway holds its requests longer); p2c draws two gateways at random and \
    takes the less loaded, so it never scans them all. Peak EWMA measures each gateway's response time and prices \
    it by in-flight requests + 1, so it keeps away from a slow gateway even while it is idle.";

/// `latency-aware`: the winner is the run with the lowest mean latency; each run's share to the slow gateway and
/// its p50/p99 follow, against the first run (round robin).
pub fn latency_aware(slow: &str, runs: &[Balance]) -> String {
    let Some(base) = runs.first() else {
        return "no run finished, so there is nothing to compare".to_owned();
    };
    let Some(best) = runs.iter().min_by(|a, b| a.mean.total_cmp(&b.mean)) else {
        return "no run finished, so there is nothing to compare".to_owned();
    };
    let each: Vec<String> = runs
        .iter()
        .map(|run| {
            format!(
                "{} sent the slow gateway {} (mean {}, p50 {}, p99 {})",
                run.name,
                pct(run.share),
                ms(run.mean),
                ms(run.p50),
                ms(run.p99)
            )
        })
        .collect();
    let win = if best.name == base.name {
        format!(
            "{} had the lowest mean latency: no strategy beat it here",
            best.name
        )
    } else {
        format!(
            "{} won: mean {} against {}'s {}, sending the slow gateway {} {} instead of {}",
            best.name,
            ms(best.mean),
            base.name,
            ms(base.mean),
            slow,
            pct(best.share),
            pct(base.share)
        )
    };
    format!("{win}. {}. {LATENCY_AWARE_REACTS}", each.join("; "))
}

/// One run of `bad-server`.
#[derive(Debug, Clone, PartialEq)]
pub struct BadServerRun {
    pub name: String,
    pub requests: u64,
    /// Answers that were not 2xx (the bad gateway's 500s), and transport errors.
    pub failed: u64,
    /// Seconds from the run's start to the bad gateway's ejection; `None`: never ejected.
    pub ejected_after: Option<f64>,
}

/// `bad-server`: without outlier detection (first run) against with it (second).
pub fn bad_server(bad: &str, runs: &[BadServerRun]) -> String {
    let [without, with] = runs else {
        return "the two runs did not both finish, so there is nothing to compare".to_owned();
    };
    let share = |run: &BadServerRun| {
        if run.requests == 0 {
            0.0
        } else {
            run.failed as f64 / run.requests as f64
        }
    };
    let ejection = match with.ejected_after {
        Some(s) => format!(
            "outlier detection ejected {bad} {s:.1} s into the run, while its /health still passed"
        ),
        None => format!("outlier detection never ejected {bad}"),
    };
    let outcome = if with.failed < without.failed {
        "fewer clients saw its errors"
    } else {
        "it saved no client an error"
    };
    format!(
        "{}: {} of {} requests failed ({}); {}: {} of {} ({}): {ejection}, so {outcome}. The health check alone \
         never takes it out: it answers /health with 200.",
        without.name,
        without.failed,
        without.requests,
        pct(share(without)),
        with.name,
        with.failed,
        with.requests,
        pct(share(with))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(name: &str, share: f64, mean: f64) -> Balance {
        Balance {
            name: name.to_owned(),
            share,
            p50: mean / 2.0,
            p99: mean * 4.0,
            mean,
        }
    }

    #[test]
    fn the_lowest_mean_wins_and_each_run_is_named() {
        let runs = [
            balance("round_robin", 0.33, 400.0),
            balance("least_connections", 0.08, 150.0),
            balance("p2c", 0.1, 170.0),
            balance("ewma", 0.02, 60.0),
        ];
        let text = latency_aware("g:3", &runs);
        assert!(
            text.starts_with("ewma won: mean 60 ms against round_robin's 400 ms, sending the slow gateway g:3 2% instead of 33%."),
            "{text}"
        );
        assert!(text.contains("p2c sent the slow gateway 10% (mean 170 ms, p50 85 ms, p99 680 ms)"));
        assert!(
            latency_aware("g:3", &runs[..1]).starts_with("round_robin had the lowest mean latency")
        );
        assert!(latency_aware("g:3", &[]).starts_with("no run"));
    }

    #[test]
    fn bad_server_compares_the_two_runs() {
        let run = |name: &str, failed, ejected_after| BadServerRun {
            name: name.to_owned(),
            requests: 400,
            failed,
            ejected_after,
        };
        let text = bad_server(
            "g:3",
            &[
                run("no outlier detection", 40, None),
                run("outlier detection", 6, Some(0.8)),
            ],
        );
        assert!(
            text.starts_with("no outlier detection: 40 of 400 requests failed (10%); outlier detection: 6 of 400 (2%): outlier detection ejected g:3 0.8 s into the run"),
            "{text}"
        );
        assert!(text.contains("so fewer clients saw its errors"));
        let none = bad_server("g:3", &[run("a", 40, None), run("b", 41, None)]);
        assert!(
            none.contains("never ejected g:3, so it saved no client an error"),
            "{none}"
        );
        assert!(bad_server("g:3", &[]).starts_with("the two runs"));
    }
}

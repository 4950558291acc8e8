//! `scale-out`'s numbers and verdict: which share of the requests the added gateway took once the
//! proxy had it, and whether the removed one answered anything once the requests it held had
//! finished. Pure: a run's timeline and the lesson's instants in, figures and a sentence out.

use crate::bench::timeline::Timeline;

use super::pct;

/// When each step of the lesson happened, in seconds since the load started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marks {
    /// The added gateway's record was published.
    pub added: f64,
    /// The proxy listed the added gateway as available.
    pub joined: f64,
    /// The proxy gave it its whole weight (slow start over, or the same instant without one).
    pub ramped: f64,
    /// A record was removed.
    pub removed: f64,
    /// The proxy no longer listed the removed gateway.
    pub gone: f64,
    /// The load stopped.
    pub end: f64,
}

/// What the lesson measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleOut {
    pub added: String,
    pub removed: String,
    /// Gateways once the added one joined (its fair share is one of these).
    pub servers_after_join: usize,
    /// The added gateway's share of the requests answered between its whole weight and the
    /// removal.
    pub added_share: f64,
    /// Requests the added gateway answered in the whole run.
    pub added_requests: u64,
    /// The removed gateway's share before its record went.
    pub removed_share_before: f64,
    /// Requests the removed gateway answered after it left the proxy's list plus the slowest
    /// request's latency: none may have been sent to it after it left, so any here is a request
    /// the proxy sent to a server DNS no longer names.
    pub removed_after_drain: u64,
    /// Seconds after which the removed gateway's last answer came, counted from `gone`.
    pub last_removed_answer: Option<f64>,
    pub marks: Marks,
    /// The slowest request, in seconds.
    pub drain_s: f64,
    pub requests: u64,
    pub failed: u64,
}

/// `server`'s answers and all answers in the buckets that lie wholly within `[from, to)` seconds.
pub fn counts_between(timeline: &Timeline, server: &str, from: f64, to: f64) -> (u64, u64) {
    timeline
        .buckets
        .iter()
        .filter(|bucket| bucket.t_s >= from && bucket.t_s + timeline.bucket_s <= to)
        .fold((0, 0), |(mine, all), bucket| {
            let answered: u64 = bucket
                .upstreams
                .iter()
                .filter(|(name, _)| name.as_str() != "none")
                .map(|(_, count)| count)
                .sum();
            (
                mine + bucket.upstreams.get(server).copied().unwrap_or(0),
                all + answered,
            )
        })
}

/// The start of the last bucket in which `server` answered.
pub fn last_answer(timeline: &Timeline, server: &str) -> Option<f64> {
    timeline
        .buckets
        .iter()
        .rev()
        .find(|bucket| bucket.upstreams.get(server).is_some_and(|&count| count > 0))
        .map(|bucket| bucket.t_s)
}

fn share((mine, all): (u64, u64)) -> f64 {
    if all == 0 {
        0.0
    } else {
        mine as f64 / all as f64
    }
}

/// Which gateways the lesson added and removed, and how many there were once the newcomer joined.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub added: &'a str,
    pub removed: &'a str,
    pub servers_after_join: usize,
}

/// The run's totals: requests, failed ones, and the slowest request in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub requests: u64,
    pub failed: u64,
    pub drain_s: f64,
}

/// The lesson's figures from its run's `timeline`.
pub fn measure(timeline: &Timeline, change: Change<'_>, marks: Marks, load: Load) -> ScaleOut {
    let Change {
        added,
        removed,
        servers_after_join,
    } = change;
    let Load {
        requests,
        failed,
        drain_s,
    } = load;
    let added_requests = timeline
        .buckets
        .iter()
        .filter_map(|bucket| bucket.upstreams.get(added))
        .sum();
    let last = last_answer(timeline, removed);
    ScaleOut {
        added: added.to_owned(),
        removed: removed.to_owned(),
        servers_after_join,
        added_share: share(counts_between(timeline, added, marks.ramped, marks.removed)),
        added_requests,
        removed_share_before: share(counts_between(timeline, removed, 0.0, marks.added)),
        removed_after_drain: counts_between(timeline, removed, marks.gone + drain_s, f64::INFINITY)
            .0,
        last_removed_answer: last.map(|at| (at + timeline.bucket_s - marks.gone).max(0.0)),
        marks,
        drain_s,
        requests,
        failed,
    }
}

/// The verdict: did the added gateway take traffic, did the removed one stop, did anything fail.
pub fn scale_out(figures: &ScaleOut) -> String {
    let marks = figures.marks;
    let fair = if figures.servers_after_join == 0 {
        0.0
    } else {
        1.0 / figures.servers_after_join as f64
    };
    let joined = if figures.added_requests == 0 {
        format!(
            "The added gateway {} got no request: the proxy did not pick up its record.",
            figures.added
        )
    } else {
        let ramp = marks.ramped - marks.joined;
        let ramp = if ramp >= 0.5 {
            format!(", reached its whole weight {ramp:.1} s later (slow start)")
        } else {
            String::new()
        };
        format!(
            "The added gateway {} joined {:.1} s after its record was published (the proxy's next resolution, then its \
             health check){ramp} and then took {} of the requests (a fair share of {} gateways is {}).",
            figures.added,
            marks.joined - marks.added,
            pct(figures.added_share),
            figures.servers_after_join,
            pct(fair)
        )
    };
    let left = if figures.removed_after_drain == 0 {
        format!(
            "{} (which had {} before) left the proxy's list {:.1} s after its record was removed and answered nothing \
             once the requests it held had finished.",
            figures.removed,
            pct(figures.removed_share_before),
            marks.gone - marks.removed
        )
    } else {
        format!(
            "{} still answered {} requests more than {:.1} s (the slowest request) after it left the proxy's list.",
            figures.removed, figures.removed_after_drain, figures.drain_s
        )
    };
    let failed = if figures.failed == 0 {
        format!(
            "{} requests, none failed: the proxy followed DNS under load without dropping one.",
            figures.requests
        )
    } else {
        format!(
            "{} of {} requests failed while the records changed.",
            figures.failed, figures.requests
        )
    };
    format!("{joined} {left} {failed}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::bench::timeline::Bucket;

    /// A timeline of one-second buckets, each with (server, count) answers.
    fn timeline(buckets: &[&[(&str, u64)]]) -> Timeline {
        Timeline {
            bucket_s: 1.0,
            buckets: buckets
                .iter()
                .enumerate()
                .map(|(i, answers)| Bucket {
                    t_s: i as f64,
                    requests: answers.iter().map(|(_, n)| n).sum(),
                    upstreams: answers.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect(),
                    ..Bucket::default()
                })
                .collect(),
        }
    }

    const MARKS: Marks = Marks {
        added: 2.0,
        joined: 2.5,
        ramped: 3.0,
        removed: 5.0,
        gone: 6.0,
        end: 9.0,
    };

    const CHANGE: Change<'static> = Change {
        added: "d",
        removed: "c",
        servers_after_join: 3,
    };

    fn load(requests: u64, failed: u64) -> Load {
        Load {
            requests,
            failed,
            drain_s: 0.5,
        }
    }

    #[test]
    fn the_added_share_and_the_drain_are_measured_in_their_windows() {
        let run = timeline(&[
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 4), ("c", 4), ("d", 2)],
            &[("a", 4), ("c", 4), ("d", 2)],
            &[("a", 5), ("c", 2), ("d", 3)],
            &[("a", 5), ("c", 1), ("d", 4)],
            &[("a", 5), ("d", 5)],
            &[("a", 5), ("d", 5)],
        ]);
        let figures = measure(&run, CHANGE, MARKS, load(85, 0));
        assert!((figures.added_share - 0.2).abs() < 1e-9, "{figures:?}");
        assert!((figures.removed_share_before - 0.5).abs() < 1e-9);
        assert_eq!(figures.added_requests, 21);
        // The answer in [6, 7) is within the drain; from 7 on there is none.
        assert_eq!(figures.removed_after_drain, 0);
        assert_eq!(figures.last_removed_answer, Some(1.0));
        let verdict = scale_out(&figures);
        assert!(verdict.contains("d joined 0.5 s after"), "{verdict}");
        assert!(
            verdict.contains(
                "reached its whole weight 0.5 s later (slow start) and then took 20% of the requests \
                 (a fair share of 3 gateways is 33%)."
            ),
            "{verdict}"
        );
        assert!(verdict.contains("c (which had 50% before) left the proxy's list 1.0 s after"));
        assert!(verdict.contains("85 requests, none failed"), "{verdict}");
    }

    #[test]
    fn a_newcomer_without_traffic_a_lingering_server_and_failures_are_said() {
        let run = timeline(&[
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("c", 5)],
            &[("a", 5), ("none", 1)],
        ]);
        let figures = measure(&run, CHANGE, MARKS, load(91, 1));
        assert_eq!(figures.added_requests, 0);
        assert_eq!(figures.removed_after_drain, 5);
        let verdict = scale_out(&figures);
        assert!(verdict.contains("d got no request"), "{verdict}");
        assert!(verdict.contains("c still answered 5 requests"), "{verdict}");
        assert!(verdict.contains("1 of 91 requests failed"), "{verdict}");
    }
}

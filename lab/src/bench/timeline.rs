//! What happened over a run's time: requests, rejections and errors per time bucket, and which server answered.
//! The plots of errors over time and of each server's share over time are drawn from it. Pure: samples in,
//! buckets out.

use std::collections::BTreeMap;

use serde::Serialize;

/// How one request ended, as far as the timeline cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Any status below 400.
    Ok,
    /// 429: the proxy (or a backend) refused the request to protect itself; the client should slow down.
    TooManyRequests,
    /// 503: nothing could serve the request now (no healthy server, a full queue).
    Unavailable,
    /// Any other 4xx or 5xx.
    OtherStatus,
    /// No response at all (connect error, timeout).
    Transport,
}

impl Outcome {
    /// The outcome of a response with `status`.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            429 => Outcome::TooManyRequests,
            503 => Outcome::Unavailable,
            400.. => Outcome::OtherStatus,
            _ => Outcome::Ok,
        }
    }
}

/// One finished request: when it finished (milliseconds since the run started), how, and which server answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at_ms: u64,
    pub outcome: Outcome,
    pub upstream: String,
}

/// The counts of one bucket, which starts `t_s` seconds into the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    pub t_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub too_many_requests: u64,
    pub unavailable: u64,
    pub other_errors: u64,
    pub transport_errors: u64,
    /// `X-Upstream-Server` to count (`none` when absent).
    pub upstreams: BTreeMap<String, u64>,
}

impl Bucket {
    /// Every request that did not succeed, whatever the reason.
    pub fn failed(&self) -> u64 {
        self.too_many_requests + self.unavailable + self.other_errors + self.transport_errors
    }
}

/// A run's buckets, each `bucket_s` seconds long.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    pub bucket_s: f64,
    pub buckets: Vec<Bucket>,
}

/// About this many buckets per run: enough to see a change, few enough that each holds a useful count.
const BUCKETS: u64 = 40;

/// The bucket width for a run that lasted `elapsed_ms`: a whole number of 100 ms steps, at least one.
pub fn bucket_ms(elapsed_ms: u64) -> u64 {
    (elapsed_ms / BUCKETS).div_ceil(100).max(1) * 100
}

/// Buckets `samples` (in any order) of a run that lasted `elapsed_ms`; empty buckets are kept, so time stays
/// linear on the plot.
pub fn build(samples: &[Sample], elapsed_ms: u64) -> Timeline {
    let width = bucket_ms(elapsed_ms);
    let last = samples
        .iter()
        .map(|sample| sample.at_ms)
        .max()
        .unwrap_or(0)
        .max(elapsed_ms.saturating_sub(1));
    let count = usize::try_from(last / width + 1).unwrap_or(usize::MAX);
    let mut buckets: Vec<Bucket> = (0..count)
        .map(|index| Bucket {
            t_s: (index as u64 * width) as f64 / 1000.0,
            ..Bucket::default()
        })
        .collect();
    for sample in samples {
        let index = usize::try_from(sample.at_ms / width).unwrap_or(usize::MAX);
        let Some(bucket) = buckets.get_mut(index) else {
            continue;
        };
        bucket.requests += 1;
        match sample.outcome {
            Outcome::Ok => bucket.ok += 1,
            Outcome::TooManyRequests => bucket.too_many_requests += 1,
            Outcome::Unavailable => bucket.unavailable += 1,
            Outcome::OtherStatus => bucket.other_errors += 1,
            Outcome::Transport => bucket.transport_errors += 1,
        }
        if sample.outcome != Outcome::Transport {
            *bucket.upstreams.entry(sample.upstream.clone()).or_default() += 1;
        }
    }
    Timeline {
        bucket_s: width as f64 / 1000.0,
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        let cases = [
            (200, Outcome::Ok),
            (304, Outcome::Ok),
            (401, Outcome::OtherStatus),
            (429, Outcome::TooManyRequests),
            (500, Outcome::OtherStatus),
            (502, Outcome::OtherStatus),
            (503, Outcome::Unavailable),
        ];
        for (status, outcome) in cases {
            assert_eq!(Outcome::of_status(status), outcome, "{status}");
        }
    }

    #[test]
    fn bucket_widths_grow_with_the_run() {
        let cases = [
            (0, 100),
            (1_000, 100),
            (4_000, 100),
            (4_100, 200),
            (60_000, 1_500),
        ];
        for (elapsed, width) in cases {
            assert_eq!(bucket_ms(elapsed), width, "{elapsed}");
        }
    }

    #[test]
    fn samples_land_in_their_bucket() {
        let sample = |at_ms, outcome, upstream: &str| Sample {
            at_ms,
            outcome,
            upstream: upstream.to_owned(),
        };
        let samples = [
            sample(10, Outcome::Ok, "a"),
            sample(99, Outcome::TooManyRequests, "none"),
            sample(150, Outcome::Unavailable, "none"),
            sample(160, Outcome::Transport, "none"),
            sample(390, Outcome::OtherStatus, "b"),
        ];
        let timeline = build(&samples, 400);
        assert_eq!(timeline.bucket_s, 0.1);
        assert_eq!(timeline.buckets.len(), 4);
        let [first, second, third, fourth] = &timeline.buckets[..] else {
            panic!("{timeline:?}");
        };
        assert_eq!(
            (first.requests, first.ok, first.too_many_requests),
            (2, 1, 1)
        );
        assert_eq!(first.upstreams.get("a"), Some(&1));
        assert_eq!((second.unavailable, second.transport_errors), (1, 1));
        // A request with no response has no server to count.
        assert_eq!(second.upstreams.get("none"), Some(&1));
        assert_eq!(third.requests, 0);
        assert_eq!((fourth.t_s, fourth.other_errors), (0.3, 1));
        assert_eq!(timeline.buckets.iter().map(Bucket::failed).sum::<u64>(), 4);
    }
}

//! Line charts over a run's time (errors per second, each server's share, the config generation) and over any
//! other linear axis. Pure, like the rest of `plot`.

use plotters::prelude::*;

use super::{builder, legend, render, run_colour, Line, PlotError};
use crate::bench::timeline::{Bucket, Timeline};
use crate::bench::RunReport;

/// A line chart with linear axes from 0; `lines` are drawn in the run colours, in order.
///
/// # Errors
/// plotters fails to draw.
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
) -> Result<String, PlotError> {
    let points = lines.iter().flat_map(|line| line.points.iter());
    let x_high = points.clone().map(|&(x, _)| x).fold(0.0, f64::max);
    let y_high = points.map(|&(_, y)| y).fold(0.0, f64::max);
    // An axis from 0 to 0 cannot be drawn; 1 keeps an all-zero chart (no errors at all) readable.
    let x_high = if x_high > 0.0 { x_high } else { 1.0 };
    let y_high = if y_high > 0.0 { y_high * 1.1 } else { 1.0 };
    render(title, |root| {
        let mut chart = builder(root, title).build_cartesian_2d(0.0..x_high, 0.0..y_high)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x: &f64| format!("{x:.1}"))
            .y_label_formatter(&|y: &f64| format!("{y:.1}"))
            .draw()?;
        for (index, line) in lines.iter().enumerate() {
            let colour = run_colour(index);
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// A per-second rate of `count` in each bucket of `timeline`, plotted at the bucket's middle.
fn rate(timeline: &Timeline, count: impl Fn(&Bucket) -> u64) -> Vec<(f64, f64)> {
    let width = timeline.bucket_s.max(f64::EPSILON);
    timeline
        .buckets
        .iter()
        .map(|bucket| (bucket.t_s + width / 2.0, count(bucket) as f64 / width))
        .collect()
}

/// Failed requests per second of every run: 429s and 503s apart from other failures (they are protections at
/// work, not breakage), each only when the run had some, and the total when a run had none at all.
pub fn errors_over_time(runs: &[RunReport]) -> Vec<Line> {
    type Count = fn(&Bucket) -> u64;
    let kinds: [(&str, Count); 3] = [
        ("429", |bucket| bucket.too_many_requests),
        ("503", |bucket| bucket.unavailable),
        ("other", |bucket| {
            bucket.other_errors + bucket.transport_errors
        }),
    ];
    let mut lines = Vec::new();
    for run in runs {
        let timeline = &run.report.timeline;
        let mut any = false;
        for (kind, count) in kinds {
            if timeline.buckets.iter().map(count).sum::<u64>() > 0 {
                any = true;
                lines.push(Line {
                    name: format!("{}: {kind}", run.name),
                    points: rate(timeline, count),
                });
            }
        }
        if !any {
            lines.push(Line {
                name: format!("{}: none failed", run.name),
                points: rate(timeline, Bucket::failed),
            });
        }
    }
    lines
}

/// Each server's share (in %) of the requests answered in each bucket of one run. A bucket that answered fewer
/// than a quarter of what a typical (median) bucket did is left out rather than drawn: the last one of a run
/// holds only the stragglers, often all from the slowest server, and drew a spike to 100 % that says nothing
/// about balancing; a bucket nothing answered in is left out too, rather than drawn as 0 %.
pub fn shares_over_time(run: &RunReport) -> Vec<Line> {
    let timeline = &run.report.timeline;
    let width = timeline.bucket_s;
    let answered =
        |bucket: &crate::bench::timeline::Bucket| -> u64 { bucket.upstreams.values().sum() };
    let mut counts: Vec<u64> = timeline
        .buckets
        .iter()
        .map(answered)
        .filter(|&count| count > 0)
        .collect();
    counts.sort_unstable();
    let typical = counts.get(counts.len() / 2).copied().unwrap_or(0);
    let mut servers: Vec<&String> = run
        .report
        .upstreams
        .keys()
        .filter(|server| server.as_str() != "none")
        .collect();
    servers.dedup();
    servers
        .into_iter()
        .map(|server| Line {
            name: server.clone(),
            points: timeline
                .buckets
                .iter()
                .filter_map(|bucket| {
                    let answered = answered(bucket);
                    (answered > 0 && answered.saturating_mul(4) >= typical).then(|| {
                        let count = bucket.upstreams.get(server).copied().unwrap_or(0);
                        (
                            bucket.t_s + width / 2.0,
                            count as f64 / answered as f64 * 100.0,
                        )
                    })
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::bench::timeline::{build, Outcome, Sample};
    use crate::bench::{BenchReport, Latency};

    fn run(name: &str, samples: &[(u64, Outcome, &str)]) -> RunReport {
        let samples: Vec<Sample> = samples
            .iter()
            .map(|&(at_ms, outcome, upstream)| Sample {
                at_ms,
                outcome,
                upstream: upstream.to_owned(),
            })
            .collect();
        let mut upstreams = BTreeMap::new();
        for sample in &samples {
            *upstreams.entry(sample.upstream.clone()).or_insert(0) += 1;
        }
        let latency = Latency {
            min: 0.0,
            mean: 0.0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            p999: 0.0,
            max: 0.0,
        };
        RunReport {
            name: name.to_owned(),
            report: BenchReport {
                url: String::new(),
                requests: samples.len() as u64,
                concurrency: 1,
                elapsed_s: 0.4,
                requests_per_s: 0.0,
                statuses: BTreeMap::new(),
                upstreams,
                cache: BTreeMap::new(),
                local_cache: BTreeMap::new(),
                errors: 0,
                too_many_requests: 0,
                unavailable: 0,
                cache_hit_ratio: 0.0,
                latency_ms: latency,
                latency_cdf: Vec::new(),
                timeline: build(&samples, 400),
            },
        }
    }

    #[test]
    fn errors_are_split_by_kind_and_a_clean_run_still_has_a_line() {
        let limited = run(
            "limited",
            &[
                (10, Outcome::TooManyRequests, "none"),
                (20, Outcome::Ok, "a"),
                (250, Outcome::Transport, "none"),
            ],
        );
        let clean = run("clean", &[(10, Outcome::Ok, "a")]);
        let lines = errors_over_time(&[limited, clean]);
        let names: Vec<&str> = lines.iter().map(|line| line.name.as_str()).collect();
        assert_eq!(
            names,
            ["limited: 429", "limited: other", "clean: none failed"]
        );
        // One 429 in the first 100 ms bucket is 10 per second, plotted at the bucket's middle.
        assert_eq!(lines[0].points[0], (0.05, 10.0));
        assert_eq!(lines[1].points[2], (0.25, 10.0));
        assert!(lines[2].points.iter().all(|&(_, y)| y == 0.0));
    }

    #[test]
    fn shares_are_per_bucket_percentages() {
        let report = run(
            "rr",
            &[
                (10, Outcome::Ok, "a"),
                (20, Outcome::Ok, "b"),
                (30, Outcome::Ok, "b"),
                (40, Outcome::Ok, "b"),
                (50, Outcome::Ok, "b"),
                (150, Outcome::Ok, "a"),
                (160, Outcome::Ok, "a"),
                (165, Outcome::Ok, "a"),
                (170, Outcome::Ok, "b"),
                (180, Outcome::Ok, "b"),
                (350, Outcome::Ok, "a"),
            ],
        );
        let lines = shares_over_time(&report);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].name, "a");
        // The last bucket holds one straggler, under a quarter of a typical bucket's five: it is left out
        // instead of drawing a spike to 100 %.
        let shares = |line: &Line| -> Vec<f64> { line.points.iter().map(|&(_, y)| y).collect() };
        assert_eq!(shares(&lines[0]), [20.0, 60.0]);
        assert_eq!(shares(&lines[1]), [80.0, 40.0]);
        assert_eq!(lines[0].points[0].0, 0.05);
        let svg = line_chart("rr: share per server", "seconds", "%", &lines).unwrap();
        assert!(svg.contains("rr: share per server"));
        assert!(line_chart("empty", "s", "n", &[])
            .unwrap()
            .contains("empty"));
    }

    #[test]
    fn standard_charts_that_would_carry_nothing_are_left_out_with_a_reason() {
        use crate::bench::ScenarioReport;
        let mut clean = run("rr", &[(10, Outcome::Ok, "a"), (20, Outcome::Ok, "b")]);
        clean.report.cache = BTreeMap::from([("BYPASS".to_owned(), 2)]);
        let mut limited = run(
            "lc",
            &[
                (10, Outcome::Ok, "a"),
                (20, Outcome::TooManyRequests, "none"),
            ],
        );
        limited.report.cache = BTreeMap::from([("BYPASS".to_owned(), 1), ("none".to_owned(), 0)]);
        let report = ScenarioReport {
            scenario: "strategies".to_owned(),
            runs: vec![clean.clone()],
        };
        let standard = crate::plot::scenario_charts(&report).unwrap();
        let files: Vec<&str> = standard
            .charts
            .iter()
            .map(|(file, _)| file.as_str())
            .collect();
        assert_eq!(
            files,
            ["strategies-latency.svg", "strategies-upstreams.svg"]
        );
        assert_eq!(standard.left_out.len(), 2, "{:?}", standard.left_out);
        assert!(standard.left_out[0].starts_with(
            "No chart of requests per cache result: every request of every run was BYPASS"
        ));
        assert!(standard.left_out[1].starts_with("No chart of failed requests over time"));

        // A failure in one run brings the failures chart back; a second cache word brings the cache chart.
        let mut mixed = clean;
        mixed.report.cache = BTreeMap::from([("HIT".to_owned(), 1), ("MISS".to_owned(), 1)]);
        let report = ScenarioReport {
            scenario: "cache".to_owned(),
            runs: vec![mixed, limited],
        };
        let standard = crate::plot::scenario_charts(&report).unwrap();
        let files: Vec<&str> = standard
            .charts
            .iter()
            .map(|(file, _)| file.as_str())
            .collect();
        assert_eq!(
            files,
            [
                "cache-latency.svg",
                "cache-upstreams.svg",
                "cache-cache.svg",
                "cache-errors.svg"
            ]
        );
        assert!(standard.left_out.is_empty());

        // Responses without X-Cache (a route without a cache) are counted as "none".
        let mut uncached = run("rr", &[(10, Outcome::Ok, "a")]);
        uncached.report.cache = BTreeMap::from([("none".to_owned(), 1)]);
        let report = ScenarioReport {
            scenario: "single".to_owned(),
            runs: vec![uncached],
        };
        assert_eq!(
            crate::plot::scenario_charts(&report).unwrap().left_out[0],
            "No chart of requests per cache result: no response of any run carried X-Cache (the route does not \
             cache), so it would show one full bar per run."
        );
    }
}

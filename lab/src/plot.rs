//! SVG charts of a bench scenario: latency CDFs and grouped bar charts of counts per run; `waterfall`
//! draws one trace.
//!
//! Pure: data in, SVG text out; the caller writes the files. plotters is built without a font backend, which is
//! enough here because the SVG backend writes every label as a `<text>` element and leaves the font to the
//! viewer; plotters only estimates text widths for the layout, from the character count.

pub mod lines;
pub mod waterfall;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::bench::ScenarioReport;

/// The size of every chart, in pixels.
const SIZE: (u32, u32) = (900, 560);

/// Colours per run, from the Okabe-Ito palette, so that runs stay distinguishable for colour-blind readers.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

/// The colour of the run at `index`; colours repeat after six runs.
pub fn run_colour(index: usize) -> RGBColor {
    COLOURS[index % COLOURS.len()]
}

/// Escapes text for XML and HTML element content and attribute values (the waterfall's labels,
/// the report's page).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {chart}: {reason}")]
pub struct PlotError {
    chart: String,
    reason: String,
}

/// What plotters' drawing calls fail with when the backend writes into a string.
type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// One line of a chart: a run's name and its points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Counts per category for several runs: `runs[r].1[c]` is run r's count for `categories[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub categories: Vec<String>,
    pub runs: Vec<(String, Vec<u64>)>,
}

impl Bars {
    /// Lines up the runs' count maps on the union of their keys, so a category one run never saw counts 0 there.
    pub fn from_counts<'a>(
        runs: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, u64>)>,
    ) -> Bars {
        let runs: Vec<(&str, &BTreeMap<String, u64>)> = runs.into_iter().collect();
        let categories: Vec<String> = runs
            .iter()
            .flat_map(|(_, counts)| counts.keys().cloned())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let runs = runs
            .iter()
            .map(|(name, counts)| {
                let row = categories
                    .iter()
                    .map(|category| counts.get(category).copied().unwrap_or(0))
                    .collect();
                ((*name).to_owned(), row)
            })
            .collect();
        Bars { categories, runs }
    }
}

/// The x axis of a grouped bar chart: `0` groups, each one unit wide, with its tick (and label) at the group's
/// centre. plotters' numeric axes put ticks at round numbers, which would not line up with the groups.
struct GroupAxis(usize);

impl Ranged for GroupAxis {
    type ValueType = f64;
    // The labels come from the chart's formatter; this only satisfies plotters' bounds.
    type FormatOption = DefaultFormatting;

    fn range(&self) -> Range<f64> {
        0.0..self.0 as f64
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (value / self.0 as f64 * span).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.0).map(|group| group as f64 + 0.5).collect()
    }
}

/// The latency axis: plotters' log scale with each tick once. Its key points repeat a decade's end: the last
/// light tick of one decade (100 + 9 × 100) and the bold first of the next (1000) are both 1000, which drew the
/// label "1000" twice on top of itself.
struct LatencyAxis(LogCoord<f64>);

impl Ranged for LatencyAxis {
    type ValueType = f64;
    // The labels come from the chart's formatter, as for the log scale itself.
    type FormatOption = DefaultFormatting;

    fn range(&self) -> Range<f64> {
        self.0.range()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.0.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let mut labels = BTreeSet::new();
        self.0
            .key_points(hint)
            .into_iter()
            .filter(|&ms| labels.insert(format_ms(ms)))
            .collect()
    }
}

/// Renders into an SVG string; `chart` names the chart in the error.
fn render(
    chart: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), DrawError>,
) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        // The backend writes the string when it is dropped, so it must go out of scope before `svg` is read.
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present());
        drawn.map_err(|error| PlotError {
            chart: chart.to_owned(),
            reason: error.to_string(),
        })?;
    }
    Ok(svg)
}

/// The frame every chart shares: its title, margins and room for the axis labels.
fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64);
    builder
}

/// The legend naming each run, where it hides the least of the data.
fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), DrawError> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
}

/// A latency CDF: x is the latency in milliseconds on a log scale (cache hits and misses differ by orders of
/// magnitude), y the percentage of requests at or below it. Each line's points are `(percentile, ms)`.
///
/// # Errors
/// plotters fails to draw.
pub fn latency_cdf(title: &str, lines: &[Line]) -> Result<String, PlotError> {
    let latencies = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|&(_, ms)| ms));
    // The histogram records at least 1 µs, so 0.001 ms is the lowest latency there is; it is also the floor
    // when there are no points at all, where the minimum would be infinite and the log axis endless.
    let low = latencies.clone().fold(f64::INFINITY, f64::min);
    let low = if low.is_finite() {
        low.max(0.001)
    } else {
        0.001
    };
    let high = latencies.fold(0.0, f64::max).max(low * 10.0);
    render(title, |root| {
        let mut chart = builder(root, title).build_cartesian_2d(
            LatencyAxis((low * 0.9..high * 1.1).log_scale().into()),
            0.0..100.0,
        )?;
        chart
            .configure_mesh()
            .x_desc("latency (ms, log scale)")
            .y_desc("requests at or below (%)")
            .x_label_formatter(&|ms: &f64| format_ms(*ms))
            .y_label_formatter(&|percent: &f64| format!("{percent:.0}"))
            .draw()?;
        for (index, line) in lines.iter().enumerate() {
            let colour = run_colour(index);
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().map(|&(percentile, ms)| (ms, percentile)),
                    colour.stroke_width(2),
                ))?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// A grouped bar chart: one group per category, one bar per run inside each group, labelled with the run's share
/// of its own total (what the balancing strategies are compared on).
///
/// # Errors
/// plotters fails to draw.
pub fn grouped_bars(title: &str, x_desc: &str, bars: &Bars) -> Result<String, PlotError> {
    grouped_bars_of(title, x_desc, "requests", bars, true)
}

/// A grouped bar chart of any values: each bar is labelled with its run's share of its own total when `shares`,
/// else with its value (waits, where a share means nothing).
///
/// # Errors
/// plotters fails to draw.
pub fn grouped_bars_of(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    bars: &Bars,
    shares: bool,
) -> Result<String, PlotError> {
    let groups = bars.categories.len().max(1);
    let highest = bars
        .runs
        .iter()
        .flat_map(|(_, counts)| counts.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let runs = bars.runs.len().max(1) as f64;
    // Each group is one unit wide; its bars share the middle 80 % so neighbouring groups stay apart.
    let bar_width = 0.8 / runs;
    render(title, |root| {
        let mut chart =
            builder(root, title).build_cartesian_2d(GroupAxis(groups), 0.0..highest * 1.15)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x: &f64| {
                bars.categories
                    .get(x.floor() as usize)
                    .cloned()
                    .unwrap_or_default()
            })
            .y_label_formatter(&|y: &f64| format!("{y:.0}"))
            .draw()?;
        for (index, (name, counts)) in bars.runs.iter().enumerate() {
            let colour = run_colour(index);
            let total = counts.iter().sum::<u64>().max(1) as f64;
            let left = |group: usize| group as f64 + 0.1 + index as f64 * bar_width;
            chart
                .draw_series(counts.iter().enumerate().map(|(group, &count)| {
                    Rectangle::new(
                        [(left(group), 0.0), (left(group) + bar_width, count as f64)],
                        colour.filled(),
                    )
                }))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            chart.draw_series(counts.iter().enumerate().map(|(group, &count)| {
                Text::new(
                    if shares {
                        format!("{:.0}%", count as f64 / total * 100.0)
                    } else {
                        count.to_string()
                    },
                    (left(group) + bar_width / 2.0, count as f64),
                    ("sans-serif", 12)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// Milliseconds for an axis label: enough digits for sub-millisecond cache hits, none for slow tails.
fn format_ms(ms: f64) -> String {
    if ms >= 10.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// The standard charts of one scenario, and a sentence for each chart left out because it would carry nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardCharts {
    /// (file name, SVG).
    pub charts: Vec<(String, String)>,
    pub left_out: Vec<String>,
}

/// Why the cache chart would carry nothing, if it would: every request of every run got the same `X-Cache`
/// word (100 % BYPASS when the runs bypass the cache), which makes one full bar per run.
pub fn cache_chart_is_empty(report: &ScenarioReport) -> Option<String> {
    let words: BTreeSet<&str> = report
        .runs
        .iter()
        .flat_map(|run| {
            run.report
                .cache
                .iter()
                .filter(|(_, &count)| count > 0)
                .map(|(word, _)| word.as_str())
        })
        .collect();
    let [word] = words.into_iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let what = match word {
        // `bench` counts a response without X-Cache as "none".
        "none" => "no response of any run carried X-Cache (the route does not cache)".to_owned(),
        "BYPASS" => "every request of every run was BYPASS (these runs ask the proxy to bypass the cache, so \
                     that every request reaches a gateway)"
            .to_owned(),
        word => format!("every request of every run was {word}"),
    };
    Some(format!(
        "No chart of requests per cache result: {what}, so it would show one full bar per run."
    ))
}

/// The charts of one scenario, as (file name, SVG): the latency CDF of every run, requests per upstream server,
/// requests per cache result and failed requests over time (429 and 503 apart); the last two only when they
/// show something, else a sentence in `left_out` says why they are not there.
///
/// # Errors
/// plotters fails to draw.
pub fn scenario_charts(report: &ScenarioReport) -> Result<StandardCharts, PlotError> {
    let scenario = &report.scenario;
    let lines: Vec<Line> = report
        .runs
        .iter()
        .map(|run| Line {
            name: run.name.clone(),
            points: run
                .report
                .latency_cdf
                .iter()
                .map(|point| (point.percentile, point.ms))
                .collect(),
        })
        .collect();
    let upstreams = Bars::from_counts(
        report
            .runs
            .iter()
            .map(|run| (run.name.as_str(), &run.report.upstreams)),
    );
    let cache = Bars::from_counts(
        report
            .runs
            .iter()
            .map(|run| (run.name.as_str(), &run.report.cache)),
    );
    let mut charts = vec![
        (
            format!("{scenario}-latency.svg"),
            latency_cdf(&format!("{scenario}: latency CDF"), &lines)?,
        ),
        (
            format!("{scenario}-upstreams.svg"),
            grouped_bars(
                &format!("{scenario}: requests per upstream server"),
                "X-Upstream-Server",
                &upstreams,
            )?,
        ),
    ];
    let mut left_out = Vec::new();
    match cache_chart_is_empty(report) {
        Some(why) => left_out.push(why),
        None => charts.push((
            format!("{scenario}-cache.svg"),
            grouped_bars(
                &format!("{scenario}: requests per cache result"),
                "X-Cache",
                &cache,
            )?,
        )),
    }
    let failures = lines::errors_over_time(&report.runs);
    if failures
        .iter()
        .all(|line| line.points.iter().all(|&(_, rate)| rate == 0.0))
    {
        left_out.push(
            "No chart of failed requests over time: no request of any run failed (no 429, no 503, no other \
             error)."
                .to_owned(),
        );
    } else {
        charts.push((
            format!("{scenario}-errors.svg"),
            lines::line_chart(
                &format!("{scenario}: failed requests over time"),
                "seconds into the run",
                "failed requests per second",
                &failures,
            )?,
        ));
    }
    Ok(StandardCharts { charts, left_out })
}

#[cfg(test)]
mod tests;

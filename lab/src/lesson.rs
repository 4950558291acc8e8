//! Scenarios that teach: each one sets up the condition a tactic exists for on the running lab (through its public
//! knobs only), runs the same load once per tactic, puts the lab back, and says what happened in a verdict
//! computed from the numbers. A scenario's result is a `Section` of the report.
//!
//! - `knobs`: the lab's knobs and the `Restore` guard.
//! - `verdict`: the verdict sentences, pure.
//! - `balance`: `strategies`, `slow-server`, `uneven-capacity`; `failing`: `failing-server`; `hot_key`:
//!   `hot-key` and `cache`; `flood`: `priority-flood`; `reload`: `reload-under-load`; `traffic`: `latency-aware`, `bad-server`; `canary`: `canary`;
//!   `hash_locality`: `hash-locality`;
//!   `scale_out`: `scale-out` (on a lab started with `up --dns`).

mod balance;
mod canary;
mod failing;
mod flood;
mod hash_locality;
mod hot_key;
pub mod knobs;
mod reload;
mod scale_out;
mod traffic;
pub mod verdict;

use std::time::Duration;

use serde::Serialize;

use crate::bench::{self, BenchPlan, RunReport, ScenarioReport};
use crate::plot::{self, PlotError};
use crate::scenario::Scenario;

pub use knobs::{Knobs, Restore};

/// Why a lesson could not run.
#[derive(Debug, thiserror::Error)]
pub enum LessonError {
    #[error(transparent)]
    Bench(#[from] bench::BenchError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("{0}")]
    Knob(String),
    #[error("the lab could not be put back: {0}")]
    Restore(String),
}

/// What every lesson needs: the knobs, and the load the user asked for.
#[derive(Debug, Clone)]
pub struct Lab {
    pub knobs: Knobs,
    pub token: Option<String>,
    /// Requests of each run.
    pub requests: u64,
    pub concurrency: u32,
    pub timeout: Duration,
    pub progress: bool,
    /// `single`, `strategies` and `cache` load this URL with the user's `--strategy` and `--bypass-cache`.
    pub url: String,
    pub strategy: Option<String>,
    pub bypass_cache: bool,
    /// The slow gateway's extra latency in `slow-server`.
    pub slow_ms: u64,
}

/// A small table of figures that are not bench runs (tier hits, waits per priority, reloads).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A chart of the section, as SVG text, with the file name it is also written to.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub file: String,
    pub title: String,
    pub svg: String,
}

/// One scenario's result: what was set up, each run's figures, the charts and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    #[serde(flatten)]
    pub report: ScenarioReport,
    pub condition: String,
    pub tables: Vec<Table>,
    #[serde(skip)]
    pub figures: Vec<Figure>,
    pub verdict: String,
    /// Paragraphs after the verdict: what the reader needs to read the numbers (a lesson's own explanation), and
    /// why a standard chart is not there.
    pub notes: Vec<String>,
}

impl Section {
    /// A section with the standard charts of its runs (latency CDF, requests per server and per cache result,
    /// failures over time, the last two only when they show something), none when it has no runs; lessons add
    /// their own.
    ///
    /// # Errors
    /// plotters fails to draw.
    pub fn new(
        scenario: Scenario,
        condition: String,
        runs: Vec<RunReport>,
        verdict: String,
    ) -> Result<Section, LessonError> {
        let report = ScenarioReport {
            scenario: scenario.name().to_owned(),
            runs,
        };
        // A lesson without bench runs (the worker's) has nothing for the standard charts to show.
        let standard = if report.runs.is_empty() {
            plot::StandardCharts {
                charts: Vec::new(),
                left_out: Vec::new(),
            }
        } else {
            plot::scenario_charts(&report)?
        };
        let figures = standard
            .charts
            .into_iter()
            .map(|(file, svg)| Figure {
                title: chart_title(&file),
                file,
                svg,
            })
            .collect();
        Ok(Section {
            report,
            condition,
            tables: Vec::new(),
            figures,
            verdict,
            notes: standard.left_out,
        })
    }

    /// Adds a chart named `<scenario>-<suffix>.svg`, the suffix made safe for a file name (run names such as
    /// "weights 3/2/1" go into it).
    pub fn figure(&mut self, suffix: &str, title: &str, svg: String) {
        self.figures.push(Figure {
            file: format!("{}-{}.svg", self.report.scenario, file_safe(suffix)),
            title: title.to_owned(),
            svg,
        });
    }

    /// Adds one chart per run of each server's share over time.
    ///
    /// # Errors
    /// plotters fails to draw.
    pub fn share_figures(&mut self) -> Result<(), LessonError> {
        let charts: Vec<(String, String, String)> = self
            .report
            .runs
            .iter()
            .map(|run| {
                let title = format!("{}: share per server over time", run.name);
                let svg = plot::lines::line_chart(
                    &title,
                    "seconds into the run",
                    "share of the requests answered (%)",
                    &plot::lines::shares_over_time(run),
                )?;
                Ok((format!("shares-{}", run.name), title, svg))
            })
            .collect::<Result<_, LessonError>>()?;
        for (suffix, title, svg) in charts {
            self.figure(&suffix, &title, svg);
        }
        Ok(())
    }
}

/// `name` with every character but ASCII letters, digits, `-` and `_` replaced by `-`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The caption of a standard chart, from its file name.
fn chart_title(file: &str) -> String {
    let kind = file
        .rsplit_once('-')
        .map_or(file, |(_, kind)| kind)
        .trim_end_matches(".svg");
    match kind {
        "latency" => "Latency CDF of every run".to_owned(),
        "upstreams" => "Requests per upstream server".to_owned(),
        "cache" => "Requests per cache result".to_owned(),
        "errors" => "Failed requests over time (429 and 503 apart)".to_owned(),
        other => other.to_owned(),
    }
}

impl Lab {
    /// Runs `requests` requests against `url` (the user's concurrency and timeout), printing the summary.
    ///
    /// # Errors
    /// The URL or the client is invalid.
    pub async fn load(
        &self,
        name: &str,
        url: &str,
        shape: impl FnOnce(&mut BenchPlan),
    ) -> Result<RunReport, LessonError> {
        let url = reqwest::Url::parse(url)
            .map_err(|error| bench::BenchError::Url(url.to_owned(), error.to_string()))?;
        let mut plan = BenchPlan {
            label: name.to_owned(),
            url,
            requests: self.requests,
            concurrency: self.concurrency,
            token: self.token.clone(),
            timeout: self.timeout,
            progress: self.progress,
            duration: None,
            keys: None,
            stop: None,
        };
        shape(&mut plan);
        let report = bench::run(&plan).await?;
        println!("-- {name} --\n{}\n", bench::summary(&report));
        Ok(RunReport {
            name: name.to_owned(),
            report,
        })
    }
}

impl Lab {
    /// The runs of `single`, `strategies` or `cache` (see `scenario::expand`), one after the other.
    ///
    /// # Errors
    /// The URL or an option is invalid, or the client cannot be built.
    pub async fn plain_runs(&self, scenario: Scenario) -> Result<Vec<RunReport>, LessonError> {
        let runs = crate::scenario::expand(
            scenario,
            &self.url,
            self.strategy.as_deref(),
            self.bypass_cache,
        )?;
        let mut reports = Vec::new();
        for run in runs {
            reports.push(self.load(&run.name, run.url.as_str(), |_| {}).await?);
        }
        Ok(reports)
    }
}

/// Runs one scenario against the lab and returns its section; the lab is restored before this returns (or, if
/// the future is dropped, when its guard is).
///
/// # Errors
/// The lab does not answer, refuses a knob, or cannot be restored.
pub async fn run(scenario: Scenario, lab: &Lab) -> Result<Section, LessonError> {
    println!("== {} ==", scenario.name());
    scale_out::refuse_on_dns(scenario, lab)?;
    let mut restore = Restore::new(lab.knobs.http.clone());
    let section = match scenario {
        Scenario::Single | Scenario::Strategies => balance::plain(scenario, lab).await,
        Scenario::Cache => hot_key::cache(lab).await,
        Scenario::SlowServer => balance::slow_server(lab, &mut restore).await,
        Scenario::UnevenCapacity => balance::uneven_capacity(lab, &mut restore).await,
        Scenario::FailingServer => failing::failing_server(lab, &mut restore).await,
        Scenario::HotKey => hot_key::hot_key(lab, &mut restore).await,
        Scenario::PriorityFlood => flood::priority_flood(lab, &mut restore).await,
        Scenario::ReloadUnderLoad => reload::reload_under_load(lab, &mut restore).await,
        Scenario::LatencyAware => traffic::latency_aware(lab, &mut restore).await,
        Scenario::BadServer => traffic::bad_server(lab, &mut restore).await,
        Scenario::Canary => canary::canary(lab, &mut restore).await,
        Scenario::HashLocality => hash_locality::hash_locality(lab, &mut restore).await,
        Scenario::ScaleOut => scale_out::scale_out(lab).await,
    };
    // Restored whatever happened; a failed restore is reported even when the scenario failed too.
    let restored = restore.finish().await;
    let section = section?;
    restored?;
    println!("verdict: {}\n", section.verdict);
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_files_have_safe_names_and_titles() {
        assert_eq!(file_safe("shares-weights 3/2/1"), "shares-weights-3-2-1");
        assert_eq!(file_safe("retries=2"), "retries-2");
        assert_eq!(
            chart_title("slow-server-latency.svg"),
            "Latency CDF of every run"
        );
        assert_eq!(
            chart_title("hot-key-errors.svg"),
            "Failed requests over time (429 and 503 apart)"
        );
    }
}

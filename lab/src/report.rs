//! `report.html`: one self-contained page per `scalelab bench` invocation: for each scenario the condition, the
//! verdict, each run's figures, the extra tables and every chart, inline. No script, no stylesheet, font or image
//! from elsewhere: it opens the same offline, attached to a mail or years later. Pure: sections in, HTML out.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::bench::{path_of, RunReport};
use crate::lesson::verdict::{ms, pct};
use crate::lesson::{Figure, Section, Table};

/// The page's style: readable without any web font, charts scaled to the page.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;\
color:#222;line-height:1.45}h1{font-size:1.6em}h2{border-bottom:2px solid #0072b2;padding-bottom:.2em;\
margin-top:2.2em}table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ccc;\
padding:.25em .5em;text-align:right}th:first-child,td:first-child{text-align:left}caption{text-align:left;\
font-weight:600;padding:.3em 0}.verdict{background:#eef6fb;border-left:4px solid #0072b2;padding:.6em .8em}\
.condition{background:#f7f7f7;padding:.6em .8em}.run{border:1px solid #e3e3e3;padding:.2em .8em;margin:.6em 0}\
.run h4{margin:.4em 0}.run p{margin:.2em 0;font-size:.9em}figure{margin:1.2em 0}figure svg{max-width:100%;\
height:auto}figcaption{font-size:.9em;color:#555}nav ol{columns:2}code{font-size:.95em}";

pub use crate::plot::escape;

/// An inline chart: the SVG as plotters wrote it, minus the namespace declaration HTML does not need.
fn inline_svg(svg: &str) -> String {
    svg.replace(r#" xmlns="http://www.w3.org/2000/svg""#, "")
        .replace(r#" xmlns:xlink="http://www.w3.org/1999/xlink""#, "")
}

/// The anchor of a scenario.
fn anchor(scenario: &str) -> String {
    format!("s-{scenario}")
}

/// `key=count` pairs, with each one's share of the total when `shares`.
fn counts(map: &BTreeMap<String, u64>, shares: bool) -> String {
    let total: u64 = map.values().sum();
    let parts: Vec<String> = map
        .iter()
        .map(|(key, count)| {
            if shares && total > 0 {
                format!("{key}={count} ({})", pct(*count as f64 / total as f64))
            } else {
                format!("{key}={count}")
            }
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        escape(&parts.join("  "))
    }
}

fn summary_table(runs: &[RunReport]) -> String {
    let mut html = String::from(
        "<table class=\"summary\"><caption>Each run's figures</caption><tr><th>run</th><th>requests</th>\
         <th>req/s</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>failed</th><th>429</th><th>503</th>\
         <th>no answer</th><th>hit ratio</th></tr>",
    );
    for run in runs {
        let r = &run.report;
        let l = &r.latency_ms;
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&run.name),
            r.requests,
            r.requests_per_s,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            r.failed(),
            r.too_many_requests,
            r.unavailable,
            r.errors,
            pct(r.cache_hit_ratio)
        );
    }
    html.push_str("</table>");
    html
}

fn run_section(scenario: &str, index: usize, run: &RunReport) -> String {
    let r = &run.report;
    format!(
        "<section class=\"run\" id=\"{}-run-{index}\"><h4>{}</h4><p>Loaded <code>{}</code> with concurrency {} \
         for {:.1} s.</p><p>Statuses: {}</p><p>Servers: {}</p><p>Cache: {}</p></section>",
        anchor(scenario),
        escape(&run.name),
        escape(path_of(&r.url)),
        r.concurrency,
        r.elapsed_s,
        counts(&r.statuses, false),
        counts(&r.upstreams, true),
        counts(&r.cache, true)
    )
}

fn extra_table(table: &Table) -> String {
    let mut html = format!(
        "<table class=\"extra\"><caption>{}</caption><tr>",
        escape(&table.title)
    );
    for cell in &table.header {
        let _ = write!(html, "<th>{}</th>", escape(cell));
    }
    html.push_str("</tr>");
    for row in &table.rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

fn figure(figure: &Figure) -> String {
    format!(
        "<figure class=\"plot\" data-file=\"{}\">{}<figcaption>{}</figcaption></figure>",
        escape(&figure.file),
        inline_svg(&figure.svg),
        escape(&figure.title)
    )
}

fn section(section: &Section) -> String {
    let name = &section.report.scenario;
    let mut html = format!(
        "<section class=\"scenario\" id=\"{}\"><h2>{}</h2><p class=\"condition\"><strong>Condition.</strong> {}</p>\
         <p class=\"verdict\"><strong>Verdict.</strong> {}</p>",
        anchor(name),
        escape(name),
        escape(&section.condition),
        escape(&section.verdict)
    );
    for note in &section.notes {
        let _ = write!(html, "<p class=\"note\">{}</p>", escape(note));
    }
    if !section.report.runs.is_empty() {
        html.push_str(&summary_table(&section.report.runs));
        for (index, run) in section.report.runs.iter().enumerate() {
            html.push_str(&run_section(name, index, run));
        }
    }
    for table in &section.tables {
        html.push_str(&extra_table(table));
    }
    for chart in &section.figures {
        html.push_str(&figure(chart));
    }
    html.push_str("</section>");
    html
}

/// The whole page; a table of contents when there is more than one scenario.
pub fn render(title: &str, sections: &[Section]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style>\
         </head><body><h1>{}</h1>",
        escape(title),
        escape(title)
    );
    if sections.len() > 1 {
        html.push_str("<nav class=\"toc\"><h2>Contents</h2><ol>");
        for section in sections {
            let name = &section.report.scenario;
            let _ = write!(
                html,
                "<li><a href=\"#{}\">{}</a></li>",
                anchor(name),
                escape(name)
            );
        }
        html.push_str("</ol></nav>");
    }
    for part in sections {
        html.push_str(&section(part));
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::bench::timeline::{build, Outcome, Sample};
    use crate::bench::{BenchReport, Latency, ScenarioReport};

    fn run(name: &str) -> RunReport {
        let samples = [Sample {
            at_ms: 5,
            outcome: Outcome::Ok,
            upstream: "127.0.0.1:5000".to_owned(),
        }];
        RunReport {
            name: name.to_owned(),
            report: BenchReport {
                url: "http://127.0.0.1:8000/data?strategy=round_robin&bypass_cache=true".to_owned(),
                requests: 1,
                concurrency: 1,
                elapsed_s: 0.01,
                requests_per_s: 100.0,
                statuses: BTreeMap::from([("200".to_owned(), 1)]),
                upstreams: BTreeMap::from([("127.0.0.1:5000".to_owned(), 1)]),
                cache: BTreeMap::from([("BYPASS".to_owned(), 1)]),
                local_cache: BTreeMap::new(),
                errors: 0,
                too_many_requests: 0,
                unavailable: 0,
                cache_hit_ratio: 0.0,
                latency_ms: Latency {
                    min: 1.0,
                    mean: 1.0,
                    p50: 1.0,
                    p90: 1.0,
                    p99: 1.0,
                    p999: 1.0,
                    max: 1.0,
                },
                latency_cdf: Vec::new(),
                timeline: build(&samples, 10),
            },
        }
    }

    fn section(name: &str, runs: &[&str], figures: &[&str]) -> Section {
        Section {
            report: ScenarioReport {
                scenario: name.to_owned(),
                runs: runs.iter().map(|name| run(name)).collect(),
            },
            condition: "Gateway <g> answers late & slow".to_owned(),
            tables: vec![Table {
                title: "Waits".to_owned(),
                header: vec!["run".to_owned(), "p50".to_owned()],
                rows: vec![vec!["a".to_owned(), "1.0".to_owned()]],
            }],
            figures: figures
                .iter()
                .map(|file| Figure {
                    file: (*file).to_owned(),
                    title: format!("chart {file}"),
                    svg: r#"<svg width="10" height="10" xmlns="http://www.w3.org/2000/svg"><text>t</text></svg>"#
                        .to_owned(),
                })
                .collect(),
            verdict: "least_connections won".to_owned(),
            notes: vec!["No chart of failed requests over time: none failed.".to_owned()],
        }
    }

    #[test]
    fn text_is_escaped_and_urls_lose_their_origin() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let cases = [
            ("http://127.0.0.1:8000/data?id=1", "/data?id=1"),
            ("https://h/x", "/x"),
            ("http://h", "http://h"),
            ("/already", "/already"),
        ];
        for (url, path) in cases {
            assert_eq!(path_of(url), path, "{url}");
        }
    }

    #[test]
    fn one_scenario_has_no_contents_and_everything_in_its_section() {
        let html = render(
            "scalelab: slow-server",
            &[section("slow-server", &["rr", "lc"], &["a.svg", "b.svg"])],
        );
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("class=\"toc\""));
        assert_eq!(html.matches("<section class=\"run\"").count(), 2);
        assert_eq!(html.matches("<figure class=\"plot\"").count(), 2);
        assert!(html.contains("Gateway &lt;g&gt; answers late &amp; slow"));
        assert!(html.contains("<strong>Verdict.</strong> least_connections won"));
        assert!(html
            .contains("<p class=\"note\">No chart of failed requests over time: none failed.</p>"));
        assert!(html.contains("<code>/data?strategy=round_robin&amp;bypass_cache=true</code>"));
        assert!(html.contains("Servers: 127.0.0.1:5000=1 (100%)"));
        assert!(html.contains("<caption>Waits</caption>"));
        for external in ["http://", "https://", "src=", "<link", "<script", "url("] {
            assert!(!html.contains(external), "{external} in {html}");
        }
    }

    #[test]
    fn several_scenarios_get_contents_linking_their_sections() {
        let html = render(
            "scalelab: every scenario",
            &[
                section("strategies", &["rr"], &["x.svg"]),
                section("hot-key", &[], &[]),
            ],
        );
        assert!(html.contains("<li><a href=\"#s-strategies\">strategies</a></li>"));
        assert!(html.contains("<li><a href=\"#s-hot-key\">hot-key</a></li>"));
        assert!(html.contains("<section class=\"scenario\" id=\"s-hot-key\">"));
        // A section without bench runs (the worker lesson) has no run table.
        let hot_key = html.split("id=\"s-hot-key\"").nth(1).unwrap();
        assert!(!hot_key.contains("class=\"summary\""));
    }
}

//! Reading the lab's receiver back: one trace for `scalelab trace`, drawn into an SVG file, and
//! the slowest trace of a bench scenario for its section of `report.html`.

use std::path::{Path, PathBuf};

use super::{Trace, TraceList, TraceSummary};
use crate::lesson::Section;

/// Why a trace could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(
        "{0:?} is not a trace id: a trace id is 32 lowercase hex digits, not all zero (the second \
         field of a traceparent, `00-<trace id>-<span id>-01`)"
    )]
    BadId(String),
    #[error(
        "no trace receiver runs for this lab ({} does not exist): start it with `scalelab up \
         --observe` (and no [lab] otlp_endpoint, which sends the traces to that collector instead), \
         or pass --receiver URL",
        path.display()
    )]
    NotRunning { path: PathBuf },
    #[error("the trace receiver at {url} does not answer ({source}); is `scalelab up --observe` still running?")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{0}")]
    Unknown(String),
    #[error("the trace receiver at {url} answered {status}: {body}")]
    Answer {
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `id` as the receiver keys it (lowercase), when it is a trace id.
///
/// # Errors
/// `BadId` otherwise.
pub fn check_id(id: &str) -> Result<String, TraceError> {
    let lower = id.trim().to_ascii_lowercase();
    if super::valid_id(&lower) {
        Ok(lower)
    } else {
        Err(TraceError::BadId(id.to_owned()))
    }
}

/// Now, in Unix nanoseconds: the clock spans are stamped with.
pub fn now_ns() -> u64 {
    u64::try_from(scalelab_common::clock::since_epoch().as_nanos()).unwrap_or(u64::MAX)
}

/// The receiver's base URL as `up` wrote it into `data_dir`.
///
/// # Errors
/// `NotRunning` when `up` wrote none (it is not running, or runs without `--observe`).
pub fn receiver_url(data_dir: &Path) -> Result<String, TraceError> {
    let path = super::url_file(data_dir);
    std::fs::read_to_string(&path)
        .map(|text| text.trim().to_owned())
        .map_err(|_| TraceError::NotRunning { path })
}

/// A client for the receiver, which is on loopback: no proxy settings apply.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: String,
) -> Result<T, TraceError> {
    let unreachable = |source| TraceError::Unreachable {
        url: url.clone(),
        source,
    };
    let response = client.get(&url).send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.text().await.map_err(unreachable)?;
    if status == reqwest::StatusCode::NOT_FOUND {
        // The receiver's own sentence says what it holds and why a trace may be missing.
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(TraceError::Unknown(message));
    }
    if !status.is_success() {
        return Err(TraceError::Answer {
            url,
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_str(&body).map_err(|error| TraceError::Answer {
        url,
        status: status.as_u16(),
        body: format!("not the receiver's JSON ({error})"),
    })
}

/// One trace's spans.
///
/// # Errors
/// A bad id (checked before anything is sent), an unknown trace, a receiver that does not answer.
pub async fn fetch(client: &reqwest::Client, base: &str, id: &str) -> Result<Trace, TraceError> {
    let id = check_id(id)?;
    get_json(client, format!("{base}/traces/{id}")).await
}

/// The held traces.
///
/// # Errors
/// The receiver does not answer.
pub async fn list(client: &reqwest::Client, base: &str) -> Result<TraceList, TraceError> {
    get_json(client, format!("{base}/traces")).await
}

/// `scalelab trace`: draws trace `id` into `out/trace-<id>.svg` and returns the path.
///
/// # Errors
/// As `fetch`, or the file cannot be written.
pub async fn write_waterfall(base: &str, id: &str, out: &Path) -> Result<PathBuf, TraceError> {
    let id = check_id(id)?;
    let trace = fetch(&http(), base, &id).await?;
    let path = out.join(format!("trace-{id}.svg"));
    std::fs::create_dir_all(out)
        .and_then(|()| {
            std::fs::write(
                &path,
                crate::plot::waterfall::svg(&trace.trace_id, &trace.spans),
            )
        })
        .map_err(|source| TraceError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// How long after a scenario the receiver is read: the exporters post a batch at most a second
/// after its first span (`scalelab_common::trace::export`), so by then the scenario's last spans
/// have arrived, with half a second for the post itself.
const EXPORT_DELAY: std::time::Duration = std::time::Duration::from_millis(1500);

/// Of `list`'s traces, the one whose root started in `[since_ns, until_ns]` and took longest.
pub fn slowest(list: &TraceList, since_ns: u64, until_ns: u64) -> Option<&TraceSummary> {
    list.traces
        .iter()
        .filter(|trace| (since_ns..=until_ns).contains(&trace.start_ns))
        .max_by_key(|trace| trace.duration_ns)
}

/// Adds the slowest trace that started during a scenario (`since_ns` to `until_ns`, Unix
/// nanoseconds) to its section as a waterfall, when the lab's receiver runs; without one the
/// section is left as it is, and a receiver that fails says so in a note.
pub async fn add_slowest(section: &mut Section, data_dir: &Path, since_ns: u64, until_ns: u64) {
    let Ok(base) = receiver_url(data_dir) else {
        return;
    };
    tokio::time::sleep(EXPORT_DELAY).await;
    match slowest_trace(&base, since_ns, until_ns).await {
        Ok(Some((summary, trace, list))) => {
            section.figure(
                "slowest-trace",
                &format!(
                    "The slowest traced request of the scenario: {} ({:.1} ms), trace {}",
                    summary.root,
                    summary.duration_ns as f64 / 1e6,
                    summary.trace_id
                ),
                crate::plot::waterfall::svg(&trace.trace_id, &trace.spans),
            );
            if list.evicted_traces > 0 {
                section.notes.push(format!(
                    "The slowest trace is the slowest of the {} traces the lab's receiver still held \
                     ({} evicted so far: it keeps the last {}).",
                    list.traces.len(),
                    list.evicted_traces,
                    list.max_traces
                ));
            }
        }
        Ok(None) => section.notes.push(
            "No trace: the lab's receiver holds none that started during the scenario (is \
             [tracing] sample_ratio 0?)."
                .to_owned(),
        ),
        Err(error) => section.notes.push(format!("No trace: {error}")),
    }
}

async fn slowest_trace(
    base: &str,
    since_ns: u64,
    until_ns: u64,
) -> Result<Option<(TraceSummary, Trace, TraceList)>, TraceError> {
    let client = http();
    let list = list(&client, base).await?;
    let Some(summary) = slowest(&list, since_ns, until_ns).cloned() else {
        return Ok(None);
    };
    let trace = fetch(&client, base, &summary.trace_id).await?;
    Ok(Some((summary, trace, list)))
}

//! `priority-flood`: a burst of low-priority tasks, then a stream of high-priority ones that alone keeps the
//! worker busy; once with aging off (strict priority: the low tasks starve until the stream ends) and once with
//! aging on. Wait = start - acceptance, read back from the worker for every task.

use std::time::Duration;

use serde_json::{json, Value};

use super::verdict::{self, Waits};
use super::{Lab, LessonError, Restore, Section, Table};
use crate::plot::{grouped_bars_of, Bars};
use crate::scenario::Scenario;

/// The pool during the lesson, and each task's duration: two workers run ten tasks a second.
const WORKERS: usize = 2;
const TASK_SECS: f64 = 0.2;
/// The burst of low tasks: two seconds of work for the pool.
const LOWS: usize = 20;
/// High tasks arrive every 80 ms for three seconds: 12.5 a second, more than the pool's 10.
const HIGH_EVERY: Duration = Duration::from_millis(80);
const HIGHS: usize = 38;
/// The aging bound of the "aging on" run; "aging off" uses a day, which no task of the lesson reaches.
const AGING_MS: u64 = 1000;
const NO_AGING_MS: u64 = 86_400_000;

/// How often and how long finished tasks are waited for.
const POLL: Duration = Duration::from_millis(200);
const PATIENCE: Duration = Duration::from_secs(120);

/// Submits one task and returns its id.
async fn submit(lab: &Lab, priority: &str) -> Result<String, LessonError> {
    let worker = lab.knobs.file.backend_url(lab.knobs.file.lab.worker);
    let answer = lab
        .knobs
        .post(
            &format!("{worker}/tasks?priority={priority}"),
            &json!({"duration": TASK_SECS}),
        )
        .await?;
    answer["task_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            LessonError::Knob(format!("the worker answered without a task_id: {answer}"))
        })
}

/// The wait of a finished task in seconds, or `None` while it has not started.
fn wait(task: &Value) -> Option<f64> {
    Some(task["started_at"].as_f64()? - task["queued_at"].as_f64()?)
}

/// Waits until every task has started and returns their waits in seconds.
async fn waits(lab: &Lab, ids: &[String]) -> Result<Vec<f64>, LessonError> {
    let worker = lab.knobs.file.backend_url(lab.knobs.file.lab.worker);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut waits = Vec::new();
    for id in ids {
        loop {
            let task = lab.knobs.get(&format!("{worker}/tasks/{id}")).await?;
            if let Some(wait) = wait(&task) {
                waits.push(wait);
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(LessonError::Knob(format!(
                    "task {id} did not start within {PATIENCE:?}"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(waits)
}

/// Nearest-rank p50 and the maximum of `waits`.
fn p50_and_max(waits: &[f64]) -> (f64, f64) {
    let mut sorted = waits.to_vec();
    sorted.sort_by(f64::total_cmp);
    let p50 = sorted
        .get(sorted.len().div_ceil(2).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    (p50, sorted.last().copied().unwrap_or(0.0))
}

/// One run: the burst, the stream, then every task's wait.
async fn flood(lab: &Lab, name: &str) -> Result<Waits, LessonError> {
    println!("-- {name} --");
    let mut lows = Vec::new();
    for _ in 0..LOWS {
        lows.push(submit(lab, "low").await?);
    }
    let mut highs = Vec::new();
    let mut tick = tokio::time::interval(HIGH_EVERY);
    for _ in 0..HIGHS {
        tick.tick().await;
        highs.push(submit(lab, "high").await?);
    }
    let (high_p50, high_max) = p50_and_max(&waits(lab, &highs).await?);
    let (low_p50, low_max) = p50_and_max(&waits(lab, &lows).await?);
    println!(
        "waits: high p50 {high_p50:.2}s max {high_max:.2}s; low p50 {low_p50:.2}s max {low_max:.2}s\n"
    );
    Ok(Waits {
        name: name.to_owned(),
        high_p50,
        high_max,
        low_p50,
        low_max,
    })
}

/// Waits until the worker has nothing running, so a run does not start behind the previous one's tail.
async fn idle(lab: &Lab) -> Result<(), LessonError> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while lab.knobs.workers().await?["busy"].as_u64() != Some(0) {
        if tokio::time::Instant::now() > deadline {
            return Err(LessonError::Knob("the worker stayed busy".to_owned()));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// `priority-flood`.
pub async fn priority_flood(lab: &Lab, restore: &mut Restore) -> Result<Section, LessonError> {
    let mut results = Vec::new();
    for (name, aging_ms) in [("aging off", NO_AGING_MS), ("aging on", AGING_MS)] {
        lab.knobs.set_workers(restore, WORKERS, aging_ms).await?;
        idle(lab).await?;
        results.push(flood(lab, name).await?);
    }
    let verdict = match &results[..] {
        [strict, aging] => verdict::priority_flood(strict, aging),
        _ => String::new(),
    };
    let condition = format!(
        "The worker's pool is set to {WORKERS} workers (PUT /admin/workers, restored afterwards). {LOWS} low-priority \
         tasks of {TASK_SECS} s arrive at once, then {HIGHS} high-priority ones, one every {} ms: more than the pool \
         runs, so strict priority starves the low tasks while the stream lasts. Aging off (a bound of a day), then \
         on (a task waiting {AGING_MS} ms overtakes fresher ones of any priority).",
        HIGH_EVERY.as_millis()
    );
    let mut section = Section::new(Scenario::PriorityFlood, condition, Vec::new(), verdict)?;
    let ms = |seconds: f64| (seconds * 1000.0).round() as u64;
    section.tables.push(Table {
        title: "Wait per priority (seconds from acceptance to start)".to_owned(),
        header: ["run", "high p50", "high max", "low p50", "low max"]
            .map(str::to_owned)
            .to_vec(),
        rows: results
            .iter()
            .map(|w| {
                vec![
                    w.name.clone(),
                    format!("{:.2}", w.high_p50),
                    format!("{:.2}", w.high_max),
                    format!("{:.2}", w.low_p50),
                    format!("{:.2}", w.low_max),
                ]
            })
            .collect(),
    });
    let bars = Bars {
        categories: ["high p50", "high max", "low p50", "low max"]
            .map(str::to_owned)
            .to_vec(),
        runs: results
            .iter()
            .map(|w| {
                (
                    w.name.clone(),
                    vec![ms(w.high_p50), ms(w.high_max), ms(w.low_p50), ms(w.low_max)],
                )
            })
            .collect(),
    };
    let svg = grouped_bars_of(
        "priority-flood: wait per priority",
        "priority",
        "wait (ms)",
        &bars,
        false,
    )?;
    section.figure("waits", "Wait per priority", svg);
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_start_minus_acceptance() {
        assert_eq!(
            wait(&json!({"queued_at": 10.0, "started_at": 12.5})),
            Some(2.5)
        );
        assert_eq!(wait(&json!({"queued_at": 10.0, "started_at": null})), None);
        assert_eq!(p50_and_max(&[3.0, 1.0, 2.0, 4.0]), (2.0, 4.0));
        assert_eq!(p50_and_max(&[]), (0.0, 0.0));
    }
}

//! The worker binary: priority order under load, no lost task across SIGKILL, 4xx JSON on bad input.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::harness::{client, eventually, get_json, Backend};

const WORKER: &str = env!("CARGO_BIN_EXE_scalelab-worker");

async fn start(data_dir: &std::path::Path, workers: &str) -> Backend {
    let dir = data_dir.to_str().unwrap();
    Backend::start(WORKER, &["--data-dir", dir, "--workers", workers], data_dir).await
}

pub(crate) async fn submit(
    client: &reqwest::Client,
    worker: &Backend,
    priority: &str,
    duration: f64,
) -> String {
    let response = client
        .post(format!("{}/tasks?priority={priority}", worker.url))
        .json(&json!({ "task_type": "io_intensive", "duration": duration }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["task_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn task(client: &reqwest::Client, worker: &Backend, id: &str) -> Value {
    get_json(client, &format!("{}/tasks/{id}", worker.url))
        .await
        .1
}

async fn wait_for_status(
    client: &reqwest::Client,
    worker: &Backend,
    id: &str,
    wanted: &[&str],
) -> Value {
    eventually(&format!("{id} to be {wanted:?}"), || async {
        let task = task(client, worker, id).await;
        wanted.contains(&task["status"].as_str()?).then_some(task)
    })
    .await
}

#[tokio::test]
async fn highs_start_first_while_the_worker_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let worker = start(dir.path(), "1").await;
    let client = client();
    // io_intensive runs duration x 1.5: the blocker keeps the only worker busy for 1.2 s.
    let blocker = submit(&client, &worker, "normal", 0.8).await;
    wait_for_status(&client, &worker, &blocker, &["running"]).await;
    let mut expected = BTreeMap::new();
    for priority in ["low", "normal", "high"] {
        for _ in 0..5 {
            let id = submit(&client, &worker, priority, 0.02).await;
            expected.insert(id, priority);
        }
    }
    assert_eq!(
        task(&client, &worker, &blocker).await["status"],
        "running",
        "enqueueing must finish while busy"
    );
    let mut starts = Vec::new();
    for id in expected.keys() {
        let done = wait_for_status(&client, &worker, id, &["completed"]).await;
        starts.push((done["started_at"].as_f64().unwrap(), id.clone()));
    }
    starts.sort_by(|left, right| left.0.total_cmp(&right.0));
    let order: Vec<&str> = starts.iter().map(|(_, id)| id.as_str()).collect();
    // task-1 is the blocker; lows are 2-6, normals 7-11, highs 12-16.
    let want: Vec<String> = [12..=16, 7..=11, 2..=6]
        .into_iter()
        .flatten()
        .map(|seq| format!("task-{seq}"))
        .collect();
    assert_eq!(order, want);
}

#[tokio::test]
async fn sigkill_mid_run_loses_no_accepted_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut worker = start(dir.path(), "2").await;
    let client = client();
    let mut ids = Vec::new();
    for round in 0..4 {
        for priority in ["high", "normal", "low"] {
            ids.push(submit(&client, &worker, priority, 0.2 + f64::from(round) * 0.05).await);
        }
    }
    // Kill while tasks are demonstrably running, so some are interrupted mid-run.
    let running = eventually("a running task", || async {
        for id in &ids {
            if task(&client, &worker, id).await["status"] == "running" {
                return Some(id.clone());
            }
        }
        None
    })
    .await;
    worker.kill_hard();

    let restarted = start(dir.path(), "4").await;
    for id in &ids {
        wait_for_status(&client, &restarted, id, &["completed"]).await;
    }
    let interrupted = task(&client, &restarted, &running).await;
    assert_eq!(
        interrupted["attempts"], 2,
        "the task killed mid-run ran again: {interrupted}"
    );
    let (_, stats) = get_json(&client, &format!("{}/stats", restarted.url)).await;
    assert_eq!(stats["total_tasks"], 12);
    assert_eq!(stats["completed_tasks"], 12);
    assert_eq!(
        stats["current_queue_sizes"],
        json!({"high": 0, "normal": 0, "low": 0})
    );
}

#[tokio::test]
async fn bad_inputs_get_4xx_json_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let worker = start(dir.path(), "1").await;
    let client = client();
    let url = |path: &str| format!("{}{path}", worker.url);
    let json_post = |path: &str, body: &str| {
        client
            .post(url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let cases = [
        (json_post("/tasks", r#"{"duration":"long"}"#), 400),
        (json_post("/tasks", r#"{"duration":1e9}"#), 400),
        (json_post("/tasks?priority=asap", r#"{"duration":1}"#), 400),
        (json_post("/tasks", "not json"), 400),
        (
            json_post(
                "/tasks",
                &format!(r#"{{"task_type":"{}"}}"#, "x".repeat(100_000)),
            ),
            413,
        ),
        (client.post(url("/tasks")).body("{}"), 415),
        (client.get(url("/tasks/task-12345")), 404),
        (client.get(url("/nowhere")), 404),
        (client.delete(url("/stats")), 405),
    ];
    for (request, expected) in cases {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, expected, "{body}");
        assert_eq!(content_type, "application/json");
        assert!(
            body["error"].as_str().is_some_and(|text| !text.is_empty()),
            "{body}"
        );
    }
}

//! Oneshot tests of the worker router with a temporary SQLite store; the pool runs for real with short tasks.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::store::SqliteTaskStore;
use super::*;
use crate::chaos::ChaosSettings;

async fn start(dir: &std::path::Path, settings: WorkerSettings) -> Router {
    let instance = Instance::new("worker", 5005, ChaosSettings::default()).unwrap();
    let store: Arc<dyn TaskStore> = Arc::new(SqliteTaskStore::open(dir).unwrap());
    router(WorkerState::start(instance, store, settings).await.unwrap())
}

fn settings(workers: usize, aging_ms: u64) -> WorkerSettings {
    WorkerSettings {
        workers,
        aging: Duration::from_millis(aging_ms),
    }
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

async fn submit(app: &Router, priority: &str, body: &str) -> String {
    let (status, reply) = call(app, post(&format!("/tasks?priority={priority}"), body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    reply["task_id"].as_str().unwrap().to_owned()
}

/// Polls the task until it has finished, failing the test after the deadline.
async fn finished(app: &Router, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, task) = call(app, get(&format!("/tasks/{id}"))).await;
        if task["status"] == "completed" || task["status"] == "failed" {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} did not finish: {task}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn accepted_task_answers_202_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), settings(3, 30_000)).await;
    let (status, reply) = call(
        &app,
        post(
            "/task?priority=high",
            r#"{"task_type":"cpu_intensive","duration":0.1}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        reply,
        json!({"status": "Task queued", "task_id": "task-1", "queue": "high", "priority": "high", "position": 1})
    );
    let task = finished(&app, "task-1").await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["priority"], "high");
    assert_eq!(task["task_type"], "cpu_intensive");
    assert_eq!(task["attempts"], 1);
    assert!(task["finished_at"].as_f64().unwrap() - task["started_at"].as_f64().unwrap() >= 0.05);
}

#[tokio::test]
async fn priority_comes_from_query_then_body_then_meta() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), settings(0, 30_000)).await;
    let cases = [
        (
            "/tasks?priority=low",
            r#"{"duration":0.01,"priority":"high"}"#,
            "low",
        ),
        (
            "/tasks",
            r#"{"duration":0.01,"priority":"high","_meta":{"priority":"low"}}"#,
            "high",
        ),
        (
            "/tasks",
            r#"{"duration":0.01,"_meta":{"priority":"low","gateway":"gateway-5000","timestamp":1}}"#,
            "low",
        ),
        ("/tasks", r#"{"duration":0.01}"#, "normal"),
    ];
    for (uri, body, expected) in cases {
        let (status, reply) = call(&app, post(uri, body)).await;
        assert_eq!(
            (status, reply["priority"].as_str()),
            (StatusCode::ACCEPTED, Some(expected)),
            "{uri} {body}"
        );
    }
}

#[tokio::test]
async fn bad_inputs_are_4xx_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), settings(0, 30_000)).await;
    let huge = format!(
        r#"{{"task_type":"{}"}}"#,
        "x".repeat(crate::instance::MAX_BODY_BYTES)
    );
    let cases = [
        (
            post("/tasks?priority=urgent", r#"{"duration":1}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            post("/tasks", r#"{"duration":1,"priority":"urgent"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (post("/tasks", r#"{"duration":0}"#), StatusCode::BAD_REQUEST),
        (
            post("/tasks", r#"{"duration":-1}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            post("/tasks", r#"{"duration":301}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            post("/tasks", r#"{"duration":"5"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            post("/tasks", r#"{"durration":5}"#),
            StatusCode::BAD_REQUEST,
        ),
        (post("/tasks", r#"{"fail":"yes"}"#), StatusCode::BAD_REQUEST),
        (
            post("/tasks", r#"{"_meta":{"priority":3}}"#),
            StatusCode::BAD_REQUEST,
        ),
        (post("/tasks", "[1,2]"), StatusCode::BAD_REQUEST),
        (post("/tasks", "{"), StatusCode::BAD_REQUEST),
        (post("/tasks", &huge), StatusCode::PAYLOAD_TOO_LARGE),
        (
            Request::post("/tasks").body(Body::from("{}")).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (get("/tasks/task-999"), StatusCode::NOT_FOUND),
        (get("/tasks/nonsense"), StatusCode::NOT_FOUND),
        (
            Request::put("/admin/workers")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"workers":-1}"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::put("/admin/workers")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"workers":1000}"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::put("/admin/workers")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"workers":1,"aging_ms":86400001}"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (request, expected) in cases {
        let label = format!("{} {}", request.method(), request.uri());
        let (status, body) = call(&app, request).await;
        assert_eq!(status, expected, "{label}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|text| !text.is_empty()),
            "{label}: {body}"
        );
    }
    let (_, stats) = call(&app, get("/stats")).await;
    assert_eq!(stats["total_tasks"], 0, "no rejected task may be stored");
}

#[tokio::test]
async fn high_then_normal_then_low_fifo_within_a_level() {
    let dir = tempfile::tempdir().unwrap();
    // No workers yet, so everything is queued before anything starts.
    let app = start(dir.path(), settings(0, 30_000)).await;
    let mut ids = BTreeMap::new();
    for priority in ["low", "normal", "high"] {
        for _ in 0..3 {
            let id = submit(&app, priority, r#"{"duration":0.01}"#).await;
            ids.insert(id, priority);
        }
    }
    let (_, stats) = call(&app, get("/stats")).await;
    assert_eq!(
        stats["current_queue_sizes"],
        json!({"high": 3, "normal": 3, "low": 3})
    );
    call(
        &app,
        Request::put("/admin/workers")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"workers":1}"#))
            .unwrap(),
    )
    .await;
    let mut started = Vec::new();
    for id in ids.keys() {
        let task = finished(&app, id).await;
        started.push((task["started_at"].as_f64().unwrap(), id.clone()));
    }
    started.sort_by(|left, right| left.0.total_cmp(&right.0));
    let order: Vec<&str> = started.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        order,
        [
            "task-7", "task-8", "task-9", "task-4", "task-5", "task-6", "task-1", "task-2",
            "task-3"
        ]
    );
}

#[tokio::test]
async fn an_aged_low_task_overtakes_fresh_highs() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), settings(0, 200)).await;
    let low = submit(&app, "low", r#"{"duration":0.01}"#).await;
    // Waiting is the point here: the low task must be older than the 200 ms aging bound.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let highs = [
        submit(&app, "high", r#"{"duration":0.01}"#).await,
        submit(&app, "high", r#"{"duration":0.01}"#).await,
    ];
    call(
        &app,
        Request::put("/admin/workers")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"workers":1}"#))
            .unwrap(),
    )
    .await;
    let low_start = finished(&app, &low).await["started_at"].as_f64().unwrap();
    for high in highs {
        let high_start = finished(&app, &high).await["started_at"].as_f64().unwrap();
        assert!(
            low_start < high_start,
            "aged low {low_start} should start before high {high_start}"
        );
    }
}

#[tokio::test]
async fn the_aging_bound_changes_live() {
    let dir = tempfile::tempdir().unwrap();
    // Aging as good as off at the start: a low task would wait behind every high one.
    let app = start(dir.path(), settings(0, 30_000)).await;
    let low = submit(&app, "low", r#"{"duration":0.01}"#).await;
    // Waiting is the point here: the low task must be older than the 200 ms bound set below.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let highs = [
        submit(&app, "high", r#"{"duration":0.01}"#).await,
        submit(&app, "high", r#"{"duration":0.01}"#).await,
    ];
    let (status, body) = call(
        &app,
        Request::put("/admin/workers")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"workers":1,"aging_ms":200}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["aging_ms"], 200);
    let low_start = finished(&app, &low).await["started_at"].as_f64().unwrap();
    for high in highs {
        let high_start = finished(&app, &high).await["started_at"].as_f64().unwrap();
        assert!(
            low_start < high_start,
            "aged low {low_start} should start before high {high_start}"
        );
    }
}

#[tokio::test]
async fn failing_tasks_do_not_kill_workers_and_stats_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), settings(1, 30_000)).await;
    let failing = submit(&app, "normal", r#"{"duration":0.01,"fail":true}"#).await;
    let after = submit(
        &app,
        "normal",
        r#"{"task_type":"io_intensive","duration":0.02}"#,
    )
    .await;
    let task = finished(&app, &failing).await;
    assert_eq!(
        (task["status"].as_str(), task["error"].as_str()),
        (Some("failed"), Some("simulated failure"))
    );
    assert_eq!(finished(&app, &after).await["status"], "completed");
    let (_, stats) = call(&app, get("/stats")).await;
    assert_eq!(stats["total_tasks"], 2);
    assert_eq!(stats["completed_tasks"], 1);
    assert_eq!(stats["failed_tasks"], 1);
    assert_eq!(
        stats["queue_lengths"],
        json!({"high": 0, "normal": 0, "low": 0})
    );
    assert_eq!(stats["wait_time_percentiles"]["normal"]["count"], 2);
    assert_eq!(
        stats["wait_time_percentiles"]["high"],
        json!({"count": 0, "p50": null, "p90": null, "p99": null})
    );
    assert_eq!(stats["workers"], 1);
    // io_intensive ran 0.02 x 1.5 s, the failing task ~0.01 s: a true average lies in between.
    let average = stats["avg_processing_time"].as_f64().unwrap();
    assert!((0.01..0.5).contains(&average), "{average}");
    let response = app.clone().oneshot(get("/metrics")).await.unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        has_line(
            &text,
            r#"scalelab_worker_tasks_total{outcome="failed",priority="normal"} 1"#
        ),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            r#"scalelab_worker_tasks_total{outcome="completed",priority="normal"} 1"#
        ),
        "{text}"
    );
    assert!(
        has_line(&text, r#"scalelab_worker_queue_depth{priority="low"} 0"#),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            r#"scalelab_worker_task_wait_seconds_count{priority="normal"} 2"#
        ),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            r#"scalelab_worker_task_run_seconds_count{priority="normal"} 2"#
        ),
        "{text}"
    );
    // Levels that never ran a task are still exported, at zero.
    assert!(
        has_line(
            &text,
            r#"scalelab_worker_tasks_total{outcome="completed",priority="high"} 0"#
        ),
        "{text}"
    );
    assert!(has_line(&text, "scalelab_worker_pool_size 1"), "{text}");
}

/// Whether the exposition holds exactly this sample line; a substring test would let `worker_x` match inside
/// `scalelab_worker_x`.
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|candidate| candidate == line)
}

#[tokio::test]
async fn workers_resize_live() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), settings(3, 30_000)).await;
    let (_, body) = call(&app, get("/admin/workers")).await;
    assert_eq!(body["workers"], 3);
    let (status, body) = call(
        &app,
        Request::put("/admin/workers")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"workers":5}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["workers"].clone()),
        (StatusCode::OK, json!(5))
    );
    let ids: Vec<String> = futures_join(&app, 5).await;
    // Five 0.3 s tasks on five workers overlap: all are running at once at some point.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = call(&app, get("/admin/workers")).await;
        if body["busy"] == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never saw 5 busy workers: {body}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for id in ids {
        finished(&app, &id).await;
    }
}

async fn futures_join(app: &Router, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(submit(app, "normal", r#"{"duration":0.3}"#).await);
    }
    ids
}

#[test]
fn percentiles_use_nearest_rank() {
    let waits: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(
        percentiles(&waits),
        json!({"count": 10, "p50": 5.0, "p90": 9.0, "p99": 10.0})
    );
    assert_eq!(
        percentiles(&[2.0]),
        json!({"count": 1, "p50": 2.0, "p90": 2.0, "p99": 2.0})
    );
}

//! Oneshot tests of the database router against a temporary SQLite file.

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::chaos::ChaosSettings;

fn app(dir: &FsPath) -> Router {
    let instance = Instance::new("database", 5002, ChaosSettings::default()).unwrap();
    let database = Arc::new(Database::open(dir).unwrap());
    router(DatabaseState::new(instance, database, Latency::NONE).unwrap())
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

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn put(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::put(uri)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn db_answers_the_seed_message_and_counts_seeded_items() {
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = call(&app(dir.path()), get("/db")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"message": "Fetched fresh data from DB", "instance": "database-5002", "items": 1000})
    );
}

#[tokio::test]
async fn items_are_seeded_readable_and_writable() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let (status, body) = call(&app, get("/items/42")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], 42);
    assert_eq!(body["value"], json!({"name": "item 42", "version": 0}));

    let (status, body) = call(
        &app,
        put(
            "/items/42",
            "application/json",
            r#"{"name":"renamed","version":1}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], json!({"name": "renamed", "version": 1}));
    let (_, body) = call(&app, get("/items/42")).await;
    assert_eq!(body["value"], json!({"name": "renamed", "version": 1}));

    let (status, body) = call(&app, put("/items/5000", "application/json", "7")).await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::CREATED, json!(7))
    );
}

#[tokio::test]
async fn data_survives_reopening_the_file_and_is_not_reseeded() {
    let dir = tempfile::tempdir().unwrap();
    call(
        &app(dir.path()),
        put("/items/1", "application/json", r#""kept""#),
    )
    .await;
    let reopened = app(dir.path());
    let (_, body) = call(&reopened, get("/items/1")).await;
    assert_eq!(body["value"], "kept");
    let (_, body) = call(&reopened, get("/db")).await;
    assert_eq!(body["items"], 1000);
}

#[tokio::test]
async fn bad_inputs_are_4xx_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let huge = vec![b'1'; crate::instance::MAX_BODY_BYTES + 10];
    let cases = [
        (get("/items/1001"), StatusCode::NOT_FOUND),
        (get("/items/abc"), StatusCode::BAD_REQUEST),
        (
            put("/items/1", "application/json", "{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            put("/items/1", "text/plain", "1"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            put("/items/1", "application/json", huge),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            put("/items/0", "application/json", "1"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::delete("/items/1").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (request, expected) in cases {
        let label = format!("{} {}", request.method(), request.uri());
        let (status, body) = call(&app, request).await;
        assert_eq!(status, expected, "{label}");
        assert!(
            body["error"].as_str().is_some_and(|text| !text.is_empty()),
            "{label}: {body}"
        );
    }
}

#[tokio::test]
async fn each_query_kind_is_timed_under_its_own_label() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    call(&app, get("/db")).await;
    call(&app, get("/items/1")).await;
    call(&app, get("/items/2")).await;
    call(&app, put("/items/3", "application/json", "3")).await;
    // Refused before any query runs, so it must not be timed.
    call(&app, put("/items/0", "application/json", "0")).await;
    let response = app.clone().oneshot(get("/metrics")).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for (query, count) in [("count_items", 1), ("get_item", 2), ("upsert_item", 1)] {
        let line =
            format!(r#"scalelab_database_query_duration_seconds_count{{query="{query}"}} {count}"#);
        assert!(
            text.lines().any(|candidate| candidate == line),
            "{line} missing from:\n{text}"
        );
    }
}

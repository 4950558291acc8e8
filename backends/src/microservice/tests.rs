//! Oneshot tests of the microservice router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::chaos::ChaosSettings;

fn app() -> Router {
    let instance = Instance::new("microservice", 5001, ChaosSettings::default()).unwrap();
    router(MicroserviceState { instance })
}

async fn call(app: Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn process_answers_the_seed_message_with_instance() {
    let (status, headers, body) = call(app(), get("/process")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"message": "Business logic executed", "instance": "microservice-5001", "work_ms": 0})
    );
    assert!(headers.contains_key("x-processing-time"));
}

#[tokio::test]
async fn process_burns_the_requested_cpu_time() {
    let started = Instant::now();
    let (status, _, body) = call(app(), get("/process?work_ms=30")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["work_ms"], 30);
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn bad_parameters_are_400_json() {
    for uri in [
        "/process?work_ms=abc",
        "/process?work_ms=-1",
        "/process?work_ms=10001",
        "/process?nope=1",
    ] {
        let (status, _, body) = call(app(), get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
}

#[tokio::test]
async fn health_unknown_routes_and_methods_answer_json() {
    let (status, _, body) = call(app(), get("/health")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "ok", "instance": "microservice-5001"})
        )
    );
    let (status, _, body) = call(app(), get("/nope")).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "no such route"}))
    );
    let post = Request::post("/process").body(Body::empty()).unwrap();
    let (status, _, body) = call(app(), post).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method not allowed"})
        )
    );
}

#[tokio::test]
async fn chaos_knobs_fail_health_and_inject_errors() {
    let app = app();
    let set = |body: &str| {
        Request::post("/admin/chaos")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let (status, _, body) = call(
        app.clone(),
        set(r#"{"fail_health": true, "error_rate": 1.0}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"latency_ms": 0, "latency_jitter_ms": 0, "error_rate": 1.0, "fail_health": true, "max_concurrency": 0})
    );
    let (status, _, _) = call(app.clone(), get("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = call(app.clone(), get("/process")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "injected failure"})
        )
    );
    let (status, _, _) = call(app.clone(), set(r#"{"error_rate": 2.0}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(app.clone(), set(r#"{"bogus": 1}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    call(
        app.clone(),
        set(r#"{"fail_health": false, "error_rate": 0.0}"#),
    )
    .await;
    let (status, _, _) = call(app.clone(), get("/process")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, body) = call(app, get("/admin/chaos")).await;
    assert_eq!(body["fail_health"], false);
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = app();
    call(app.clone(), get("/process")).await;
    let response = app.oneshot(get("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains(
            r#"scalelab_backend_http_requests_total{code="200",method="GET",route="/process"} 1"#
        ),
        "{text}"
    );
    #[cfg(target_os = "linux")]
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
}

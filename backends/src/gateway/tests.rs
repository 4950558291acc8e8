//! Oneshot tests of the gateway router; its dependencies are real backend routers served on loopback.

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use std::path::Path;

use scalelab_auth::AuthSettings;
use tower::ServiceExt;

use super::*;
use crate::chaos::ChaosSettings;
use crate::database::{self, Database, DatabaseState, Latency};
use crate::microservice::{self, MicroserviceState};
use crate::priority_worker::store::{SqliteTaskStore, TaskStore};
use crate::priority_worker::{self, WorkerSettings, WorkerState};

/// The `[auth]` table of a lab config, loaded exactly as the gateway binary loads it.
fn auth_settings() -> AuthSettings {
    let config = scalelab_auth::parse_config_toml(
        r#"
[auth]
algorithms = ["HS256"]
secret = "gateway-test-secret-gateway-test-secret"
issuer = "scalelab"
audience = "scalelab-lab"
leeway = "5s"
"#,
    )
    .unwrap()
    .unwrap();
    scalelab_auth::validate(&config, Path::new(".")).unwrap()
}

/// Serves a router on a free loopback port and returns its base URL.
async fn spawn(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A URL on which nothing listens.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

struct World {
    _dir: tempfile::TempDir,
    database: String,
    microservice: String,
    worker: String,
    microservice_chaos: crate::chaos::Chaos,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db_instance = Instance::new("database", 5002, ChaosSettings::default()).unwrap();
    let database = Arc::new(Database::open(dir.path()).unwrap());
    let database = spawn(database::router(
        DatabaseState::new(db_instance, database, Latency::NONE).unwrap(),
    ))
    .await;
    let ms_instance = Instance::new("microservice", 5001, ChaosSettings::default()).unwrap();
    let microservice_chaos = ms_instance.chaos().clone();
    let microservice = spawn(microservice::router(MicroserviceState {
        instance: ms_instance,
    }))
    .await;
    let worker_instance = Instance::new("worker", 5005, ChaosSettings::default()).unwrap();
    let store: Arc<dyn TaskStore> = Arc::new(SqliteTaskStore::open(dir.path()).unwrap());
    let settings = WorkerSettings {
        workers: 0,
        aging: Duration::from_secs(30),
    };
    let worker = spawn(priority_worker::router(
        WorkerState::start(worker_instance, store, settings)
            .await
            .unwrap(),
    ))
    .await;
    World {
        _dir: dir,
        database,
        microservice,
        worker,
        microservice_chaos,
    }
}

fn gateway(dependencies: Dependencies, timeout: Duration) -> Router {
    let verifier = Arc::new(Verifier::new(auth_settings()));
    gateway_with(Some(verifier), dependencies, timeout)
}

fn gateway_with(
    verifier: Option<Arc<Verifier>>,
    dependencies: Dependencies,
    timeout: Duration,
) -> Router {
    let instance = Instance::new("gateway", 5003, ChaosSettings::default()).unwrap();
    router(GatewayState::new(instance, verifier, dependencies, timeout).unwrap())
}

fn gateway_for(world: &World) -> Router {
    gateway(
        Dependencies {
            database: world.database.clone(),
            microservice: world.microservice.clone(),
            worker: world.worker.clone(),
        },
        Duration::from_secs(2),
    )
}

fn token() -> String {
    scalelab_auth::mint(&auth_settings(), "tester", Duration::from_secs(600)).unwrap()
}

fn authed(method: &str, uri: &str, body: Option<&str>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", token()));
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned())),
        None => builder.body(Body::empty()),
    }
    .unwrap()
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_a_challenge() {
    let world = world().await;
    let app = gateway_for(&world);
    let (status, headers, body) =
        call(&app, Request::get("/data").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"error": "missing token", "reason": "missing"}));
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="scalelab""#);
    assert!(headers.contains_key("x-processing-time"));

    let seed_token =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo";
    let request = Request::get("/data")
        .header("authorization", seed_token)
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = call(&app, request).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid token", "reason": "bad_signature"})
        )
    );
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"error="invalid_token""#));

    let (status, _, _) = call(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "health needs no token");
}

#[tokio::test]
async fn tokens_for_another_audience_are_refused() {
    let world = world().await;
    let app = gateway_for(&world);
    let config = scalelab_auth::parse_config_toml(
        r#"
[auth]
algorithms = ["HS256"]
secret = "gateway-test-secret-gateway-test-secret"
issuer = "scalelab"
audience = "another-service"
"#,
    )
    .unwrap()
    .unwrap();
    let other = scalelab_auth::validate(&config, Path::new(".")).unwrap();
    let foreign = scalelab_auth::mint(&other, "tester", Duration::from_secs(600)).unwrap();
    let request = Request::get("/data")
        .header("authorization", format!("Bearer {foreign}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = call(&app, request).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid token", "reason": "bad_audience"})
        )
    );
}

#[tokio::test]
async fn without_auth_settings_protected_routes_fail_closed() {
    let world = world().await;
    let app = gateway_with(
        None,
        Dependencies {
            database: world.database.clone(),
            microservice: world.microservice.clone(),
            worker: world.worker.clone(),
        },
        Duration::from_secs(2),
    );
    let (status, _, body) = call(&app, authed("GET", "/data", None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("[auth]"), "{body}");
    let (status, _, _) = call(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn data_reads_the_database_with_bearer_or_raw_token() {
    let world = world().await;
    let app = gateway_for(&world);
    let expected = json!({"data": "Fetched fresh data from DB", "source": "database", "instance": "gateway-5003"});
    let (status, headers, body) = call(&app, authed("GET", "/data", None)).await;
    assert_eq!((status, body), (StatusCode::OK, expected.clone()));
    assert_eq!(headers["cache-control"], DATA_CACHE_CONTROL);
    assert!(headers.contains_key("x-processing-time"));
    let raw = Request::get("/data")
        .header("authorization", token())
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = call(&app, raw).await;
    assert_eq!((status, body), (StatusCode::OK, expected));
}

#[tokio::test]
async fn complex_data_combines_item_and_microservice() {
    let world = world().await;
    let app = gateway_for(&world);
    let (status, headers, body) = call(&app, authed("GET", "/data/complex?id=3", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], COMPLEX_CACHE_CONTROL);
    assert_eq!(body["db_data"]["id"], 3);
    assert_eq!(body["db_data"]["value"]["name"], "item 3");
    assert_eq!(body["service_data"]["message"], "Business logic executed");
    assert!(body["timestamp"].as_f64().unwrap() > 1.0e9);

    let cases = [
        ("/data/complex?id=5000", StatusCode::NOT_FOUND),
        ("/data/complex?id=abc", StatusCode::BAD_REQUEST),
        ("/data/complex", StatusCode::BAD_REQUEST),
    ];
    for (uri, expected) in cases {
        let (status, _, body) = call(&app, authed("GET", uri, None)).await;
        assert_eq!(status, expected, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
}

#[tokio::test]
async fn failing_dependencies_map_to_502_503_504_naming_them() {
    let world = world().await;
    let down = gateway(
        Dependencies {
            database: world.database.clone(),
            microservice: closed_url(),
            worker: closed_url(),
        },
        Duration::from_secs(2),
    );
    let (status, _, body) = call(&down, authed("GET", "/data/complex?id=1", None)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "microservice unavailable", "dependency": "microservice"})
        )
    );
    let (status, _, body) = call(
        &down,
        authed("POST", "/longtask", Some(r#"{"duration":1}"#)),
    )
    .await;
    assert_eq!(
        (status, body["dependency"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!("worker"))
    );

    let slow = gateway(
        Dependencies {
            database: world.database.clone(),
            microservice: world.microservice.clone(),
            worker: world.worker.clone(),
        },
        Duration::from_millis(100),
    );
    world.microservice_chaos_set(ChaosSettings {
        latency_ms: 500,
        ..ChaosSettings::default()
    });
    let (status, _, body) = call(&slow, authed("GET", "/data/complex?id=1", None)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::GATEWAY_TIMEOUT,
            json!({"error": "microservice timed out", "dependency": "microservice"})
        )
    );

    world.microservice_chaos_set(ChaosSettings {
        error_rate: 1.0,
        ..ChaosSettings::default()
    });
    let (status, _, body) = call(
        &gateway_for(&world),
        authed("GET", "/data/complex?id=1", None),
    )
    .await;
    assert_eq!(
        (status, body["dependency"].clone()),
        (StatusCode::BAD_GATEWAY, json!("microservice"))
    );
}

#[tokio::test]
async fn dependency_calls_are_counted_by_outcome_and_timed() {
    let world = world().await;
    let gateway = gateway(
        Dependencies {
            database: world.database.clone(),
            microservice: world.microservice.clone(),
            worker: closed_url(),
        },
        Duration::from_millis(500),
    );
    world.microservice_chaos_set(ChaosSettings {
        latency_ms: 3_000,
        ..ChaosSettings::default()
    });
    let (status, _, _) = call(&gateway, authed("GET", "/data/complex?id=1", None)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (status, _, _) = call(
        &gateway,
        authed("POST", "/longtask", Some(r#"{"duration":1}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let response = gateway
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let calls = |dependency: &str, outcome: &str, count: u32| {
        format!(
            r#"scalelab_gateway_dependency_requests_total{{dependency="{dependency}",outcome="{outcome}"}} {count}"#
        )
    };
    for line in [
        calls("database", "ok", 1),
        calls("microservice", "timeout", 1),
        calls("worker", "error", 1),
        // Outcomes that never happened are exported at zero, so rate() sees their first occurrence.
        calls("database", "error", 0),
        calls("worker", "ok", 0),
        r#"scalelab_gateway_dependency_duration_seconds_count{dependency="microservice"} 1"#
            .to_owned(),
        r#"scalelab_gateway_dependency_duration_seconds_count{dependency="worker"} 1"#.to_owned(),
    ] {
        assert!(
            text.lines().any(|candidate| candidate == line),
            "{line} missing from:\n{text}"
        );
    }
    // The timed-out call is timed up to the 500 ms timeout, not to the dependency's 3 s.
    let timed_out = text
        .lines()
        .find_map(|line| {
            line.strip_prefix(
                r#"scalelab_gateway_dependency_duration_seconds_sum{dependency="microservice"} "#,
            )
        })
        .unwrap();
    let seconds: f64 = timed_out.parse().unwrap();
    assert!((0.4..2.5).contains(&seconds), "{seconds}");
}

impl World {
    fn microservice_chaos_set(&self, settings: ChaosSettings) {
        self.microservice_chaos.replace(settings);
    }
}

#[tokio::test]
async fn longtask_forwards_to_the_worker_and_returns_its_id() {
    let world = world().await;
    let app = gateway_for(&world);
    let (status, headers, body) = call(
        &app,
        authed(
            "POST",
            "/longtask?priority=high",
            Some(r#"{"task_type":"cpu_intensive","duration":3}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        json!({"status": "Task queued", "priority": "high", "task_id": "task-1"})
    );
    assert!(headers.contains_key("x-processing-time"));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let task: Value = client
        .get(format!("{}/tasks/task-1", world.worker))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (task["priority"].as_str(), task["duration"].as_f64()),
        (Some("high"), Some(3.0))
    );

    let cases = [
        (
            "/longtask?priority=urgent",
            r#"{"duration":1}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("/longtask", "[1]", StatusCode::BAD_REQUEST),
        ("/longtask", "{", StatusCode::BAD_REQUEST),
        ("/longtask", r#"{"duration":999}"#, StatusCode::BAD_REQUEST),
    ];
    for (uri, body, expected) in cases {
        let (status, _, reply) = call(&app, authed("POST", uri, Some(body))).await;
        assert_eq!(status, expected, "{uri} {body}: {reply}");
        assert!(reply["error"].is_string(), "{reply}");
    }
}

/// The forward auth endpoint the lab's proxy asks (issue 25): a valid token is 204 with `X-User` (its `sub`), no
/// token the protected routes' 401 with its challenge.
#[tokio::test]
async fn the_forward_auth_endpoint_names_the_user_or_refuses() {
    let world = world().await;
    let app = gateway_for(&world);
    let request = Request::get("/auth/verify")
        .header("authorization", format!("Bearer {}", token()))
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = call(&app, request).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["x-user"], "tester");
    let (status, headers, body) = call(
        &app,
        Request::get("/auth/verify").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "missing");
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="scalelab""#);
}

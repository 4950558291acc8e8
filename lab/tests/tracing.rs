//! One trace through the whole lab (issue 29): `scalelab up` with the proxy's `[tracing]` and
//! `[lab] otlp_endpoint` both naming an in-test OTLP/HTTP receiver; a sampled request to
//! `/data/complex` must come back as one trace whose spans have the right parents (caller ->
//! proxy -> its attempt -> gateway -> the gateway's two dependency calls -> the database and
//! the microservice), with the gateway's two calls overlapping in time; and a sampled
//! `/longtask` must show the worker's queue wait and run as children of its request's span.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use scalelab_test_support::{
    blocking_client, eventually_blocking, free_ports, OtlpReceiver, ReceivedSpan,
};
use serde_json::json;
use support::{build_siblings, lab_tail, mint_token, proxy_head, Up, COMPLEX_ROUTE};

const TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "10f067aa0ba902b7";
const TASK_TRACE: &str = "6bf92f3577b34da6a3ce929d0e0e4736";

#[test]
fn a_request_through_the_lab_is_one_trace_with_the_fan_out_overlapping() {
    let bin_dir = build_siblings();
    let receiver = OtlpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let [g1, g2, g3, ms, db, worker, proxy, admin] = ports[..] else {
        panic!("need 8 ports");
    };
    let mut text = proxy_head(proxy, admin, [g1, g2, g3]);
    text.push_str(COMPLEX_ROUTE);
    text.push_str(&format!(
        r#"
[[routes]]
name = "longtask"
auth = "jwt"
path = "/longtask"
upstream = "gateways"

[tracing]
otlp_endpoint = "{endpoint}"
sample_ratio = 0.0
"#,
        endpoint = receiver.endpoint()
    ));
    let tail = lab_tail([g1, g2, g3], ms, db, worker).replace(
        "[lab]\n",
        &format!("[lab]\notlp_endpoint = \"{}\"\n", receiver.endpoint()),
    );
    text.push_str(&tail);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &text).unwrap();
    let mut up = Up::start(&config, &bin_dir, &[]);
    up.wait_for("scalelab is up", Duration::from_secs(120));
    let token = mint_token(&config);

    let response = blocking_client(Duration::from_secs(30))
        .get(format!("http://127.0.0.1:{proxy}/data/complex?id=1"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);

    // proxy server + attempt, gateway server + two calls, database server + query,
    // microservice server: eight spans.
    let spans = eventually_blocking(Duration::from_secs(20), "the whole trace", || {
        let spans = receiver.trace(TRACE);
        (spans.len() >= 8).then_some(spans)
    });
    let by = |service: &str, kind: i32| -> Vec<&ReceivedSpan> {
        spans
            .iter()
            .filter(|s| s.service.contains(service) && s.kind == kind)
            .collect()
    };
    let one = |found: Vec<&ReceivedSpan>, what: &str| -> ReceivedSpan {
        assert_eq!(found.len(), 1, "{what}: {spans:#?}");
        found[0].clone()
    };
    let proxy_server = one(
        by("scalelab-proxy", ReceivedSpan::SERVER),
        "proxy server span",
    );
    assert_eq!(proxy_server.parent_span_id, CALLER);
    let attempt = one(by("scalelab-proxy", ReceivedSpan::CLIENT), "proxy attempt");
    assert_eq!(attempt.parent_span_id, proxy_server.span_id);
    let gateway = one(
        by("scalelab-gateway", ReceivedSpan::SERVER),
        "gateway server span",
    );
    assert_eq!(gateway.parent_span_id, attempt.span_id);
    let calls = by("scalelab-gateway", ReceivedSpan::CLIENT);
    assert_eq!(calls.len(), 2, "{spans:#?}");
    assert!(calls.iter().all(|c| c.parent_span_id == gateway.span_id));
    let call = |name: &str| {
        calls
            .iter()
            .find(|c| c.name == name)
            .copied()
            .unwrap()
            .clone()
    };
    let (to_database, to_microservice) = (call("database"), call("microservice"));
    assert!(
        to_database.start_ns < to_microservice.end_ns
            && to_microservice.start_ns < to_database.end_ns,
        "the fan-out's calls do not overlap: {to_database:#?} {to_microservice:#?}"
    );
    let database = one(
        by("scalelab-database", ReceivedSpan::SERVER),
        "database server span",
    );
    assert_eq!(database.parent_span_id, to_database.span_id);
    let query = spans
        .iter()
        .find(|s| s.service.contains("database") && s.parent_span_id == database.span_id)
        .expect("the database's query span");
    assert_eq!(query.attribute("db.system.name"), Some("sqlite"));
    let microservice = one(
        by("scalelab-microservice", ReceivedSpan::SERVER),
        "microservice span",
    );
    assert_eq!(microservice.parent_span_id, to_microservice.span_id);
    // Every span is inside its parent's time.
    for (child, parent) in [
        (&attempt, &proxy_server),
        (&gateway, &attempt),
        (&database, &to_database),
    ] {
        assert!(
            parent.start_ns <= child.start_ns && child.end_ns <= parent.end_ns + 1_000_000,
            "{child:#?} outside {parent:#?}"
        );
    }

    // A task: the worker's request span, then its queue wait and its run, in that order.
    let queued = blocking_client(Duration::from_secs(30))
        .post(format!("http://127.0.0.1:{proxy}/longtask?priority=high"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TASK_TRACE}-{CALLER}-01"))
        .json(&json!({"task_type": "io_intensive", "duration": 0.1}))
        .send()
        .unwrap();
    assert_eq!(queued.status(), 202);
    let task = eventually_blocking(Duration::from_secs(20), "the task's spans", || {
        let spans = receiver.trace(TASK_TRACE);
        spans.iter().any(|s| s.name == "run").then_some(spans)
    });
    let worker = task
        .iter()
        .find(|s| s.service == "scalelab-worker" && s.kind == ReceivedSpan::SERVER)
        .expect("the worker's request span");
    let waited = task
        .iter()
        .find(|s| s.name == "queue wait")
        .expect("queue wait");
    let run = task.iter().find(|s| s.name == "run").expect("run");
    assert_eq!(waited.parent_span_id, worker.span_id);
    assert_eq!(run.parent_span_id, worker.span_id);
    assert!(waited.end_ns <= run.start_ns, "{waited:#?} {run:#?}");
    assert_eq!(run.attribute("scalelab.task.type"), Some("io_intensive"));
}

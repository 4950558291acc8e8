//! Tracing (issue 29) through the real proxy binary and a real OTLP/HTTP receiver
//! (`test-support`'s `OtlpReceiver`, decoding the exporter's protobuf): trace context accepted,
//! started, replaced when malformed and forwarded as a child; spans exported for sampled
//! requests only; the export reloaded live; a dead collector costing no request; the trace id
//! in the access log; `Server-Timing` only with the diagnostic headers.

use crate::harness::*;
use scalelab_test_support::{OtlpReceiver, ReceivedSpan};
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace: &str, sampled: bool) -> String {
    format!(
        "00-{trace}-{CALLER_SPAN}-{}",
        if sampled { "01" } else { "00" }
    )
}

fn tracing_table(endpoint: &str, ratio: f64) -> String {
    format!("[tracing]\notlp_endpoint = \"{endpoint}\"\nsample_ratio = {ratio}\nservice_name = \"edge\"\n")
}

/// A proxy with `[tracing]` as given in front of `backend` on `/api`, logging to a file.
struct Traced {
    proxy: TestProxy,
    config: TestConfig,
    log: std::path::PathBuf,
    _logs: tempfile::TempDir,
}

async fn traced_proxy(backend: &TestBackend, tracing: &str, debug: Option<&'static str>) -> Traced {
    let logs = tempfile::tempdir().expect("temporary directory");
    let log = logs.path().join("access.log");
    let config = TestConfig::new()
        .debug_headers(debug)
        .proxy_setting(&format!(
            "access_log = {{ path = {:?} }}",
            log.display().to_string()
        ))
        .upstream(UpstreamSpec::new("g", "round_robin", &[backend], &[1]))
        .tables(tracing)
        .route("api", "/api", "g");
    Traced {
        proxy: TestProxy::start(&config).await,
        config,
        log,
        _logs: logs,
    }
}

/// The `traceparent` the backend received last, split into trace id, parent id and flags.
fn forwarded(backend: &TestBackend) -> (String, String, String) {
    let value = backend
        .last_header("traceparent")
        .expect("a traceparent upstream");
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    (
        parts[1].to_string(),
        parts[2].to_string(),
        parts[3].to_string(),
    )
}

async fn spans_of(receiver: &OtlpReceiver, trace: &str, count: usize) -> Vec<ReceivedSpan> {
    eventually(
        Duration::from_secs(10),
        "the trace's spans at the receiver",
        || async {
            let spans = receiver.trace(trace);
            (spans.len() >= count).then_some(spans)
        },
    )
    .await
}

async fn get(proxy: &TestProxy, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = proxy.http().get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("response");
    assert_eq!(response.status(), 200, "{path}");
    response
}

fn access_log(traced: &Traced) -> String {
    std::fs::read_to_string(&traced.log).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_parent_yields_server_and_attempt_spans_and_a_child_traceparent() {
    let receiver = OtlpReceiver::start();
    let backend = TestBackend::start("a");
    // Ratio 0: only the caller's sampled flag can make this request recorded.
    let traced = traced_proxy(&backend, &tracing_table(&receiver.endpoint(), 0.0), None).await;
    let sent = traceparent(TRACE, true);
    get(
        &traced.proxy,
        "/api/items?x=1",
        &[
            ("traceparent", &sent),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ],
    )
    .await;

    let (trace, parent, flags) = forwarded(&backend);
    assert_eq!(trace, TRACE, "the caller's trace continues upstream");
    assert_ne!(
        parent, CALLER_SPAN,
        "the upstream's parent is the proxy's span, not the caller's"
    );
    assert_eq!(flags, "01");
    assert_eq!(
        backend.last_header("tracestate").as_deref(),
        Some("rojo=00f067aa0ba902b7")
    );

    let spans = spans_of(&receiver, TRACE, 2).await;
    let server = spans
        .iter()
        .find(|s| s.kind == ReceivedSpan::SERVER)
        .expect("a server span");
    assert_eq!(server.service, "edge");
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(server.name, "GET /api");
    assert_eq!(server.attribute("http.request.method"), Some("GET"));
    assert_eq!(server.attribute("http.route"), Some("/api"));
    assert_eq!(server.attribute("url.path"), Some("/api/items"));
    assert_eq!(server.attribute("http.response.status_code"), Some("200"));
    assert_eq!(server.attribute("scalelab.route"), Some("api"));
    let attempt = spans
        .iter()
        .find(|s| s.kind == ReceivedSpan::CLIENT)
        .expect("an attempt span");
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(
        attempt.span_id, parent,
        "the forwarded parent is the attempt's span"
    );
    assert_eq!(attempt.attribute("server.address"), Some("127.0.0.1"));
    assert_eq!(
        attempt.attribute("server.port"),
        Some(backend.addr.port().to_string().as_str())
    );
    assert_eq!(attempt.attribute("http.response.status_code"), Some("200"));
    assert!(
        server.start_ns <= attempt.start_ns && attempt.end_ns <= server.end_ns,
        "{spans:#?}"
    );

    let log = eventually(Duration::from_secs(5), "the access-log line", || async {
        let log = access_log(&traced);
        log.contains(&format!("trace_id={TRACE}")).then_some(log)
    })
    .await;
    assert!(log.contains("request_id="), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_export_nothing_and_still_forward_their_trace() {
    let receiver = OtlpReceiver::start();
    let backend = TestBackend::start("a");
    let traced = traced_proxy(&backend, &tracing_table(&receiver.endpoint(), 0.0), None).await;
    // No parent at ratio 0: a new, unsampled trace, forwarded with flags 00.
    get(&traced.proxy, "/api/new", &[]).await;
    let (started, _, flags) = forwarded(&backend);
    assert_eq!(flags, "00");
    assert_ne!(started, TRACE);
    // An unsampled parent is followed: not recorded, same trace upstream.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    get(
        &traced.proxy,
        "/api/unsampled",
        &[("traceparent", &traceparent(unsampled, false))],
    )
    .await;
    assert_eq!(forwarded(&backend).0, unsampled);
    // A sampled one after them: once its spans arrive, anything the first two had queued
    // would have arrived too (one queue, sent in order).
    get(
        &traced.proxy,
        "/api/sampled",
        &[("traceparent", &traceparent(TRACE, true))],
    )
    .await;
    spans_of(&receiver, TRACE, 2).await;
    let others: Vec<ReceivedSpan> = receiver
        .spans()
        .into_iter()
        .filter(|span| span.trace_id != TRACE)
        .collect();
    assert!(others.is_empty(), "unsampled requests exported {others:#?}");
    let log = access_log(&traced);
    assert!(log.contains(&format!("trace_id={started}")), "{log}");
    assert!(log.contains(&format!("trace_id={unsampled}")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_is_replaced_never_refused() {
    let receiver = OtlpReceiver::start();
    let backend = TestBackend::start("a");
    let traced = traced_proxy(&backend, &tracing_table(&receiver.endpoint(), 1.0), None).await;
    let malformed = [
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ];
    for sent in malformed {
        get(
            &traced.proxy,
            "/api/m",
            &[("traceparent", sent), ("tracestate", "rojo=1")],
        )
        .await;
        let (trace, _, flags) = forwarded(&backend);
        assert_ne!(trace, TRACE, "{sent} was forwarded");
        assert_eq!(trace.len(), 32);
        assert_eq!(flags, "01", "a new trace at ratio 1 is sampled");
        assert_eq!(
            backend.last_header("tracestate"),
            None,
            "the state of a malformed parent is dropped"
        );
        // The new trace is the one recorded.
        let spans = spans_of(&receiver, &trace, 2).await;
        let server = spans
            .iter()
            .find(|s| s.kind == ReceivedSpan::SERVER)
            .expect("server span");
        assert_eq!(
            server.parent_span_id, "",
            "a replaced parent leaves a root span"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_fails_no_request_and_counts_the_lost_spans() {
    let backend = TestBackend::start("a");
    // Nothing listens there.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let traced = traced_proxy(&backend, &tracing_table(&dead, 1.0), None).await;
    for i in 0..50 {
        get(&traced.proxy, &format!("/api/{i}"), &[]).await;
    }
    eventually(
        Duration::from_secs(15),
        "the lost spans to be counted",
        || async {
            let text = scrape(&traced.proxy).await;
            let failed = sample(
                &text,
                "scalelab_tracing_spans_dropped_total{reason=\"export_failed\"}",
            )?;
            (failed >= 100.0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_the_export_to_the_new_collector() {
    let first = OtlpReceiver::start();
    let second = OtlpReceiver::start();
    let backend = TestBackend::start("a");
    let traced = traced_proxy(&backend, &tracing_table(&first.endpoint(), 1.0), None).await;
    get(&traced.proxy, "/api/one", &[]).await;
    let one = forwarded(&backend).0;
    spans_of(&first, &one, 2).await;
    let text = traced
        .config
        .render()
        .replace(&first.endpoint(), &second.endpoint());
    let text = text.replace("sample_ratio = 1", "sample_ratio = 0");
    traced.proxy.write_config(&text);
    eventually(Duration::from_secs(10), "the reload", || async {
        let journal = traced.proxy.reloads().await;
        journal
            .iter()
            .any(|r| {
                r["errors"].as_array().is_some_and(Vec::is_empty)
                    && r["changes"].to_string().contains("tracing")
            })
            .then_some(())
    })
    .await;
    // Ratio 0 now: a new trace is not sampled, a sampled parent is, and goes to the new one.
    get(&traced.proxy, "/api/two", &[]).await;
    assert_eq!(forwarded(&backend).2, "00");
    get(
        &traced.proxy,
        "/api/three",
        &[("traceparent", &traceparent(TRACE, true))],
    )
    .await;
    spans_of(&second, TRACE, 2).await;
    assert!(
        first.trace(TRACE).is_empty(),
        "the old collector got spans after the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tracing_table_traceparent_passes_untouched() {
    let backend = TestBackend::start("a");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .route("api", "/api", "g");
    let proxy = TestProxy::start(&config).await;
    for sent in [traceparent(TRACE, true), "garbage".to_string()] {
        get(&proxy, "/api/x", &[("traceparent", &sent)]).await;
        assert_eq!(
            backend.last_header("traceparent").as_deref(),
            Some(sent.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_timing_only_with_the_diagnostic_headers() {
    let backend = TestBackend::start("a");
    let receiver = OtlpReceiver::start();
    let with = traced_proxy(
        &backend,
        &tracing_table(&receiver.endpoint(), 0.0),
        Some("on"),
    )
    .await;
    let response = get(&with.proxy, "/api/t", &[]).await;
    let timing = response.headers()["server-timing"]
        .to_str()
        .expect("ASCII")
        .to_string();
    assert!(timing.starts_with("route;desc=\"api\""), "{timing}");
    assert!(timing.contains(", upstream;dur="), "{timing}");
    // The proxy's own answers carry it too (written with the other diagnostic headers).
    let refused = with
        .proxy
        .http()
        .get(with.proxy.url("/nowhere"))
        .send()
        .await
        .expect("response");
    assert_eq!(refused.status(), 404);
    let timing = refused.headers()["server-timing"].to_str().expect("ASCII");
    assert_eq!(timing, "route;desc=\"unmatched\"");
    drop(with);
    let without = traced_proxy(
        &backend,
        &tracing_table(&receiver.endpoint(), 1.0),
        Some("off"),
    )
    .await;
    let response = get(&without.proxy, "/api/t", &[]).await;
    assert!(!response.headers().contains_key("server-timing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_sends_the_last_spans_instead_of_losing_them_to_the_batch_delay() {
    let receiver = OtlpReceiver::start();
    let backend = TestBackend::start("a");
    let mut traced = traced_proxy(&backend, &tracing_table(&receiver.endpoint(), 1.0), None).await;
    get(&traced.proxy, "/api/last", &[]).await;
    let trace = forwarded(&backend).0;
    traced.proxy.signal(Signal::SIGTERM);
    let status = traced.proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    // The process is gone: what it sent is all there will be.
    let spans = receiver.trace(&trace);
    assert_eq!(spans.len(), 2, "{spans:#?}");
}

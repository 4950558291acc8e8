//! Exemplars (issue 29 §4) through the real proxy: `/metrics` answers OpenMetrics when asked,
//! with the trace id of a sampled request on its duration bucket, and a real Prometheus
//! (`--enable-feature=exemplar-storage`, which negotiates OpenMetrics by default) parses the
//! whole exposition, keeps every series name of the classic format and returns the exemplar
//! from `/api/v1/query_exemplars`; an unsampled request leaves none.

use crate::harness::*;
use scalelab_test_support::{OtlpReceiver, Prometheus};
use std::collections::BTreeSet;
use std::time::Duration;

const SAMPLED: &str = "0af7651916cd43dd8448eb211c80319c";
const UNSAMPLED: &str = "5c2b8d1e9f3a4b6c7d8e9f0a1b2c3d4e";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// What Prometheus 2 sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn traceparent(trace: &str, sampled: bool) -> String {
    format!(
        "00-{trace}-00f067aa0ba902b7-{}",
        if sampled { "01" } else { "00" }
    )
}

/// A proxy with tracing on at ratio 0 (only a caller's sampled flag samples), two routes.
async fn traced_proxy(backend: &TestBackend, receiver: &OtlpReceiver) -> TestProxy {
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[backend], &[1]))
        .tables(&format!(
            "[tracing]\notlp_endpoint = \"{}\"\nsample_ratio = 0\n",
            receiver.endpoint()
        ))
        .route("traced", "/traced", "g")
        .route("plain", "/plain", "g");
    TestProxy::start(&config).await
}

async fn request(proxy: &TestProxy, path: &str, trace: &str, sampled: bool) {
    let response = client()
        .get(proxy.url(path))
        .header("traceparent", traceparent(trace, sampled))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200, "{path}");
}

async fn scrape_openmetrics(proxy: &TestProxy, accept: &str) -> String {
    let response = client()
        .get(format!("{}/metrics", proxy.admin))
        .header("accept", accept)
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], OPENMETRICS);
    response.text().await.expect("exposition")
}

/// The exposition Prometheus asks for: OpenMetrics, ending in `# EOF`, with the sampled
/// request's trace id on exactly one bucket line of its series and nowhere else; a plain scrape
/// still gets the classic format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_scrape_carries_the_sampled_requests_exemplar_only() {
    let receiver = OtlpReceiver::start();
    let backend = TestBackend::start("a");
    let proxy = traced_proxy(&backend, &receiver).await;
    request(&proxy, "/traced/x", SAMPLED, true).await;
    request(&proxy, "/traced/x", UNSAMPLED, false).await;
    request(&proxy, "/plain/x", UNSAMPLED, false).await;

    let text = scrape_openmetrics(&proxy, PROMETHEUS_ACCEPT).await;
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(text.contains("\n# TYPE scalelab_http_requests counter\n"));
    assert!(text.contains("\nscalelab_http_requests_total{"));
    let with_exemplar: Vec<&str> = text.lines().filter(|l| l.contains(" # {")).collect();
    assert_eq!(with_exemplar.len(), 1, "{with_exemplar:#?}");
    let line = with_exemplar[0];
    assert!(
        line.starts_with(
            "scalelab_http_request_duration_seconds_bucket{cache=\"none\",route=\"traced\",le=\""
        ),
        "{line}"
    );
    assert!(
        line.contains(&format!("# {{trace_id=\"{SAMPLED}\"}} ")),
        "{line}"
    );
    assert!(!text.contains(UNSAMPLED));

    // Curl's and a browser's `Accept` get what they always got.
    for accept in [None, Some("*/*"), Some("text/html,*/*;q=0.8")] {
        let mut request = client().get(format!("{}/metrics", proxy.admin));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.expect("scrape");
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4"
        );
        let classic = response.text().await.expect("exposition");
        assert!(!classic.contains("# EOF") && !classic.contains(SAMPLED));
    }
}

/// Every series name Prometheus stored from the OpenMetrics scrape, without its own
/// (`up`, `scrape_*`).
async fn stored_names(prometheus: &Prometheus) -> BTreeSet<String> {
    prometheus
        .query("group by (__name__) ({job=\"proxy\"})", None)
        .await
        .into_iter()
        .filter_map(|(labels, _)| labels["__name__"].as_str().map(str::to_owned))
        .filter(|name| name != "up" && !name.starts_with("scrape_"))
        .collect()
}

/// The names of the classic exposition's samples.
fn classic_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_returns_the_exemplar_of_a_sampled_request_and_none_for_an_unsampled_one() {
    let receiver = OtlpReceiver::start();
    let backend = TestBackend::start("a");
    let proxy = traced_proxy(&backend, &receiver).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let admin = proxy.admin.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start_with_features(
        dir.path(),
        "proxy",
        &[admin],
        "/metrics",
        &["exemplar-storage"],
    )
    .await;
    request(&proxy, "/traced/x", SAMPLED, true).await;
    request(&proxy, "/plain/x", UNSAMPLED, false).await;
    request(&proxy, "/traced/x", UNSAMPLED, false).await;

    let bucket = "scalelab_http_request_duration_seconds_bucket";
    let found = eventually(
        patient(Duration::from_secs(20)),
        "Prometheus to hold the sampled request's exemplar",
        || async {
            let series = prometheus
                .exemplars(&format!("{bucket}{{route=\"traced\"}}"), 300.0)
                .await;
            series
                .into_iter()
                .find(|s| s["exemplars"][0]["labels"]["trace_id"] == SAMPLED)
        },
    )
    .await;
    assert_eq!(found["seriesLabels"]["cache"], "none", "{found}");
    let exemplar = &found["exemplars"][0];
    let value: f64 = exemplar["value"].as_str().unwrap().parse().unwrap();
    let le: f64 = found["seriesLabels"]["le"]
        .as_str()
        .unwrap()
        .replace("+Inf", "inf")
        .parse()
        .unwrap();
    assert!(value > 0.0 && value <= le, "{found}");
    let now = scalelab_common::clock::unix_secs_f64();
    let at = exemplar["timestamp"].as_f64().unwrap();
    assert!(at <= now && at > now - 300.0, "{found}");

    // A scrape after all three requests: both routes' counts are in.
    eventually(
        patient(Duration::from_secs(20)),
        "a scrape after the unsampled requests",
        || async {
            let count = |route: &str| {
                format!("sum(scalelab_http_request_duration_seconds_count{{route=\"{route}\"}})")
            };
            let plain = prometheus.query(&count("plain"), None).await;
            let traced = prometheus.query(&count("traced"), None).await;
            (plain.first().map(|s| s.1) == Some(1.0) && traced.first().map(|s| s.1) == Some(2.0))
                .then_some(())
        },
    )
    .await;
    let every = prometheus.exemplars("{job=\"proxy\"}", 300.0).await;
    let traces: Vec<&serde_json::Value> = every
        .iter()
        .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
        .map(|exemplar| &exemplar["labels"]["trace_id"])
        .collect();
    assert_eq!(traces, [SAMPLED], "only the sampled request: {every:#?}");

    // Prometheus parsed the whole OpenMetrics exposition (one bad line fails the scrape) and
    // stored every series under the name the classic format gives it.
    let targets = prometheus.targets().await;
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["health"], "up", "{targets:#?}");
    assert_eq!(targets[0]["lastError"], "", "{targets:#?}");
    // The proxy may make a series between a scrape and the query, so the two are compared
    // until they agree or the deadline, which then shows the difference.
    let deadline = std::time::Instant::now() + patient(Duration::from_secs(10));
    loop {
        let classic = classic_names(&scrape(&proxy).await);
        let stored = stored_names(&prometheus).await;
        if stored == classic || std::time::Instant::now() > deadline {
            assert_eq!(
                stored, classic,
                "Prometheus' names against the classic format's"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

//! The balancers' state as Prometheus series, against the real binary (issue 28 section 6):
//! each server's peak EWMA and ejection, each group's circuit, read from `/metrics` as the
//! dashboard's "Balancers" row reads them, and agreeing with `/admin/upstreams`.

use crate::balancing_more::{group_config, start};
use crate::harness::*;
use std::time::Duration;

fn series(name: &str, labels: &str) -> String {
    format!("{name}{{{labels}}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewma_ejection_and_circuit_are_exported_per_server_and_group() {
    let backends = ["a", "b"].map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let lines =
        "outlier = { consecutive_5xx = 2, base_ejection = \"60s\", max_ejection = \"50%\" }\n\
                 circuit = { max_requests = 1, max_pending = 0 }";
    let proxy = start(&refs, &group_config(&refs, "round_robin", lines)).await;
    let server = |b: &TestBackend| format!("server=\"{}\",upstream=\"g\"", b.addr);

    // Before any request: every series exists, at 0, and the circuit names its limit.
    let metrics = scrape(&proxy).await;
    for b in &backends {
        assert_eq!(
            sample(
                &metrics,
                &series("scalelab_upstream_server_ewma_seconds", &server(b))
            ),
            Some(0.0),
            "{metrics}"
        );
        assert_eq!(
            sample(
                &metrics,
                &series("scalelab_upstream_server_ejected", &server(b))
            ),
            Some(0.0)
        );
    }
    let group = "upstream=\"g\"";
    assert_eq!(
        sample(
            &metrics,
            &series("scalelab_upstream_circuit_max_requests", group)
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &series("scalelab_upstream_circuit_in_flight", group)
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&metrics, &series("scalelab_upstream_circuit_open", group)),
        Some(0.0)
    );

    // b fails its requests (its health check passes): two 500s in a row eject it.
    backends[1].set_failing_requests(true);
    let http = client();
    for _ in 0..4 {
        http.get(proxy.url("/s")).send().await.unwrap();
    }
    eventually(patient(Duration::from_secs(5)), "b ejected", || async {
        let report = proxy.server_report(backends[1].addr).await?;
        (report["ejected"] == true).then_some(())
    })
    .await;
    let metrics = scrape(&proxy).await;
    assert_eq!(
        sample(
            &metrics,
            &series("scalelab_upstream_server_ejected", &server(&backends[1]))
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &series("scalelab_upstream_server_ejected", &server(&backends[0]))
        ),
        Some(0.0)
    );
    // a answered, so its estimate is above zero, and the admin API shows the same number.
    let ewma = sample(
        &metrics,
        &series(
            "scalelab_upstream_server_ewma_seconds",
            &server(&backends[0]),
        ),
    )
    .unwrap();
    assert!(ewma > 0.0, "{metrics}");
    let report = proxy.server_report(backends[0].addr).await.unwrap();
    let admin_ms = report["ewma_ms"].as_f64().unwrap();
    assert!(admin_ms > 0.0, "{report}");

    // A request held by a slow a fills the circuit of one: the series say so while it is held.
    backends[0].set_latency(60_000);
    let held = tokio::spawn({
        let url = proxy.url("/held");
        async move { client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    eventually(
        patient(Duration::from_secs(5)),
        "the circuit full",
        || async {
            let metrics = scrape(&proxy).await;
            (sample(
                &metrics,
                &series("scalelab_upstream_circuit_in_flight", group),
            ) == Some(1.0))
            .then_some(metrics)
        },
    )
    .await;
    let metrics = scrape(&proxy).await;
    assert_eq!(
        sample(&metrics, &series("scalelab_upstream_circuit_open", group)),
        Some(1.0)
    );
    // The admin API agrees.
    let upstreams = proxy.upstreams().await;
    assert_eq!(
        upstreams["upstreams"][0]["circuit"]["open"], true,
        "{upstreams}"
    );
    held.abort();
}

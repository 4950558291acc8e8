#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::store::{root, Bounds, Store};
use super::*;

fn span(trace: u64, id: u64, parent: u64, start_ms: u64, end_ms: u64) -> ReceivedSpan {
    ReceivedSpan {
        service: "svc".to_owned(),
        trace_id: format!("{trace:032x}"),
        span_id: format!("{id:016x}"),
        parent_span_id: if parent == 0 {
            String::new()
        } else {
            format!("{parent:016x}")
        },
        name: format!("span {id}"),
        kind: ReceivedSpan::SERVER,
        start_ns: start_ms * 1_000_000,
        end_ns: end_ms * 1_000_000,
        attributes: BTreeMap::new(),
        status: 0,
    }
}

/// A trace of `spans` spans: a root and children.
fn trace(number: u64, spans: u64) -> Vec<ReceivedSpan> {
    (1..=spans)
        .map(|id| span(number, id, u64::from(id > 1), number, number + 10))
        .collect()
}

fn held(store: &Store) -> Vec<u64> {
    let mut ids: Vec<u64> = store
        .list()
        .traces
        .iter()
        .map(|t| u64::from_str_radix(&t.trace_id, 16).unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn the_trace_bound_evicts_the_oldest_traces_and_counts_them() {
    let mut store = Store::new(Bounds {
        max_traces: 3,
        max_spans: 1000,
    });
    for number in 1..=5 {
        store.insert(trace(number, 2));
    }
    assert_eq!(held(&store), vec![3, 4, 5]);
    let list = store.list();
    assert_eq!(list.evicted_traces, 2);
    assert_eq!(list.evicted_spans, 4);
    assert_eq!(list.held_spans, 6);
    // Newest first.
    assert_eq!(list.traces[0].trace_id, format!("{:032x}", 5));
    assert!(store.trace(&format!("{:032x}", 1)).is_none());
}

#[test]
fn the_span_bound_evicts_whole_traces_but_never_the_one_being_written() {
    let mut store = Store::new(Bounds {
        max_traces: 100,
        max_spans: 10,
    });
    store.insert(trace(1, 4));
    store.insert(trace(2, 4));
    // Trace 1 goes whole when trace 3's spans pass ten.
    store.insert(trace(3, 4));
    assert_eq!(held(&store), vec![2, 3]);
    assert_eq!(store.list().held_spans, 8);
    // A late span of the oldest trace is kept, evicting the next oldest instead.
    store.insert(vec![
        span(2, 9, 1, 2, 3),
        span(2, 10, 1, 2, 3),
        span(2, 11, 1, 2, 3),
    ]);
    assert_eq!(held(&store), vec![2]);
    assert_eq!(store.list().held_spans, 7);
    // One trace larger than the bound keeps its first ten spans and counts the rest.
    store.insert(trace(4, 25));
    assert_eq!(held(&store), vec![4]);
    let list = store.list();
    assert_eq!(list.held_spans, 10);
    // Traces 1, 3 and 2, whole, and the 15 spans trace 4 had no room for.
    assert_eq!(list.evicted_traces, 3);
    assert_eq!(list.evicted_spans, 4 + 4 + 7 + 15);
    // Whatever arrives, the bounds hold.
    for number in 5..50 {
        store.insert(trace(number, number % 7 + 1));
        let list = store.list();
        assert!(
            list.held_spans <= 10 && list.traces.len() <= 100,
            "{list:?}"
        );
    }
}

#[test]
fn the_root_is_the_earliest_span_whose_parent_is_not_held() {
    // The caller's span (1) was never exported: the proxy's span (2) is the root.
    let spans = vec![
        span(7, 3, 2, 5, 40),
        span(7, 2, 1, 1, 50),
        span(7, 4, 3, 6, 30),
    ];
    assert_eq!(root(&spans).unwrap().span_id, format!("{:016x}", 2));
    let mut store = Store::new(Bounds::default());
    store.insert(spans);
    let list = store.list();
    assert_eq!(list.traces[0].root, "span 2");
    assert_eq!(list.traces[0].duration_ns, 49_000_000);
    assert_eq!(list.traces[0].spans, 3);
    // A trace's spans come back by start time.
    let starts: Vec<u64> = store
        .trace(&format!("{:032x}", 7))
        .unwrap()
        .spans
        .iter()
        .map(|s| s.start_ns)
        .collect();
    assert_eq!(starts, vec![1_000_000, 5_000_000, 6_000_000]);
}

#[test]
fn trace_ids_are_32_lowercase_hex_digits_not_all_zero() {
    assert!(valid_id("5bf92f3577b34da6a3ce929d0e0e4736"));
    for bad in [
        "",
        "5bf92f3577b34da6a3ce929d0e0e473",
        "5bf92f3577b34da6a3ce929d0e0e47366",
        "5BF92F3577B34DA6A3CE929D0E0E4736",
        "5bf92f3577b34da6a3ce929d0e0e473g",
        "00000000000000000000000000000000",
        "../../../../etc/passwd0000000000",
    ] {
        assert!(!valid_id(bad), "{bad:?}");
    }
    assert_eq!(
        client::check_id(" 5BF92F3577B34DA6A3CE929D0E0E4736\n").unwrap(),
        "5bf92f3577b34da6a3ce929d0e0e4736"
    );
    let error = client::check_id("nope").unwrap_err().to_string();
    assert!(error.contains("32 lowercase hex digits"), "{error}");
}

#[test]
fn the_slowest_trace_is_taken_from_the_scenario_window_only() {
    let summary = |id: &str, start_ns: u64, duration_ns: u64| TraceSummary {
        trace_id: id.to_owned(),
        root: "GET".to_owned(),
        service: "scalelab-proxy".to_owned(),
        start_ns,
        duration_ns,
        spans: 1,
    };
    let list = TraceList {
        traces: vec![
            summary("before", 5, 900),
            summary("in-fast", 10, 10),
            summary("in-slow", 20, 50),
            summary("after", 31, 900),
        ],
        held_spans: 4,
        max_traces: 10,
        max_spans: 10,
        evicted_traces: 0,
        evicted_spans: 0,
    };
    assert_eq!(client::slowest(&list, 10, 30).unwrap().trace_id, "in-slow");
    assert!(client::slowest(&list, 100, 200).is_none());
}

#[test]
fn proxies_and_only_proxies_are_pointed_at_the_receiver() {
    let file = crate::labfile::LabFile::parse(
        "[proxy]\nlisten = [\"127.0.0.1:8000\"]\n",
        std::path::Path::new("/tmp/lab/config.toml"),
    )
    .unwrap();
    let mut specs = crate::plan::plan(&file, std::path::Path::new("/bin"));
    point_proxies(&mut specs, "http://127.0.0.1:4318");
    for spec in &specs {
        let pointed = spec
            .args
            .windows(2)
            .any(|w| w[0] == "--otlp-endpoint" && w[1] == "http://127.0.0.1:4318");
        assert_eq!(pointed, spec.stage == crate::plan::Stage::Proxy, "{spec:?}");
    }
}

/// The receiver over a real socket: the URL file while it runs, a clear answer to every bad
/// request, and none left behind when it stops.
#[tokio::test]
async fn the_receiver_answers_bad_requests_clearly_and_removes_its_url_file() {
    let dir = tempfile::tempdir().unwrap();
    let prepared = receiver::Prepared::bind(dir.path(), Bounds::default()).unwrap();
    let base = client::receiver_url(dir.path()).unwrap();
    assert_eq!(base, prepared.url());
    let serving = prepared.serve().unwrap();
    let http = client::http();

    // An empty body is a valid, empty export: OTLP/HTTP's success answer.
    let empty = http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 200);
    let not_protobuf = http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff_u8; 7])
        .send()
        .await
        .unwrap();
    assert_eq!(not_protobuf.status(), 400);
    let text = not_protobuf.text().await.unwrap();
    assert!(
        text.contains("not an OTLP ExportTraceServiceRequest"),
        "{text}"
    );
    let json = http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);

    let bad_id = http
        .get(format!("{base}/traces/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), 400);
    let unknown = client::fetch(&http, &base, "5bf92f3577b34da6a3ce929d0e0e4736")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        unknown,
        "trace 5bf92f3577b34da6a3ce929d0e0e4736 is not held: the receiver keeps the last 2000 \
         traces and 32768 spans (0 traces evicted so far), and only sampled requests are exported"
    );
    let listed = client::list(&http, &base).await.unwrap();
    assert!(listed.traces.is_empty());
    assert_eq!((listed.max_traces, listed.max_spans), (2000, 32768));

    drop(serving);
    let stopped = client::receiver_url(dir.path()).unwrap_err().to_string();
    assert!(stopped.contains("no trace receiver runs"), "{stopped}");
}

#[test]
fn the_receiver_runs_only_with_observe_and_no_collector_in_lab() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = "[proxy]\nlisten = [\"127.0.0.1:8000\"]\n[lab]\ndata_dir = \".\"\n";
    let load =
        |extra: &str| crate::labfile::LabFile::parse(&format!("{text}{extra}"), &config).unwrap();
    let stale = url_file(dir.path());

    // Without --observe: none, and a URL file a killed `up` left is gone.
    std::fs::write(&stale, "http://127.0.0.1:1\n").unwrap();
    let mut file = load("");
    assert!(receiver::prepare(false, &mut file).unwrap().is_none());
    assert!(!stale.exists());
    assert_eq!(file.lab.otlp_endpoint, None);

    // A real collector named in [lab]: none either, and the services keep that collector.
    let mut file = load("otlp_endpoint = \"http://collector:4318\"\n");
    assert!(receiver::prepare(true, &mut file).unwrap().is_none());
    assert_eq!(
        file.lab.otlp_endpoint.as_deref(),
        Some("http://collector:4318")
    );

    // Otherwise the receiver, and [lab] names it for the plan.
    let mut file = load("");
    let prepared = receiver::prepare(true, &mut file).unwrap().unwrap();
    assert_eq!(file.lab.otlp_endpoint.as_deref(), Some(prepared.url()));
    assert_eq!(
        std::fs::read_to_string(&stale).unwrap().trim(),
        prepared.url()
    );
}

//! Seeing a trace in the lab (issue 29 §3): `scalelab up --observe` with neither a `[tracing]`
//! table nor `[lab] otlp_endpoint` runs its own receiver and points the proxy (by
//! `--otlp-endpoint`) and the services at it; a sampled request through the proxy to the
//! gateway's fan-out comes back from `scalelab trace <id>` as an SVG waterfall holding the
//! spans of all four processes, with the gateway's two calls drawn as overlapping bars.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use scalelab_test_support::{blocking_client, eventually_blocking, free_port, free_ports};
use support::{build_siblings, lab_tail, mint_token, proxy_head, scalelab, Up, COMPLEX_ROUTE};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

fn trace_command(config: &Path, out: &Path, id: &str) -> Output {
    std::process::Command::new(scalelab())
        .args(["trace", id, "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// One `<rect class="span" ...>` of the waterfall: its data attributes and its x extent.
#[derive(Debug)]
struct Bar {
    service: String,
    name: String,
    x: f64,
    width: f64,
}

fn attribute<'a>(element: &'a str, name: &str) -> &'a str {
    let start = element.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
    let len = element[start..].find('"').unwrap();
    &element[start..start + len]
}

fn span_bars(svg: &str) -> Vec<Bar> {
    svg.split("<rect class=\"span")
        .skip(1)
        .map(|element| {
            let element = &element[..element.find('>').unwrap()];
            Bar {
                service: attribute(element, "data-service").to_owned(),
                name: attribute(element, "data-name").to_owned(),
                x: attribute(element, "x").parse().unwrap(),
                width: attribute(element, "width").parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn scalelab_trace_draws_the_fan_out_from_the_labs_own_receiver() {
    let bin_dir = build_siblings();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let [g1, g2, g3, ms, db, worker, proxy, admin] = ports[..] else {
        panic!("need 8 ports");
    };
    let mut text = proxy_head(proxy, admin, [g1, g2, g3]);
    text.push_str(COMPLEX_ROUTE);
    text.push_str(&lab_tail([g1, g2, g3], ms, db, worker));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &text).unwrap();
    let prometheus_port = free_port().to_string();
    let mut up = Up::start(
        &config,
        &bin_dir,
        &["--observe", "--prometheus-port", &prometheus_port],
    );
    let line = up.wait_for("receiver     http://", Duration::from_secs(120));
    let receiver = line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches("/traces")
        .to_owned();
    up.wait_for("Ctrl-C stops everything", Duration::from_secs(30));
    let token = mint_token(&config);
    let out = dir.path().join("traces");

    // Before the request: the id is well formed but unknown, a clear error naming the bound.
    let unknown = trace_command(&config, &out, TRACE);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains(&format!("trace {TRACE} is not held"))
            && stderr.contains("keeps the last 2000 traces"),
        "{stderr}"
    );
    let bad = trace_command(&config, &out, "not-a-trace");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("\"not-a-trace\" is not a trace id"),
        "{stderr}"
    );

    let client = blocking_client(Duration::from_secs(30));
    let response = client
        .get(format!("http://127.0.0.1:{proxy}/data/complex?id=1"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    // Proxy server + attempt, gateway server + its two calls, database server + query,
    // microservice server: eight spans, exported by four processes in their own batches.
    eventually_blocking(Duration::from_secs(20), "the whole trace held", || {
        let trace: serde_json::Value = client
            .get(format!("{receiver}/traces/{TRACE}"))
            .send()
            .ok()?
            .json()
            .ok()?;
        (trace["spans"].as_array()?.len() >= 8).then_some(())
    });
    let listed: serde_json::Value = client
        .get(format!("{receiver}/traces"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let summary = listed["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trace_id"] == TRACE)
        .unwrap();
    assert_eq!(summary["service"], "scalelab-proxy", "{summary}");

    let drawn = trace_command(&config, &out, TRACE);
    assert!(drawn.status.success(), "{drawn:?}");
    let path = String::from_utf8(drawn.stdout).unwrap().trim().to_owned();
    assert_eq!(
        Path::new(&path),
        out.join(format!("trace-{TRACE}.svg")).as_path()
    );
    let svg = std::fs::read_to_string(&path).unwrap();
    let bars = span_bars(&svg);
    for service in [
        "scalelab-proxy",
        "scalelab-gateway",
        "scalelab-database",
        "scalelab-microservice",
    ] {
        assert!(
            bars.iter().any(|bar| bar.service == service),
            "no bar of {service}: {bars:#?}"
        );
        assert!(
            svg.contains(&format!(">{service}: ")),
            "no label of {service}"
        );
    }
    let call = |name: &str| {
        bars.iter()
            .find(|bar| bar.service == "scalelab-gateway" && bar.name == name)
            .unwrap_or_else(|| panic!("no gateway call {name}: {bars:#?}"))
    };
    let (to_database, to_microservice) = (call("database"), call("microservice"));
    assert!(
        to_database.x < to_microservice.x + to_microservice.width
            && to_microservice.x < to_database.x + to_database.width,
        "the fan-out's bars do not overlap: {to_database:?} {to_microservice:?}"
    );

    // A bench scenario's section of report.html draws its slowest traced request: every
    // request is sampled (the proxy's `[tracing]` table was added by `--otlp-endpoint` with its
    // defaults), so the slowest is one of the bench's own, a fan-out through four processes.
    let bench_out = dir.path().join("bench");
    let bench = std::process::Command::new(scalelab())
        .args(["bench", "--quiet", "-n", "20", "-j", "2", "--url"])
        .arg(format!("http://127.0.0.1:{proxy}/data/complex?id=2"))
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&bench_out)
        .output()
        .unwrap();
    assert!(bench.status.success(), "{bench:?}");
    let report = std::fs::read_to_string(bench_out.join("report.html")).unwrap();
    let figure = report
        .split("<figure class=\"plot\" data-file=\"single-slowest-trace.svg\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no slowest trace in the report: {report}"));
    let figure = &figure[..figure.find("</figure>").unwrap()];
    assert!(
        figure.contains("The slowest traced request of the scenario"),
        "{figure}"
    );
    let drawn = span_bars(figure);
    assert!(drawn.len() >= 8, "{drawn:#?}");
    assert!(drawn
        .iter()
        .any(|bar| bar.service == "scalelab-microservice"));

    // Once `up` has stopped, no receiver runs: said as such, not as a dead port.
    up.child.signal(scalelab_test_support::Signal::SIGTERM);
    up.child.wait_exit_blocking(Duration::from_secs(30));
    let stopped = trace_command(&config, &out, TRACE);
    assert!(!stopped.status.success());
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(stderr.contains("no trace receiver runs"), "{stderr}");
}

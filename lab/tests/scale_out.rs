//! `scalelab up --dns --observe` and `scalelab bench -s scale-out` end to end: the real lab on
//! free ports with its own dnsmasq (and Prometheus scraping the moved gateways), the gateways found by the proxy through the name `gateways.lab`; the
//! lesson adds a fourth gateway's record under load and removes one, and the test checks the
//! direction of its numbers (the newcomer got requests, the removed gateway none once drained,
//! nothing failed) and that the lab is put back.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use scalelab_test_support::{blocking_client, eventually_blocking, free_ports, patient};
use serde_json::Value;
use support::{lab_tail, proxy_head, scalelab, Up};

/// The tests' usual lab (gateways checked every second) with `/data` behind the token and no
/// cache.
fn config_text(ports: &[u16]) -> String {
    let [g1, g2, g3, ms, db, worker, proxy, admin] = ports else {
        panic!("need 8 ports");
    };
    proxy_head(*proxy, *admin, [*g1, *g2, *g3])
        + "\n[[routes]]\nname = \"data\"\nauth = \"jwt\"\npath = \"/data\"\nupstream = \"gateways\"\n"
        + &lab_tail([*g1, *g2, *g3], *ms, *db, *worker)
}

/// `/admin/upstreams`' servers of the gateways group, with the admin token `up` saved.
fn gateway_servers(admin: u16, data_dir: &Path) -> Vec<Value> {
    let token = std::fs::read_to_string(data_dir.join("admin.token")).unwrap_or_default();
    let upstreams: Value = blocking_client(patient(Duration::from_secs(10)))
        .get(format!("http://127.0.0.1:{admin}/admin/upstreams"))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .json()
        .unwrap();
    upstreams["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["name"] == "gateways")
        .unwrap()["servers"]
        .as_array()
        .unwrap()
        .clone()
}

fn addrs(servers: &[Value]) -> Vec<String> {
    let mut addrs: Vec<String> = servers
        .iter()
        .map(|server| server["addr"].as_str().unwrap().to_owned())
        .collect();
    addrs.sort();
    addrs
}

/// The cell of `table`'s row `phase` under the column `server`.
fn cell<'a>(table: &'a Value, phase: &str, server: &str) -> &'a str {
    let header = table["header"].as_array().unwrap();
    let column = header
        .iter()
        .position(|name| name == server)
        .unwrap_or_else(|| panic!("no column {server} in {table}"));
    let row = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row[0] == phase)
        .unwrap_or_else(|| panic!("no phase {phase} in {table}"));
    row[column].as_str().unwrap()
}

/// The count at the start of a "N (P%)" cell.
fn count(cell: &str) -> u64 {
    cell.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn up_dns_serves_the_gateways_by_name_and_scale_out_moves_traffic_without_a_failure() {
    let bin_dir = support::build_siblings();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let (g1, proxy, admin) = (ports[0], ports[6], ports[7]);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&ports)).unwrap();
    let data_dir = dir.path().join("data");

    // With Prometheus too: it must find every gateway where --dns moved it, or `up` never
    // reports every target up.
    let mut up = Up::start(&config, &bin_dir, &["--dns", "--observe"]);
    up.wait_for("Prometheus sees every target up", Duration::from_secs(90));
    up.wait_for("scalelab is up", Duration::from_secs(10));
    up.wait_for(
        "DNS: the gateways are the A records of gateways.lab",
        Duration::from_secs(5),
    );
    let originals: Vec<String> = (1..=3).map(|i| format!("127.0.0.{i}:{g1}")).collect();
    // The proxy found the gateways through the name, each on its own loopback address.
    let servers = gateway_servers(admin, &data_dir);
    assert_eq!(addrs(&servers), originals);
    assert!(
        servers
            .iter()
            .all(|server| server["origin"]["kind"] == "dns"),
        "{servers:?}"
    );
    assert!(dir.path().join("config.dns.toml").is_file());
    // A request through the proxy works as without --dns.
    let token = support::mint_token(&config);
    let response = blocking_client(patient(Duration::from_secs(10)))
        .get(format!("http://127.0.0.1:{proxy}/data"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let upstream = response.headers()["x-upstream-server"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(originals.contains(&upstream), "{upstream}");

    // A lesson that turns the static lab's knobs refuses the DNS lab instead of measuring nothing.
    let output = Command::new(scalelab())
        .args(["bench", "--quiet", "-s", "reload-under-load", "-c"])
        .arg(&config)
        .arg("-o")
        .arg(dir.path().join("refused"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("this lab runs with --dns"), "{stderr}");

    let out = dir.path().join("out");
    let output = Command::new(scalelab())
        .args(["bench", "--quiet", "-s", "scale-out", "-j", "2", "-c"])
        .arg(&config)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scale-out failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("scale-out.json")).unwrap())
            .unwrap();
    let run = &json["runs"][0];
    let fourth = format!("127.0.0.4:{g1}");
    let removed = format!("127.0.0.3:{g1}");
    assert!(run["upstreams"][&fourth].as_u64().unwrap_or(0) > 0, "{run}");
    // Every request succeeded: 200 is the only status, and none failed without one.
    let statuses = run["statuses"].as_object().unwrap();
    assert_eq!(statuses.keys().collect::<Vec<_>>(), ["200"], "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    let phases = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| {
            table["title"]
                .as_str()
                .unwrap()
                .starts_with("Requests per gateway")
        })
        .unwrap();
    assert!(
        count(cell(phases, "with the newcomer", &fourth)) > 0,
        "{phases}"
    );
    assert!(
        count(cell(phases, "before the add", &removed)) > 0,
        "{phases}"
    );
    assert_eq!(
        count(cell(phases, "after the removal", &removed)),
        0,
        "{phases}"
    );
    let verdict = json["verdict"].as_str().unwrap();
    eprintln!("scale-out: {verdict}\n{}", json["tables"]);
    assert!(verdict.contains("none failed"), "{verdict}");
    assert!(verdict.contains("answered nothing"), "{verdict}");
    assert!(out.join("report.html").is_file());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Requests per gateway in each phase"));

    // Put back: the proxy has the three original gateways again, and the fourth is stopped.
    eventually_blocking(
        patient(Duration::from_secs(10)),
        "the proxy to list the original gateways again",
        || (addrs(&gateway_servers(admin, &data_dir)) == originals).then_some(()),
    );
    let fourth_health = blocking_client(patient(Duration::from_secs(10)))
        .get(format!("http://{fourth}/health"))
        .timeout(Duration::from_secs(1))
        .send();
    assert!(fourth_health.is_err(), "the fourth gateway still answers");
    drop(up);
}

#![allow(clippy::unwrap_used)]

use super::*;
use scalelab_test_support::percent_decode;
use serde_json::json;

fn default_lab() -> LabFile {
    LabFile::parse("", Path::new("/lab/config.toml")).unwrap()
}

/// The jobs of a Prometheus config in YAML: name and targets, in file order.
fn yaml_jobs(text: &str) -> Vec<(String, Vec<String>)> {
    let config: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    config["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|job| {
            let targets = job["static_configs"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|c| c["targets"].as_sequence().unwrap().clone())
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            (job["job_name"].as_str().unwrap().to_owned(), targets)
        })
        .collect()
}

/// The default lab as `up --fleet` runs it.
fn default_fleet() -> LabFile {
    let mut file = default_lab();
    crate::fleet::widen(&mut file.lab);
    file
}

#[test]
fn the_default_fleet_gets_the_jobs_and_targets_of_the_shipped_file() {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grafana/prometheus.yml"
    ))
    .unwrap();
    // The shipped file scrapes `up --fleet`'s second proxy and worker too (down without a fleet), so each proxy
    // is an `instance` of the dashboard; a lab of one scrapes the same jobs without them.
    let generated = scrape_config(&jobs(&default_fleet()));
    assert_eq!(yaml_jobs(&generated), yaml_jobs(&shipped), "{generated}");
    let single = yaml_jobs(&scrape_config(&jobs(&default_lab())));
    let expected: Vec<(String, Vec<String>)> = yaml_jobs(&shipped)
        .into_iter()
        .map(|(name, targets)| {
            let targets = targets
                .into_iter()
                .filter(|t| t != "127.0.0.1:9902" && t != "127.0.0.1:5015")
                .collect();
            (name, targets)
        })
        .collect();
    assert_eq!(single, expected);
    let config: serde_yaml::Value = serde_yaml::from_str(&generated).unwrap();
    assert_eq!(config["global"]["scrape_interval"], "1s");
}

#[test]
fn moved_ports_and_hosts_move_the_targets() {
    let file = LabFile::parse(
        r#"
[proxy]
admin_listen = "0.0.0.0:19901"
[lab]
host = "::1"
gateways = [7000, 7001]
microservice = 7002
database = 7003
worker = 7004
"#,
        Path::new("/lab/config.toml"),
    )
    .unwrap();
    let generated = scrape_config(&jobs(&file));
    let expected = [
        (PROXY_JOB, vec!["127.0.0.1:19901"]),
        (
            BACKENDS_JOB,
            vec!["[::1]:7000", "[::1]:7001", "[::1]:7002", "[::1]:7003"],
        ),
        (WORKER_JOB, vec!["[::1]:7004"]),
    ]
    .map(|(name, targets)| {
        (
            name.to_owned(),
            targets.into_iter().map(str::to_owned).collect::<Vec<_>>(),
        )
    });
    assert_eq!(yaml_jobs(&generated), expected, "{generated}");
}

#[test]
fn the_child_listens_on_loopback_and_keeps_its_data_under_its_home() {
    let home = Path::new("/lab/data/prometheus");
    let spec = child(
        Path::new("/usr/bin/prometheus"),
        &home.join("prometheus.yml"),
        home,
        19090,
    );
    let args: Vec<&str> = spec.args.iter().map(|a| a.to_str().unwrap()).collect();
    for expected in [
        "--config.file=/lab/data/prometheus/prometheus.yml",
        "--storage.tsdb.path=/lab/data/prometheus/data",
        "--web.listen-address=127.0.0.1:19090",
        "--enable-feature=exemplar-storage",
    ] {
        assert!(args.contains(&expected), "{args:?} lacks {expected}");
    }
    assert_eq!(spec.health_url, "http://127.0.0.1:19090/-/ready");
    assert_eq!(spec.stage, Stage::Observe);
    assert_eq!(
        super::home(&default_lab()),
        PathBuf::from("/lab/data/prometheus")
    );
}

#[test]
fn the_binary_is_found_in_path_only_when_executable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let binary = dir.path().join("prometheus");
    std::fs::write(&binary, "#!/bin/sh\n").unwrap();
    let path = std::env::join_paths([empty.path(), dir.path()]).unwrap();
    assert!(matches!(
        find_binary(Some(&path)),
        Err(ObserveError::Missing)
    ));
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        find_binary(Some(&path)).unwrap(),
        std::fs::canonicalize(&binary).unwrap()
    );
    assert!(matches!(find_binary(None), Err(ObserveError::Missing)));
    let message = ObserveError::Missing.to_string();
    assert!(
        message.contains("make deps") && message.contains("apt-get install prometheus"),
        "{message}"
    );
}

#[test]
fn a_requested_port_is_used_as_it_is() {
    assert_eq!(pick_port(Some(4321)).unwrap(), 4321);
    assert_ne!(pick_port(None).unwrap(), 0);
}

fn scraped(job: &str, instance: &str, health: &str, error: &str) -> Value {
    json!({"labels": {"job": job, "instance": instance}, "health": health, "lastError": error})
}

#[test]
fn targets_are_ready_only_when_every_one_is_up() {
    let jobs = vec![
        Job {
            name: PROXY_JOB,
            targets: vec!["127.0.0.1:9901".to_owned()],
        },
        Job {
            name: BACKENDS_JOB,
            targets: vec!["127.0.0.1:5000".to_owned(), "127.0.0.1:5003".to_owned()],
        },
    ];
    let answer =
        |targets: Vec<Value>| json!({"status": "success", "data": {"activeTargets": targets}});
    let all_up = answer(vec![
        scraped(PROXY_JOB, "127.0.0.1:9901", "up", ""),
        scraped(BACKENDS_JOB, "127.0.0.1:5000", "up", ""),
        scraped(BACKENDS_JOB, "127.0.0.1:5003", "up", ""),
    ]);
    assert_eq!(targets_pending(&all_up, &jobs), Ok(()));

    let one_down = answer(vec![
        scraped(PROXY_JOB, "127.0.0.1:9901", "up", ""),
        scraped(BACKENDS_JOB, "127.0.0.1:5000", "down", "connection refused"),
        scraped(BACKENDS_JOB, "127.0.0.1:5003", "unknown", ""),
    ]);
    let message = targets_pending(&one_down, &jobs).unwrap_err();
    assert!(
        message.contains("scalelab-backends 127.0.0.1:5000 (down: connection refused)"),
        "{message}"
    );
    assert!(
        message.contains("scalelab-backends 127.0.0.1:5003 (unknown)"),
        "{message}"
    );
    assert!(!message.contains("9901"), "{message}");

    // The same address under another job does not count, and a missing target is named.
    let wrong_job = answer(vec![
        scraped(WORKER_JOB, "127.0.0.1:9901", "up", ""),
        scraped(BACKENDS_JOB, "127.0.0.1:5000", "up", ""),
        scraped(BACKENDS_JOB, "127.0.0.1:5003", "up", ""),
    ]);
    let message = targets_pending(&wrong_job, &jobs).unwrap_err();
    assert!(
        message.contains("scalelab-proxy 127.0.0.1:9901 (not scraped yet)"),
        "{message}"
    );
    assert!(targets_pending(&json!({"status": "error"}), &jobs).is_err());
}

#[test]
fn links_carry_their_query_encoded() {
    for (_, expr) in QUERIES {
        let link = graph_link("http://127.0.0.1:9090", expr);
        let encoded = link
            .strip_prefix("http://127.0.0.1:9090/graph?g0.expr=")
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)),
            "{encoded}"
        );
        assert_eq!(percent_decode(encoded), expr);
        assert!(link.ends_with("&g0.tab=0&g0.range_input=15m"), "{link}");
    }
    assert_eq!(
        percent_encode("sum by (route) (x{a=\"b\"}[1m])"),
        "sum%20by%20%28route%29%20%28x%7Ba%3D%22b%22%7D%5B1m%5D%29"
    );
    let lines = banner("http://127.0.0.1:9090");
    assert!(lines
        .iter()
        .any(|l| l.trim() == "prometheus   http://127.0.0.1:9090"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("/graph?g0.expr="))
            .count(),
        3
    );
}

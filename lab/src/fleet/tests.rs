#![allow(clippy::unwrap_used)]

use super::*;
use crate::plan::plan;

fn file(text: &str) -> LabFile {
    LabFile::parse(text, Path::new("/lab/config.toml")).unwrap()
}

fn args(spec: &ChildSpec) -> Vec<&str> {
    spec.args.iter().map(|a| a.to_str().unwrap()).collect()
}

fn children(file: &LabFile) -> Vec<ChildSpec> {
    let mut children = plan(file, Path::new("/bin"));
    let redis = starts_redis(file).then(|| redis_child(file, Path::new("/usr/bin/redis-server")));
    extend(&mut children, file, redis);
    children
}

#[test]
fn a_lab_of_one_is_left_as_it_was() {
    let file = file("");
    assert!(!is_shared(&file.lab));
    assert_eq!(children(&file), plan(&file, Path::new("/bin")));
    assert!(banner(&file).is_empty());
}

#[test]
fn the_fleet_flag_means_two_of_each_unless_the_file_says_more() {
    let table = [
        ("", (2, 2)),
        ("[lab]\nproxies = 3", (3, 2)),
        ("[lab]\nworker_processes = 4", (2, 4)),
    ];
    for (text, want) in table {
        let mut lab = file(text).lab;
        widen(&mut lab);
        assert_eq!((lab.proxies, lab.worker_processes), want, "{text}");
    }
}

#[test]
fn a_fleet_starts_redis_first_and_shares_it() {
    let file = file("[lab]\nproxies = 2\nworker_processes = 2\nredis_port = 7000");
    let children = children(&file);
    let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "redis",
            "database-5002",
            "microservice-5001",
            "worker-5005",
            "gateway-5000",
            "gateway-5003",
            "gateway-5006",
            "proxy",
            "worker-5015",
            "proxy-8001"
        ]
    );
    let url = "redis://127.0.0.1:7000/0";
    let redis = &children[0];
    assert_eq!(redis.stage, Stage::Store);
    assert_eq!(redis.health_url, "redis://127.0.0.1:7000");
    assert_eq!(
        args(redis),
        [
            "--port",
            "7000",
            "--bind",
            "127.0.0.1",
            "--dir",
            "/lab/data/redis",
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no"
        ]
    );
    let second_worker = &children[8];
    let worker = args(second_worker);
    assert!(
        worker.windows(2).any(|w| w == ["--port", "5015"]),
        "{worker:?}"
    );
    assert!(
        worker.windows(2).any(|w| w == ["--redis-url", url]),
        "{worker:?}"
    );
    assert_eq!(second_worker.health_url, "http://127.0.0.1:5015/health");
    assert!(args(&children[3])
        .windows(2)
        .any(|w| w == ["--redis-url", url]));
    // The gateways keep sending to the first worker.
    assert!(args(&children[4])
        .windows(2)
        .any(|w| w == ["--worker", "http://127.0.0.1:5005"]));
    let tls = |port: &'static str| {
        [
            "--tls-listen",
            port,
            "--tls-cert",
            "/lab/data/tls/localhost.pem",
            "--tls-key",
            "/lab/data/tls/localhost-key.pem",
        ]
    };
    let mut first = vec!["--config", "/lab/config.toml"];
    first.extend(tls("0.0.0.0:8443"));
    first.extend(["--shared-cache-url", url]);
    assert_eq!(args(&children[7]), first);
    // The second proxy's HTTPS listener is on the next port, like its other listeners.
    assert_eq!(
        args(&children[9]),
        [
            "--config",
            "/lab/config.toml",
            "--tls-listen",
            "0.0.0.0:8444",
            "--tls-cert",
            "/lab/data/tls/localhost.pem",
            "--tls-key",
            "/lab/data/tls/localhost-key.pem",
            "--shared-cache-url",
            url,
            "--listen",
            "0.0.0.0:8001",
            "--admin-listen",
            "127.0.0.1:9902"
        ]
    );
    assert_eq!(children[9].health_url, "http://127.0.0.1:9902/health");
    // The second proxy is ready only on its own listeners, not the first one's.
    assert_eq!(children[9].more_ports, [8001, 8444]);
    assert_eq!(children[9].stage, Stage::Proxy);
}

#[test]
fn an_existing_redis_is_used_and_none_is_started() {
    let file = file("[lab]\nworker_processes = 2\nredis_url = \"redis://10.0.0.9:6379/2\"");
    assert!(!starts_redis(&file));
    let children = children(&file);
    assert!(children.iter().all(|c| c.stage != Stage::Store));
    assert!(args(&children[2])
        .windows(2)
        .any(|w| w == ["--redis-url", "redis://10.0.0.9:6379/2"]));
    assert!(banner(&file)[1].contains("redis://10.0.0.9:6379/2 (an existing Redis"));
}

#[test]
fn the_proxys_redis_table_is_an_existing_redis_for_a_fleet_only() {
    let redis = "[redis]\nurl = \"redis://10.0.0.8:6379/0\"\n";
    let alone = file(redis);
    assert_eq!(redis_url(&alone), None);
    assert_eq!(children(&alone), plan(&alone, Path::new("/bin")));
    let fleet = file(&format!("{redis}[lab]\nproxies = 2"));
    assert!(!starts_redis(&fleet));
    assert_eq!(
        redis_url(&fleet).as_deref(),
        Some("redis://10.0.0.8:6379/0")
    );
    // [lab] redis_url wins over the proxy's table.
    let both = file(&format!(
        "{redis}[lab]\nproxies = 2\nredis_url = \"redis://10.0.0.9:6379/1\""
    ));
    assert_eq!(redis_url(&both).as_deref(), Some("redis://10.0.0.9:6379/1"));
    // A cluster's seed nodes are the proxy's business: the fleet starts its own Redis.
    let cluster = file("[redis]\nurl = [\"redis://10.0.0.8:7000\"]\n[lab]\nproxies = 2");
    assert!(starts_redis(&cluster));
}

#[test]
fn the_banner_says_which_url_hits_which_proxy() {
    let file = file("[lab]\nproxies = 2\nworker_processes = 2\nredis_port = 6390");
    let banner = banner(&file);
    assert_eq!(
        banner[1..],
        [
            "fleet: shared cache tier and task queue in redis://127.0.0.1:6390/0 (started by up, data in /lab/data/redis)",
            "  http://127.0.0.1:8000 hits proxy 1 (admin http://127.0.0.1:9901)",
            "  http://127.0.0.1:8001 hits proxy 2 (admin http://127.0.0.1:9902)",
            "  http://127.0.0.1:5005 is worker 1 (the gateways send tasks here)",
            "  http://127.0.0.1:5015 is worker 2 (consumes the shared queue)",
        ]
    );
}

#[test]
fn a_started_redis_gets_a_free_port_unless_the_file_names_one() {
    let mut picked = file("[lab]\nproxies = 2");
    assert_eq!(picked.lab.redis_port, None);
    pick_redis_port(&mut picked).unwrap();
    let port = picked.lab.redis_port.unwrap();
    assert_ne!(port, 0);
    // The port is free: redis-server can bind it.
    drop(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    assert_eq!(
        redis_url(&picked).unwrap(),
        format!("redis://127.0.0.1:{port}/0")
    );
    let spec = redis_child(&picked, Path::new("/usr/bin/redis-server"));
    assert!(args(&spec)
        .windows(2)
        .any(|w| w == ["--port", port.to_string().as_str()]));

    let mut named = file("[lab]\nproxies = 2\nredis_port = 7000");
    pick_redis_port(&mut named).unwrap();
    assert_eq!(named.lab.redis_port, Some(7000));
    // No fleet, or an existing Redis: nothing is started, so no port is taken.
    for text in [
        "",
        "[lab]\nproxies = 2\nredis_url = \"redis://10.0.0.9:6379/0\"",
    ] {
        let mut other = file(text);
        pick_redis_port(&mut other).unwrap();
        assert_eq!(other.lab.redis_port, None, "{text}");
    }
}

#[test]
fn fleet_keys_are_checked() {
    let cases = [
        (
            "[lab]\nproxies = 0",
            "lab.proxies: 0 is not between 1 and 16",
        ),
        ("[lab]\nworker_processes = 17", "lab.worker_processes: 17"),
        ("[lab]\nredis_port = 0", "lab.redis_port: port 0"),
        ("[lab]\nredis_url = \"http://x\"", "lab.redis_url"),
        (
            "[lab]\nworker_processes = 2\ndatabase = 5015",
            "worker port 5015",
        ),
        ("[lab]\nworker = 65530\nworker_processes = 2", "pass 65535"),
    ];
    for (text, expected) in cases {
        let error = LabFile::parse(text, Path::new("/lab/config.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

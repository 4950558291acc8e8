#![allow(clippy::unwrap_used)]

use super::*;
use crate::plan::plan;

const CONFIG: &str = r#"
[proxy]
listen = ["127.0.0.1:8000"]

[upstreams.gateways]
strategy = "round_robin"
servers = [ { addr = "127.0.0.1:5000", weight = 3, max_connections = 32 },
            { addr = "127.0.0.1:5003", weight = 2, max_connections = 32 } ]

[dns]
max_stale = "1m"

[lab]
gateways = [5000, 5003, 5006]
"#;

#[test]
fn the_proxy_config_names_the_gateways_and_asks_the_labs_dnsmasq() {
    let resolver: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let text = config::derive(CONFIG, resolver, NAME, 5000).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let servers = table["upstreams"]["gateways"]["servers"]
        .as_array()
        .unwrap();
    assert_eq!(servers.len(), 1);
    let server = servers[0].as_table().unwrap();
    assert_eq!(server["name"].as_str(), Some("gateways.lab"));
    assert_eq!(server["port"].as_integer(), Some(5000));
    assert_eq!(server["max_connections"].as_integer(), Some(32));
    assert!(server.get("addr").is_none() && server.get("weight").is_none());
    let dns = table["dns"].as_table().unwrap();
    assert_eq!(
        dns["resolvers"].as_array().unwrap()[0].as_str(),
        Some("127.0.0.1:5353")
    );
    assert_eq!(dns["max_refresh"].as_str(), Some("1s"));
    // The file's own [dns] keys stay.
    assert_eq!(dns["max_stale"].as_str(), Some("1m"));
    assert_eq!(
        table["upstreams"]["gateways"]["strategy"].as_str(),
        Some("round_robin")
    );
    assert!(text.starts_with("# Written by `scalelab up --dns`"));
}

#[test]
fn a_config_without_the_gateways_group_is_refused_by_name() {
    let resolver: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    for (text, expected) in [
        (
            "[upstreams.api]\nservers = []",
            "[upstreams.gateways], which the file lacks",
        ),
        ("[upstreams.gateways]\nservers = []", "to list its servers"),
        ("not toml [", "not TOML"),
    ] {
        let error = config::derive(text, resolver, NAME, 5000).unwrap_err();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn gateways_move_to_their_own_loopback_address_on_one_port() {
    let file = LabFile::parse(CONFIG, Path::new("/lab/config.toml")).unwrap();
    let mut lab = DnsLab::plan(&file).unwrap();
    assert_eq!(lab.port, 5000);
    assert_eq!(lab.proxy_config, PathBuf::from("/lab/config.dns.toml"));
    assert_eq!(lab.hosts, PathBuf::from("/lab/data/dns/hosts"));
    let mut children = plan(&file, Path::new("/bin"));
    lab.relocate(&mut children);
    let gateways: Vec<(&str, &str)> = children
        .iter()
        .filter(|child| child.name.starts_with("gateway-"))
        .map(|child| (child.name.as_str(), child.health_url.as_str()))
        .collect();
    assert_eq!(
        gateways,
        [
            ("gateway-127.0.0.1", "http://127.0.0.1:5000/health"),
            ("gateway-127.0.0.2", "http://127.0.0.2:5000/health"),
            ("gateway-127.0.0.3", "http://127.0.0.3:5000/health"),
        ]
    );
    let proxy = children.iter().find(|child| child.name == "proxy").unwrap();
    let config_at = proxy.args.iter().position(|arg| arg == "--config").unwrap();
    assert_eq!(proxy.args[config_at + 1], "/lab/config.dns.toml");
    // The gateways still read the lab's own config (their [auth]).
    let gateway = children
        .iter()
        .find(|c| c.name == "gateway-127.0.0.2")
        .unwrap();
    assert!(gateway.args.iter().any(|arg| arg == "/lab/config.toml"));
    let command = lab.gateway.clone().unwrap();
    assert_eq!(command.binary, PathBuf::from("/bin/scalelab-gateway"));
    let fourth = lab.next_address().unwrap();
    assert_eq!(fourth.to_string(), "127.0.0.4");
    let args = command.args_on(fourth);
    assert_eq!(&args[..4], ["--host", "127.0.0.4", "--port", "5000"]);
    let child = lab.child(Path::new("/usr/sbin/dnsmasq"));
    assert_eq!(child.stage, Stage::Store);
    assert_eq!(child.health_url, format!("dns://{}", lab.resolver));
}

#[test]
fn only_a_loopback_host_with_room_is_accepted() {
    for text in [
        "[lab]\nhost = \"10.0.0.1\"",
        "[lab]\nhost = \"::1\"",
        "[lab]\nhost = \"127.0.0.252\"",
    ] {
        let file = LabFile::parse(text, Path::new("/lab/config.toml")).unwrap();
        assert!(DnsLab::plan(&file).is_err(), "{text}");
    }
}

#[test]
fn without_dnsmasq_up_dns_says_how_to_install_it_and_changes_nothing() {
    let file = LabFile::parse(CONFIG, Path::new("/nonexistent/lab/config.toml")).unwrap();
    let mut children = plan(&file, Path::new("/bin"));
    let before = children.clone();
    let error = prepare(&file, &mut children, None).unwrap_err().to_string();
    assert!(
        error.contains("install it with `bash scripts/install-deps.sh --dns`"),
        "{error}"
    );
    assert_eq!(children, before);
}

#[test]
fn prometheus_scrapes_the_gateways_where_they_moved() {
    let file = LabFile::parse(CONFIG, Path::new("/lab/config.toml")).unwrap();
    let lab = DnsLab::plan(&file).unwrap();
    let mut jobs = crate::observe::jobs(&file);
    lab.retarget(&mut jobs, &file);
    let targets: Vec<&str> = jobs
        .iter()
        .flat_map(|job| job.targets.iter().map(String::as_str))
        .collect();
    for moved in ["127.0.0.1:5000", "127.0.0.2:5000", "127.0.0.3:5000"] {
        assert!(targets.contains(&moved), "{targets:?}");
    }
    assert!(!targets.contains(&"127.0.0.1:5003"), "{targets:?}");
    assert!(
        targets.contains(&"127.0.0.1:5001"),
        "the microservice stays: {targets:?}"
    );
}

//! The `[dns]` table and the parts of an upstream group that come from DNS: servers given by
//! `name` and `port`, and `discovery = { srv }`.

use super::check::Check;
use super::traffic::validate_max_connections;
use crate::config::dns::{valid_name, DnsSettings, DnsSources, NamedServer, SrvDiscovery};
use crate::config::file::{FileConfig, FileUpstream};
use crate::config::units::DurationKind;
use scalelab_common::problem::Problems;
use std::net::{IpAddr, SocketAddr};

pub(super) fn validate_dns(file: &FileConfig, problems: &mut Problems) -> DnsSettings {
    let defaults = DnsSettings::default();
    let Some(dns) = file.dns.as_ref() else {
        return defaults;
    };
    let resolvers = dns
        .resolvers
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| {
            let path = format!("dns.resolvers[{i}]");
            match text.parse::<IpAddr>() {
                Ok(ip) => Some(SocketAddr::new(ip, 53)),
                Err(_) => problems.addr(&path, text),
            }
        })
        .collect();
    let duration = |problems: &mut Problems, key: &str, value: Option<&String>, default| {
        problems.duration(&format!("dns.{key}"), value, DurationKind::Timeout, default)
    };
    let settings = DnsSettings {
        resolvers,
        refresh: dns
            .refresh
            .as_ref()
            .map(|text| duration(problems, "refresh", Some(text), defaults.min_refresh)),
        min_refresh: duration(
            problems,
            "min_refresh",
            dns.min_refresh.as_ref(),
            defaults.min_refresh,
        ),
        max_refresh: duration(
            problems,
            "max_refresh",
            dns.max_refresh.as_ref(),
            defaults.max_refresh,
        ),
        timeout: duration(problems, "timeout", dns.timeout.as_ref(), defaults.timeout),
        max_stale: problems.duration(
            "dns.max_stale",
            dns.max_stale.as_ref(),
            DurationKind::Window,
            defaults.max_stale,
        ),
    };
    if settings.min_refresh > settings.max_refresh {
        problems.push(
            "dns.min_refresh",
            format!(
                "is above max_refresh ({})",
                humantime::format_duration(settings.max_refresh)
            ),
        );
    }
    settings
}

/// The entry `servers[index]` of `base` when it is given by `name`: its `NamedServer`.
/// `None` when it is an `addr` entry (checked by the caller) or invalid (a problem is recorded).
pub(super) fn named_server(
    base: &str,
    index: usize,
    server: &crate::config::file::FileServer,
    weight: u32,
    problems: &mut Problems,
) -> Option<NamedServer> {
    let path = format!("{base}.servers[{index}]");
    let name = server.name.as_ref()?;
    if server.addr.is_some() {
        problems.push(
            format!("{path}.name"),
            "give either addr (IP:PORT) or name and port, not both",
        );
        return None;
    }
    if name.parse::<IpAddr>().is_ok() {
        problems.push(
            format!("{path}.name"),
            format!("{name:?} is an address; write addr = \"{name}:PORT\" instead"),
        );
        return None;
    }
    if !valid_name(name) {
        problems.push(
            format!("{path}.name"),
            format!("{name:?} is not a DNS name (labels of letters, digits, '-' and '_')"),
        );
        return None;
    }
    let Some(port) = server.port else {
        problems.push(
            format!("{path}.port"),
            "a server given by name needs a port",
        );
        return None;
    };
    let port = problems.integer(&format!("{path}.port"), Some(port), (1, 65535), 1) as u16;
    Some(NamedServer {
        name: name.to_ascii_lowercase(),
        port,
        weight,
        max_connections: validate_max_connections(
            &format!("{path}.max_connections"),
            server.max_connections,
            problems,
        ),
    })
}

/// The group's SRV `discovery`, if any.
pub(super) fn srv_discovery(
    base: &str,
    upstream: &FileUpstream,
    problems: &mut Problems,
) -> Option<SrvDiscovery> {
    let discovery = upstream.discovery.as_ref()?;
    let path = format!("{base}.discovery");
    if !valid_name(&discovery.srv) {
        problems.push(
            format!("{path}.srv"),
            format!(
                "{:?} is not a DNS name such as \"_http._tcp.api.internal\"",
                discovery.srv
            ),
        );
        return None;
    }
    Some(SrvDiscovery {
        srv: discovery.srv.to_ascii_lowercase(),
        refresh: discovery.refresh.as_ref().map(|text| {
            problems.duration(
                &format!("{path}.refresh"),
                Some(text),
                DurationKind::Timeout,
                crate::config::dns::DEFAULT_MIN_REFRESH,
            )
        }),
    })
}

/// Both kinds of source of a group, for `Upstream::dns`.
pub(super) fn sources(names: Vec<NamedServer>, srv: Option<SrvDiscovery>) -> DnsSources {
    DnsSources { names, srv }
}

#[cfg(test)]
mod tests {
    use crate::config::ConfigError;
    use std::path::Path;
    use std::time::Duration;

    const ROUTE: &str = "[[routes]]\nname = \"all\"\npath = \"/\"\nupstream = \"g\"\n";

    fn problems(text: &str) -> Vec<(String, String)> {
        match crate::config::parse(Path::new("config.toml"), &format!("{text}\n{ROUTE}")) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| (p.path, p.message)).collect()
            }
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn names_srv_and_dns_settings_parse() {
        let text = format!(
            "[dns]\nresolvers = [\"127.0.0.1:5353\", \"::1\"]\nmin_refresh = \"2s\"\nmax_stale = \"0s\"\n\
             [upstreams.g]\nservers = [{{ addr = \"127.0.0.1:1\" }}, {{ name = \"API.internal\", port = 8080, weight = 3 }}]\n\
             discovery = {{ srv = \"_http._tcp.api.internal\", refresh = \"10s\" }}\n{ROUTE}"
        );
        let config = crate::config::parse(Path::new("config.toml"), &text).expect("valid");
        let dns = config.dns();
        assert_eq!(dns.resolvers[0].to_string(), "127.0.0.1:5353");
        assert_eq!(dns.resolvers[1].to_string(), "[::1]:53");
        assert_eq!(dns.min_refresh, Duration::from_secs(2));
        assert_eq!(dns.max_stale, Duration::ZERO);
        let group = &config.upstreams()["g"];
        assert_eq!(group.servers.len(), 1);
        assert_eq!(group.dns.names[0].name, "api.internal");
        assert_eq!(
            (group.dns.names[0].port, group.dns.names[0].weight),
            (8080, 3)
        );
        let srv = group.dns.srv.as_ref().expect("srv");
        assert_eq!(srv.refresh, Some(Duration::from_secs(10)));
        // A group of SRV records alone needs no `servers`.
        let only_srv = "[upstreams.g]\ndiscovery = { srv = \"_http._tcp.api.internal\" }\n";
        assert_eq!(problems(only_srv), Vec::new());
    }

    #[test]
    fn every_mistake_is_named_with_its_path() {
        let text = "[dns]\nresolvers = [\"nope\"]\nmin_refresh = \"1m\"\nmax_refresh = \"10s\"\n\
             [upstreams.g]\nservers = [{ name = \"a b\", port = 1 }, { name = \"api.internal\" }, \
             { name = \"10.0.0.1\", port = 80 }, { addr = \"127.0.0.1:1\", name = \"x.internal\", port = 1 }, \
             { addr = \"127.0.0.1:2\", port = 3 }, {}]\ndiscovery = { srv = \"bad name\" }\n";
        let found = problems(text);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        for path in [
            "dns.resolvers[0]",
            "dns.min_refresh",
            "upstreams.g.servers[0].name",
            "upstreams.g.servers[1].port",
            "upstreams.g.servers[2].name",
            "upstreams.g.servers[3].name",
            "upstreams.g.servers[4].port",
            "upstreams.g.servers[5].addr",
            "upstreams.g.discovery.srv",
        ] {
            assert!(paths.contains(&path), "{path} missing from {found:?}");
        }
        let (_, message) = found
            .iter()
            .find(|(p, _)| p == "upstreams.g.servers[2].name")
            .expect("the address given as a name");
        assert!(message.contains("addr = \"10.0.0.1:PORT\""), "{message}");
        assert_eq!(
            problems("[upstreams.g]\nservers = []\n")[0].1,
            "needs at least one server (or discovery = { srv = \"...\" })"
        );
    }
}

//! One resolution of one source through `hickory-resolver`: A and AAAA addresses of a name, or
//! SRV records and their targets' addresses, sorted, with how long the answer is valid. The
//! resolver's own cache is off: the refresh times are ours (`DnsSettings::next_refresh`), and
//! every refresh must ask the name servers.

use crate::config::dns::DnsSettings;
use crate::discovery::{Found, Source};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// What one resolution said.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Records, sorted, and how long the shortest-lived of them stays valid.
    Found(Vec<Found>, Option<Duration>),
    /// NXDOMAIN, or the name exists without such records.
    Empty(String),
    /// No answer to trust: a timeout, SERVFAIL, a refused or unreachable name server.
    Failed(&'static str, String),
}

impl Outcome {
    /// The `result` label of `scalelab_dns_resolutions_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Found(..) => "ok",
            Outcome::Empty(_) => "empty",
            Outcome::Failed(kind, _) => kind,
        }
    }
}

/// A resolver for `[dns]`: its name servers (or the system's), its timeout, one attempt per
/// name server (the refresh loop is the retry), no cache, no hosts file for named servers.
///
/// # Errors
/// When the system configuration cannot be read (no `[dns] resolvers` and no usable
/// `/etc/resolv.conf`).
pub fn resolver(dns: &DnsSettings) -> Result<TokioResolver, NetError> {
    let mut builder = if dns.resolvers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let servers = dns
            .resolvers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().use_hosts_file = ResolveHosts::Never;
        builder
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.timeout = dns.timeout;
    options.attempts = 1;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder.build()
}

/// Resolves `source`, bounded by `[dns] timeout` as a whole (SRV targets included).
pub async fn resolve(resolver: &TokioResolver, source: &Source, timeout: Duration) -> Outcome {
    let lookup = async {
        match source {
            Source::Name { name, port } => addresses(resolver, name, *port).await,
            Source::Srv { name } => srv(resolver, name).await,
        }
    };
    match tokio::time::timeout(timeout, lookup).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failed(
            "timeout",
            format!("no answer within {}", humantime::format_duration(timeout)),
        ),
    }
}

fn classify(error: &NetError) -> Outcome {
    use hickory_resolver::net::DnsError;
    use hickory_resolver::proto::op::ResponseCode;
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no)) => match no.response_code {
            ResponseCode::NXDomain => Outcome::Empty("NXDOMAIN".to_string()),
            ResponseCode::NoError => Outcome::Empty("no records".to_string()),
            code => Outcome::Failed("error", format!("{code}")),
        },
        NetError::Timeout => Outcome::Failed("timeout", error.to_string()),
        _ => Outcome::Failed("error", error.to_string()),
    }
}

fn ttl_left(valid_until: Instant) -> Duration {
    valid_until.saturating_duration_since(Instant::now())
}

async fn addresses(resolver: &TokioResolver, name: &str, port: u16) -> Outcome {
    match resolver.lookup_ip(name).await {
        Ok(lookup) => {
            let ttl = ttl_left(lookup.valid_until());
            let found: BTreeSet<Found> = lookup
                .iter()
                .map(|ip| Found {
                    addr: SocketAddr::new(ip, port),
                    weight: None,
                    priority: 0,
                    target: String::new(),
                })
                .collect();
            if found.is_empty() {
                return Outcome::Empty("no records".to_string());
            }
            Outcome::Found(found.into_iter().collect(), Some(ttl))
        }
        Err(error) => classify(&error),
    }
}

async fn srv(resolver: &TokioResolver, name: &str) -> Outcome {
    let lookup = match resolver.srv_lookup(name).await {
        Ok(lookup) => lookup,
        Err(error) => return classify(&error),
    };
    let mut ttl = ttl_left(lookup.valid_until());
    let mut found = BTreeSet::new();
    for record in lookup.answers() {
        let RData::SRV(srv) = &record.data else {
            continue;
        };
        let target = srv.target.to_string();
        // The name servers that know the targets send their addresses along (RFC 2782's
        // additional section); the others are asked.
        let mut ips: Vec<IpAddr> = lookup
            .additionals()
            .iter()
            .filter(|extra| extra.name == srv.target)
            .filter_map(|extra| match &extra.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect();
        if ips.is_empty() {
            match resolver.lookup_ip(srv.target.clone()).await {
                Ok(addresses) => {
                    ttl = ttl.min(ttl_left(addresses.valid_until()));
                    ips.extend(addresses.iter());
                }
                // A target without addresses is left out; the others still serve.
                Err(error) => {
                    tracing::debug!(srv = name, %target, %error, "SRV target does not resolve");
                    continue;
                }
            }
        }
        for ip in ips {
            found.insert(Found {
                addr: SocketAddr::new(ip, srv.port),
                weight: Some(u32::from(srv.weight.max(1))),
                priority: srv.priority,
                target: target.trim_end_matches('.').to_string(),
            });
        }
    }
    if found.is_empty() {
        return Outcome::Empty("no SRV target resolves".to_string());
    }
    Outcome::Found(found.into_iter().collect(), Some(ttl))
}

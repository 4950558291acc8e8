//! The one-screen summary `--check` prints for a valid config.

use super::Config;

impl Config {
    /// A one-screen summary for `--check`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let listen: Vec<String> = self.proxy.listen.iter().map(|a| a.to_string()).collect();
        out.push_str(&format!(
            "listen {} | admin {} | threads {}\n",
            listen.join(", "),
            self.proxy.admin_listen,
            self.proxy.threads
        ));
        for upstream in self.upstreams.values() {
            let named = upstream
                .dns
                .names
                .iter()
                .map(|n| format!("{}:{} (A, w{})", n.name, n.port, n.weight));
            let srv = upstream.dns.srv.iter().map(|s| format!("{} (SRV)", s.srv));
            let servers: Vec<String> = upstream
                .servers
                .iter()
                .map(|s| format!("{} (w{})", s.addr, s.weight))
                .chain(named)
                .chain(srv)
                .collect();
            out.push_str(&format!(
                "upstream {}: {} over {} | retries {}\n",
                upstream.name,
                upstream.strategy.name(),
                servers.join(", "),
                upstream.retries
            ));
        }
        for route in &self.routes {
            let hosts = if route.hosts.is_empty() {
                "*".to_string()
            } else {
                route.hosts.join(",")
            };
            let target = match (&route.upstream, &route.redirect, &route.respond) {
                (_, Some(redirect), _) => format!("redirect {}", redirect.to.source()),
                (_, _, Some(respond)) => format!("respond {}", respond.status),
                (Some(upstream), _, _) => upstream.clone(),
                (None, None, None) => "-".to_string(),
            };
            out.push_str(&format!(
                "route {}: {}{} -> {}\n",
                route.name, hosts, route.path, target
            ));
        }
        if let Some(tls) = &self.tls {
            let now = i64::try_from(scalelab_common::clock::since_epoch().as_secs()).unwrap_or(0);
            out.push_str(&tls.summary(now));
        }
        out
    }
}

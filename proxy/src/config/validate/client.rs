//! The client limits of `[proxy]` and a route's own `max_body_bytes`.

use super::check::Check;
use crate::config::file::{ByteSize, FileProxy, FileRoute};
use crate::config::units::DurationKind;
use crate::config::ClientLimits;
use scalelab_common::problem::Problems;
use std::time::Duration;

/// Bodies up to 1 TiB may be allowed; the limit exists to be finite.
const MAX_BODY_LIMIT: u64 = 1 << 40;

pub(super) fn validate_client_limits(proxy: &FileProxy, problems: &mut Problems) -> ClientLimits {
    let defaults = ClientLimits::default();
    let keepalive_timeout = problems.duration(
        "proxy.keepalive_timeout",
        proxy.keepalive_timeout.as_ref(),
        DurationKind::Timeout,
        defaults.keepalive_timeout,
    );
    if keepalive_timeout < Duration::from_secs(1) || keepalive_timeout.subsec_nanos() != 0 {
        problems.push(
            "proxy.keepalive_timeout",
            "must be whole seconds, at least \"1s\" (Pingora counts it in seconds)",
        );
    }
    ClientLimits {
        client_header_timeout: problems.duration(
            "proxy.client_header_timeout",
            proxy.client_header_timeout.as_ref(),
            DurationKind::Timeout,
            defaults.client_header_timeout,
        ),
        client_body_timeout: problems.duration(
            "proxy.client_body_timeout",
            proxy.client_body_timeout.as_ref(),
            DurationKind::Timeout,
            defaults.client_body_timeout,
        ),
        keepalive_timeout,
        max_connections: problems.integer(
            "proxy.max_connections",
            proxy.max_connections,
            (1, 1_000_000),
            defaults.max_connections as i64,
        ) as usize,
        max_body_bytes: body_limit(
            "proxy.max_body_bytes",
            proxy.max_body_bytes.as_ref(),
            problems,
        )
        .unwrap_or(defaults.max_body_bytes),
    }
}

/// A route's `max_body_bytes`, if it sets one.
pub(super) fn route_body_limit(
    base: &str,
    route: &FileRoute,
    problems: &mut Problems,
) -> Option<u64> {
    body_limit(
        &format!("{base}.max_body_bytes"),
        route.max_body_bytes.as_ref(),
        problems,
    )
}

fn body_limit(path: &str, value: Option<&ByteSize>, problems: &mut Problems) -> Option<u64> {
    value?;
    let bytes = problems.bytes(path, value, 0) as u64;
    if bytes > MAX_BODY_LIMIT {
        problems.push(path, "must be at most 1TiB");
        return None;
    }
    (bytes > 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, ClientLimits, ConfigError};
    use std::path::Path;
    use std::time::Duration;

    fn config(proxy: &str, route: &str) -> Result<crate::config::Config, ConfigError> {
        let text = format!(
            "[proxy]\n{proxy}\n[upstreams.u]\nservers = [{{ addr = \"127.0.0.1:1\" }}]\n[[routes]]\npath = \"/\"\nupstream = \"u\"\n{route}\n"
        );
        parse(Path::new("./config.toml"), &text)
    }

    fn problem_paths(error: ConfigError) -> Vec<String> {
        match error {
            ConfigError::Invalid { problems, .. } => {
                problems.into_iter().map(|problem| problem.path).collect()
            }
            ConfigError::Read { .. } => vec!["read".into()],
        }
    }

    #[test]
    fn defaults_are_the_public_edge_defaults() {
        let config = config("", "").expect("valid");
        assert_eq!(config.proxy.client, ClientLimits::default());
        assert_eq!(
            config.proxy.client.client_header_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(config.routes[0].max_body_bytes, None);
    }

    #[test]
    fn limits_are_read_and_a_route_sets_its_own_body_limit() {
        let config = config(
            "client_header_timeout = \"2s\"\nclient_body_timeout = \"3s\"\nkeepalive_timeout = \"4s\"\nmax_connections = 5\nmax_body_bytes = \"1KiB\"",
            "max_body_bytes = 7",
        )
        .expect("valid");
        let client = &config.proxy.client;
        assert_eq!(client.client_header_timeout, Duration::from_secs(2));
        assert_eq!(client.client_body_timeout, Duration::from_secs(3));
        assert_eq!(client.keepalive_seconds(), 4);
        assert_eq!(client.max_connections, 5);
        assert_eq!(client.max_body_bytes, 1024);
        assert_eq!(config.routes[0].max_body_bytes, Some(7));
    }

    #[test]
    fn every_bad_limit_is_reported_with_its_path() {
        let error = config(
            "client_header_timeout = \"0s\"\nkeepalive_timeout = \"500ms\"\nmax_connections = 0\nmax_body_bytes = \"2TiB\"",
            "max_body_bytes = -1",
        )
        .expect_err("invalid");
        let paths = problem_paths(error);
        for path in [
            "proxy.client_header_timeout",
            "proxy.keepalive_timeout",
            "proxy.max_connections",
            "proxy.max_body_bytes",
            "routes[0].max_body_bytes",
        ] {
            assert!(
                paths.iter().any(|p| p == path),
                "{path} missing from {paths:?}"
            );
        }
    }
}

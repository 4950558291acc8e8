//! `[admin]` (the admin token and `metrics_auth`), the rule that an admin listener reachable
//! from other hosts needs a token, and `[proxy] debug_headers` with its allow list.

use crate::config::admin::{AdminSettings, AdminToken, DebugHeaders, DebugSettings};
use crate::config::file::{FileConfig, FileSecret};
use scalelab_common::problem::Problems;
use std::net::SocketAddr;
use std::path::Path;

/// Shorter tokens are refused: the token is all that guards the admin API off loopback, and
/// `scalelab up` makes 32 random bytes (64 hex digits).
const MIN_TOKEN_BYTES: usize = 16;

pub(super) fn validate_admin(
    file: &FileConfig,
    admin_listen: SocketAddr,
    base: &Path,
    problems: &mut Problems,
) -> AdminSettings {
    let table = file.admin.as_ref();
    let read = table
        .and_then(|admin| admin.token.as_ref())
        .map_or(Ok(None), |secret| read_token(secret, base, problems));
    // A token that failed to load is already a problem; only a missing one is reported here.
    if !admin_listen.ip().is_loopback() && matches!(read, Ok(None)) {
        problems.push(
            "proxy.admin_listen",
            format!(
                "{admin_listen} is reachable from other hosts, so the admin API (cache purges, \
                 drains, reloads, the config) needs a token: set [admin] token = {{ env = \"NAME\" }} \
                 or {{ file = \"PATH\" }}, or listen on 127.0.0.1"
            ),
        );
    }
    AdminSettings {
        token: read.ok().flatten(),
        metrics_auth: table.and_then(|admin| admin.metrics_auth).unwrap_or(false),
    }
}

/// The token, `Ok(None)` for an optional variable that is not set, or `Err` once the problem
/// is reported.
fn read_token(
    secret: &FileSecret,
    base: &Path,
    problems: &mut Problems,
) -> Result<Option<AdminToken>, ()> {
    const PATH: &str = "admin.token";
    let optional = secret.optional.unwrap_or(false);
    if optional && secret.env.is_none() {
        problems.push(PATH, "optional is only read with env (a file must exist)");
        return Err(());
    }
    let (text, source) = match (&secret.file, &secret.env) {
        (Some(file), None) => {
            let path = base.join(file);
            match std::fs::read_to_string(&path) {
                Ok(text) => (text, format!("file {}", path.display())),
                Err(error) => {
                    problems.push(
                        PATH,
                        format!("cannot read the token file {}: {error}", path.display()),
                    );
                    return Err(());
                }
            }
        }
        (None, Some(name)) => match std::env::var(name) {
            Ok(text) => (text, format!("env {name}")),
            Err(std::env::VarError::NotPresent) if optional => return Ok(None),
            Err(_) => {
                problems.push(
                    PATH,
                    format!("the environment variable {name} is not set (or not UTF-8)"),
                );
                return Err(());
            }
        },
        _ => {
            problems.push(
                PATH,
                "write exactly one of { file = \"PATH\" } or { env = \"NAME\" }",
            );
            return Err(());
        }
    };
    // A file usually ends with a newline the token does not include.
    let token = text.trim();
    if token.len() < MIN_TOKEN_BYTES {
        problems.push(
            PATH,
            format!("the token ({source}) is shorter than {MIN_TOKEN_BYTES} characters"),
        );
        return Err(());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        problems.push(
            PATH,
            format!(
                "the token ({source}) must be printable ASCII without spaces, as a header value"
            ),
        );
        return Err(());
    }
    Ok(Some(AdminToken::new(token.as_bytes().to_vec(), source)))
}

pub(super) fn validate_debug(file: &FileConfig, problems: &mut Problems) -> DebugSettings {
    let proxy = &file.proxy;
    let mode = match proxy.debug_headers.as_deref() {
        None | Some("off") => DebugHeaders::Off,
        Some("on") => DebugHeaders::On,
        Some("trusted") => DebugHeaders::Trusted,
        Some(other) => {
            problems.push(
                "proxy.debug_headers",
                format!("unknown value {other:?}; write \"off\", \"on\" or \"trusted\""),
            );
            DebugHeaders::Off
        }
    };
    let trusted = super::traffic::validate_networks(
        "proxy.debug_trusted",
        proxy.debug_trusted.as_ref(),
        problems,
    );
    if mode != DebugHeaders::Trusted && !trusted.0.is_empty() {
        problems.push(
            "proxy.debug_trusted",
            "is only read with debug_headers = \"trusted\"",
        );
    }
    DebugSettings { mode, trusted }
}

#[cfg(test)]
mod tests {
    use crate::config::admin::DebugHeaders;
    use crate::config::{parse, Config, ConfigError};
    use std::path::Path;

    fn config(dir: &Path, proxy: &str, admin: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[proxy]\n{proxy}\n{admin}\n[upstreams.u]\nservers = [{{ addr = \"127.0.0.1:1\" }}]\n[[routes]]\npath = \"/\"\nupstream = \"u\"\n"
        );
        parse(&dir.join("config.toml"), &text)
    }

    fn problems(error: ConfigError) -> Vec<(String, String)> {
        match error {
            ConfigError::Invalid { problems, .. } => problems
                .into_iter()
                .map(|problem| (problem.path, problem.message))
                .collect(),
            ConfigError::Read { .. } => vec![("read".into(), String::new())],
        }
    }

    #[test]
    fn defaults_are_no_token_no_debug_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), "", "").expect("valid");
        assert_eq!(config.admin.token, None);
        assert!(!config.admin.metrics_auth);
        assert_eq!(config.proxy.debug_headers.mode, DebugHeaders::Off);
    }

    #[test]
    fn a_non_loopback_admin_listener_without_a_token_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = config(dir.path(), "admin_listen = \"0.0.0.0:9901\"", "").expect_err("open");
        let found = problems(error);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "proxy.admin_listen");
        assert!(found[0].1.contains("needs a token"), "{found:?}");
    }

    #[test]
    fn a_token_file_is_read_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "0123456789abcdef0123456789abcdef";
        std::fs::write(dir.path().join("admin.token"), format!("{secret}\n")).expect("write");
        let config = config(
            dir.path(),
            "admin_listen = \"0.0.0.0:9901\"",
            "[admin]\ntoken = { file = \"admin.token\" }\nmetrics_auth = true",
        )
        .expect("valid");
        let token = config.admin.token.as_ref().expect("token");
        assert!(token.matches(secret.as_bytes()));
        assert!(!token.matches(b"0123456789abcdef0123456789abcdee"));
        assert!(token.authorizes(Some(format!("Bearer {secret}").as_bytes())));
        assert!(token.authorizes(Some(format!("bearer {secret}").as_bytes())));
        assert!(!token.authorizes(Some(secret.as_bytes())));
        assert!(!token.authorizes(None));
        assert!(config.admin.metrics_auth);
        let shown = serde_json::to_string(&config).expect("json");
        let debugged = format!("{config:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(!debugged.contains(secret), "{debugged}");
        assert!(shown.contains("(redacted)"));
    }

    #[test]
    fn bad_tokens_and_debug_settings_are_reported_with_their_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("short.token"), "short\n").expect("write");
        for (proxy, admin, path, says) in [
            (
                "",
                "[admin]\ntoken = { file = \"short.token\" }",
                "admin.token",
                "shorter",
            ),
            (
                "",
                "[admin]\ntoken = { file = \"missing.token\" }",
                "admin.token",
                "cannot read",
            ),
            (
                "",
                "[admin]\ntoken = { env = \"SCALELAB_TEST_NO_SUCH_VARIABLE\" }",
                "admin.token",
                "not set",
            ),
            ("", "[admin]\ntoken = {}", "admin.token", "exactly one"),
            (
                "",
                "[admin]\ntoken = { file = \"short.token\", optional = true }",
                "admin.token",
                "only read with env",
            ),
            (
                "admin_listen = \"0.0.0.0:9901\"",
                "[admin]\ntoken = { env = \"SCALELAB_TEST_NO_SUCH_VARIABLE\", optional = true }",
                "proxy.admin_listen",
                "needs a token",
            ),
            (
                "debug_headers = \"yes\"",
                "",
                "proxy.debug_headers",
                "unknown value",
            ),
            (
                "debug_headers = \"trusted\"\ndebug_trusted = [\"10.0.0.0/33\"]",
                "",
                "proxy.debug_trusted[0]",
                "invalid network",
            ),
            (
                "debug_trusted = [\"127.0.0.1\"]",
                "",
                "proxy.debug_trusted",
                "only read",
            ),
        ] {
            let found = problems(config(dir.path(), proxy, admin).expect_err(path));
            assert!(
                found.iter().any(|(p, m)| p == path && m.contains(says)),
                "{path}: {says} not in {found:?}"
            );
        }
    }

    #[test]
    fn an_optional_variable_that_is_not_set_means_no_token_on_loopback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(
            dir.path(),
            "",
            "[admin]\ntoken = { env = \"SCALELAB_TEST_NO_SUCH_VARIABLE\", optional = true }",
        )
        .expect("valid");
        assert_eq!(config.admin.token, None);
    }

    #[test]
    fn trusted_debug_headers_read_their_allow_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(
            dir.path(),
            "debug_headers = \"trusted\"\ndebug_trusted = [\"127.0.0.1/32\", \"::1\"]",
            "",
        )
        .expect("valid");
        let debug = &config.proxy.debug_headers;
        assert_eq!(debug.mode, DebugHeaders::Trusted);
        assert!(debug.trusted.contains("127.0.0.1".parse().expect("ip")));
        assert!(debug.trusted.contains("::1".parse().expect("ip")));
        assert!(!debug.trusted.contains("10.0.0.1".parse().expect("ip")));
    }
}

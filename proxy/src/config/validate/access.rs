//! The access gates' keys (issue 25): IP lists in `[proxy]` and routes, and a route's
//! `basic`, `forward`, `cors`, `claims_to_headers` and `forward_credentials`. Every mistake
//! (a bad CIDR, a missing or unreadable file, a weak hash, an unknown upstream, `*` with
//! credentials, a table that does not match the route's `auth`) is a problem with its path.

use super::check::Check;
use crate::config::access::htpasswd::Htpasswd;
use crate::config::access::ip::{self, IpSet};
use crate::config::access::{
    BasicSettings, ClaimHeader, CorsPolicy, ForwardSettings, IpList, IpRules, ListFile,
    OnForwardError, OriginPattern, RouteAccess,
};
use crate::config::file::{FileConfig, FileCors, FileForward, FileRoute};
use crate::config::units::DurationKind;
use crate::config::RouteAuth;
use http::{HeaderName, Method};
use scalelab_common::problem::Problems;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// `[proxy]`'s `allow`, `deny`, `allow_file` and `deny_file`.
pub(super) fn validate_proxy_ip(file: &FileConfig, dir: &Path, problems: &mut Problems) -> IpRules {
    let proxy = &file.proxy;
    IpRules {
        allow: ip_list(
            "proxy",
            ("allow", proxy.allow.as_ref()),
            ("allow_file", proxy.allow_file.as_deref()),
            dir,
            problems,
        ),
        deny: ip_list(
            "proxy",
            ("deny", proxy.deny.as_ref()),
            ("deny_file", proxy.deny_file.as_deref()),
            dir,
            problems,
        ),
    }
}

/// A route's gates. `auth` is the route's validated `auth`, which must agree with the tables.
pub(super) fn validate_route_access(
    base: &str,
    route: &FileRoute,
    file: &FileConfig,
    dir: &Path,
    auth: RouteAuth,
    problems: &mut Problems,
) -> RouteAccess {
    let ip = IpRules {
        allow: ip_list(
            base,
            ("allow", route.allow.as_ref()),
            ("allow_file", route.allow_file.as_deref()),
            dir,
            problems,
        ),
        deny: ip_list(
            base,
            ("deny", route.deny.as_ref()),
            ("deny_file", route.deny_file.as_deref()),
            dir,
            problems,
        ),
    };
    let basic = match (&route.basic, auth) {
        (Some(basic), RouteAuth::Basic) => {
            let path = dir.join(&basic.users_file);
            let realm = basic
                .realm
                .clone()
                .unwrap_or_else(|| "scalelab".to_string());
            if realm.contains('"') || realm.chars().any(char::is_control) {
                problems.push(
                    format!("{base}.basic.realm"),
                    "must not contain '\"' or control characters",
                );
            }
            users_file(&format!("{base}.basic.users_file"), &path, problems).map(
                |(users, sha256)| BasicSettings {
                    users_file: path.clone(),
                    realm,
                    users: Arc::new(users),
                    sha256,
                },
            )
        }
        (None, RouteAuth::Basic) => {
            problems.push(
                format!("{base}.basic"),
                "auth = \"basic\" needs basic = { users_file = \"...\" }",
            );
            None
        }
        (Some(_), _) => {
            problems.push(
                format!("{base}.basic"),
                "is used only with auth = \"basic\"",
            );
            None
        }
        (None, _) => None,
    };
    let forward = match (&route.forward, auth) {
        (Some(forward), RouteAuth::Forward) => Some(validate_forward(
            &format!("{base}.forward"),
            forward,
            file,
            problems,
        )),
        (None, RouteAuth::Forward) => {
            problems.push(
                format!("{base}.forward"),
                "auth = \"forward\" needs forward = { upstream = \"...\", path = \"...\" }",
            );
            None
        }
        (Some(_), _) => {
            problems.push(
                format!("{base}.forward"),
                "is used only with auth = \"forward\"",
            );
            None
        }
        (None, _) => None,
    };
    let claims_to_headers = match (&route.claims_to_headers, auth) {
        (Some(map), RouteAuth::Jwt) => map
            .iter()
            .filter_map(|(claim, header)| {
                let path = format!("{base}.claims_to_headers.{claim}");
                header_name(&path, header, problems).map(|header| ClaimHeader {
                    claim: claim.clone(),
                    header,
                })
            })
            .collect(),
        (Some(_), _) => {
            problems.push(
                format!("{base}.claims_to_headers"),
                "is used only with auth = \"jwt\" (the claims of a verified token)",
            );
            Vec::new()
        }
        (None, _) => Vec::new(),
    };
    if route.forward_credentials.is_some() && auth != RouteAuth::Basic {
        problems.push(
            format!("{base}.forward_credentials"),
            "is used only with auth = \"basic\"",
        );
    }
    RouteAccess {
        ip,
        cors: route
            .cors
            .as_ref()
            .and_then(|cors| validate_cors(&format!("{base}.cors"), cors, problems)),
        basic,
        forward,
        claims_to_headers,
        forward_credentials: route.forward_credentials.unwrap_or(false),
    }
}

/// One list from its inline networks and its file; `None` when neither is given.
fn ip_list(
    base: &str,
    (key, inline): (&str, Option<&Vec<String>>),
    (file_key, file): (&str, Option<&str>),
    dir: &Path,
    problems: &mut Problems,
) -> Option<IpList> {
    if inline.is_none() && file.is_none() {
        return None;
    }
    let mut nets = Vec::new();
    for (i, text) in inline.into_iter().flatten().enumerate() {
        match ip::parse_net(text) {
            Some(net) => nets.push(net),
            None => problems.push(
                format!("{base}.{key}[{i}]"),
                format!("invalid network {text:?}; write it like \"10.0.0.0/8\" or \"127.0.0.1\""),
            ),
        }
    }
    let file = file.and_then(|name| {
        let path = dir.join(name);
        let problem_path = format!("{base}.{file_key}");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                problems.push(
                    problem_path,
                    format!("cannot read {}: {error}", path.display()),
                );
                return None;
            }
        };
        let (found, errors) = ip::parse_list(&text);
        for error in errors {
            problems.push(problem_path.clone(), format!("{}: {error}", path.display()));
        }
        let entries = found.len();
        nets.extend(found);
        Some(ListFile {
            path,
            entries,
            sha256: sha256_prefix(text.as_bytes()),
        })
    });
    Some(IpList {
        set: Arc::new(IpSet::new(&nets)),
        inline: inline.cloned().unwrap_or_default(),
        file,
    })
}

/// Reads and parses an htpasswd file; every weak or bad line is a problem.
fn users_file(path_key: &str, path: &Path, problems: &mut Problems) -> Option<(Htpasswd, String)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            problems.push(path_key, format!("cannot read {}: {error}", path.display()));
            return None;
        }
    };
    match Htpasswd::parse(&text) {
        Ok(users) if users.is_empty() => {
            problems.push(path_key, format!("{}: no users", path.display()));
            None
        }
        Ok(users) => Some((users, sha256_prefix(text.as_bytes()))),
        Err(errors) => {
            for error in errors {
                problems.push(path_key, format!("{}: {error}", path.display()));
            }
            None
        }
    }
}

fn validate_forward(
    base: &str,
    forward: &FileForward,
    file: &FileConfig,
    problems: &mut Problems,
) -> ForwardSettings {
    if !file.upstreams.contains_key(&forward.upstream) {
        let known: Vec<&str> = file.upstreams.keys().map(String::as_str).collect();
        problems.push(
            format!("{base}.upstream"),
            format!(
                "unknown upstream {:?}; defined: [{}]",
                forward.upstream,
                known.join(", ")
            ),
        );
    }
    let path = forward.path.clone().unwrap_or_else(|| "/".to_string());
    if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
        problems.push(
            format!("{base}.path"),
            format!("{path:?} must be a path starting with '/'"),
        );
    }
    let names =
        |key: &str, list: Option<&Vec<String>>, problems: &mut Problems| -> Vec<HeaderName> {
            list.into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, text)| header_name(&format!("{base}.{key}[{i}]"), text, problems))
                .collect()
        };
    let copy_request_headers = names(
        "copy_request_headers",
        forward.copy_request_headers.as_ref(),
        problems,
    );
    let copy_response_headers = names(
        "copy_response_headers",
        forward.copy_response_headers.as_ref(),
        problems,
    );
    let on_error = match forward.on_error.as_deref() {
        None | Some("unavailable") => OnForwardError::Unavailable,
        Some("deny") => OnForwardError::Deny,
        Some("allow") => OnForwardError::Allow,
        Some(other) => {
            problems.push(
                format!("{base}.on_error"),
                format!(
                    "unknown value {other:?}; valid: \"unavailable\" (503), \"deny\", \"allow\""
                ),
            );
            OnForwardError::Unavailable
        }
    };
    ForwardSettings {
        upstream: forward.upstream.clone(),
        path,
        copy_request_headers,
        copy_response_headers,
        timeout: problems.duration(
            &format!("{base}.timeout"),
            forward.timeout.as_ref(),
            DurationKind::Timeout,
            Duration::from_secs(1),
        ),
        cache: problems.duration(
            &format!("{base}.cache"),
            forward.cache.as_ref(),
            DurationKind::Window,
            Duration::ZERO,
        ),
        on_error,
    }
}

fn validate_cors(base: &str, cors: &FileCors, problems: &mut Problems) -> Option<CorsPolicy> {
    let before = problems.len();
    if cors.origins.is_empty() {
        problems.push(format!("{base}.origins"), "needs at least one origin");
    }
    let origins: Vec<OriginPattern> = cors
        .origins
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            OriginPattern::parse(text)
                .map_err(|why| problems.push(format!("{base}.origins[{i}]"), why))
                .ok()
        })
        .collect();
    let credentials = cors.credentials.unwrap_or(false);
    if credentials {
        if let Some(i) = origins.iter().position(|o| *o == OriginPattern::Any) {
            problems.push(
                format!("{base}.origins[{i}]"),
                "\"*\" cannot be used with credentials = true (browsers refuse it); list the origins",
            );
        }
    }
    let methods = match &cors.methods {
        None => vec![Method::GET, Method::HEAD, Method::POST],
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                Method::from_bytes(text.to_ascii_uppercase().as_bytes())
                    .map_err(|_| {
                        problems.push(
                            format!("{base}.methods[{i}]"),
                            format!("invalid method {text:?}"),
                        )
                    })
                    .ok()
            })
            .collect(),
    };
    let lower_names =
        |key: &str, list: Option<&Vec<String>>, problems: &mut Problems| -> Vec<String> {
            list.into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, text)| {
                    header_name(&format!("{base}.{key}[{i}]"), text, problems)
                        .map(|name| name.as_str().to_string())
                })
                .collect()
        };
    let headers = lower_names("headers", cors.headers.as_ref(), problems);
    let expose_headers = lower_names("expose_headers", cors.expose_headers.as_ref(), problems);
    let max_age = cors.max_age.as_ref().map(|text| {
        problems.duration(
            &format!("{base}.max_age"),
            Some(text),
            DurationKind::Ttl,
            Duration::from_secs(600),
        )
    });
    (problems.len() == before).then_some(CorsPolicy {
        origins,
        methods,
        headers,
        expose_headers,
        credentials,
        max_age,
    })
}

fn header_name(path: &str, text: &str, problems: &mut Problems) -> Option<HeaderName> {
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| problems.push(path, format!("invalid header name {text:?}")))
        .ok()
}

fn sha256_prefix(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

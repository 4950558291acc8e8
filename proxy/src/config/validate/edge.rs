//! The edge rules of `[proxy]` and of each route: hosts, `redirect`, `respond`, `add_prefix`,
//! `rewrite` and the header rules. Regexes compile and templates parse here, so a mistake is a
//! config problem with its path, never a 500 on the first request.

use crate::config::edge::{
    HeaderRules, Name, PathRewrite, Pattern, ProxyEdge, Redirect, Respond, RuleValue,
};
use crate::config::file::{FileConfig, FileHeaderRules, FileHosts, FileRoute};
use crate::template::{Context, Template, Vars};
use http::header::{HeaderName, HeaderValue};
use scalelab_common::problem::Problems;

/// Headers a rule may not touch, and why: they frame the message or belong to one connection,
/// and the proxy sets them itself.
fn forbidden(name: &HeaderName, request: bool) -> Option<&'static str> {
    Some(match name.as_str() {
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "upgrade" => {
            "a hop-by-hop header: it describes one connection and is never forwarded"
        }
        "transfer-encoding" | "content-length" => {
            "a framing header: the proxy frames each message itself"
        }
        _ => return None,
    })
    .filter(|_| request || name != http::header::HOST)
}

/// `[proxy]`'s edge settings; `tls_listen` is there when `https_redirect` is on.
pub fn validate_proxy_edge(file: &FileConfig, problems: &mut Problems) -> ProxyEdge {
    let proxy = &file.proxy;
    let https_redirect = proxy.https_redirect.unwrap_or(false);
    if https_redirect && proxy.tls_listen.as_ref().is_none_or(Vec::is_empty) {
        problems.push(
            "proxy.https_redirect",
            "needs an HTTPS listener to redirect to: set proxy.tls_listen",
        );
    }
    let https_redirect_except = proxy.https_redirect_except.clone().unwrap_or_default();
    for (i, prefix) in https_redirect_except.iter().enumerate() {
        if !prefix.starts_with('/') {
            problems.push(
                format!("proxy.https_redirect_except[{i}]"),
                format!("{prefix:?} must start with '/'"),
            );
        }
    }
    ProxyEdge {
        https_redirect,
        https_redirect_except,
        request_headers: header_rules(
            "proxy.request_headers",
            proxy.request_headers.as_ref(),
            true,
            false,
            problems,
        ),
        response_headers: header_rules(
            "proxy.response_headers",
            proxy.response_headers.as_ref(),
            false,
            false,
            problems,
        ),
        forwarded: proxy.forwarded.unwrap_or(false),
    }
}

/// A route's hosts: lowercase, without a trailing dot; `*.domain` for one label in front of
/// `domain`; an IPv6 literal in brackets; never a port (routing ignores the request's port).
pub fn validate_hosts(
    base: &str,
    hosts: Option<&FileHosts>,
    problems: &mut Problems,
) -> Vec<String> {
    let Some(hosts) = hosts else {
        return Vec::new();
    };
    if hosts.names().is_empty() {
        problems.push(
            format!("{base}.host"),
            "an empty list: leave host out for any host",
        );
    }
    let mut valid: Vec<String> = Vec::new();
    for (i, name) in hosts.names().iter().enumerate() {
        let path = match hosts {
            FileHosts::One(_) => format!("{base}.host"),
            FileHosts::Many(_) => format!("{base}.host[{i}]"),
        };
        match host_name(name) {
            Ok(host) if valid.contains(&host) => {
                problems.push(path, format!("{name:?} is listed twice"));
            }
            Ok(host) => valid.push(host),
            Err(reason) => problems.push(path, format!("{name:?}: {reason}")),
        }
    }
    valid
}

fn host_name(name: &str) -> Result<String, &'static str> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or("an IPv6 address needs its closing ']'")?;
        inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| "not an IPv6 address")?;
        return Ok(inner.to_string());
    }
    let (wildcard, domain) = match lower.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, lower.as_str()),
    };
    if domain.is_empty() {
        return Err("empty");
    }
    if domain.contains(':') {
        return Err("a host name without a port (the request's port is ignored)");
    }
    if domain.contains('*') {
        return Err("a wildcard is only '*.' in front of a domain (one label)");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !domain.split('.').all(label_ok) {
        return Err("not a host name (letters, digits, '-' between dots)");
    }
    if wildcard && !domain.contains('.') {
        return Err("a wildcard needs a domain of two labels or more (*.example.com)");
    }
    Ok(lower)
}

/// What a route's own edge keys decide.
pub struct RouteEdge {
    pub redirect: Option<Redirect>,
    pub respond: Option<Respond>,
    pub add_prefix: Option<String>,
    pub rewrite: Option<PathRewrite>,
    pub request_headers: HeaderRules,
    pub response_headers: HeaderRules,
    pub https_redirect: Option<bool>,
}

pub fn validate_route_edge(
    base: &str,
    route: &FileRoute,
    file: &FileConfig,
    jwt: bool,
    problems: &mut Problems,
) -> RouteEdge {
    if route.redirect.is_some() && route.respond.is_some() {
        problems.push(
            format!("{base}.respond"),
            "a route either redirects or responds, not both",
        );
    }
    if route.upstream.is_none() && route.redirect.is_none() && route.respond.is_none() {
        problems.push(
            format!("{base}.upstream"),
            "missing: a route needs an upstream, a redirect or a respond",
        );
    }
    let redirect = route.redirect.as_ref().and_then(|redirect| {
        let path = format!("{base}.redirect");
        let path_regex = redirect
            .path_regex
            .as_deref()
            .and_then(|source| regex(&format!("{path}.path_regex"), source, problems));
        let status = redirect.status.and_then(|status| match status {
            301 | 302 | 303 | 307 | 308 => Some(status as u16),
            other => {
                problems.push(
                    format!("{path}.status"),
                    format!("{other} is not a redirect status; valid: 301, 302, 303, 307, 308"),
                );
                None
            }
        });
        let to = template(
            &format!("{path}.to"),
            &redirect.to,
            Context::Request,
            path_regex.as_ref(),
            problems,
        )?;
        Some(Redirect {
            to,
            status,
            path_regex,
        })
    });
    let respond = route.respond.as_ref().map(|respond| {
        let path = format!("{base}.respond");
        let status = respond.status.unwrap_or(200);
        if !(200..=599).contains(&status) {
            problems.push(
                format!("{path}.status"),
                format!("{status} is not a final status (200 to 599)"),
            );
        }
        let content_type = respond
            .content_type
            .clone()
            .unwrap_or_else(|| "text/plain; charset=utf-8".to_string());
        if HeaderValue::from_str(&content_type).is_err() {
            problems.push(
                format!("{path}.content_type"),
                format!("{content_type:?} is not a valid header value"),
            );
        }
        Respond {
            status: status.clamp(200, 599) as u16,
            body: respond.body.clone().unwrap_or_default(),
            content_type,
        }
    });
    let add_prefix = route.add_prefix.as_ref().and_then(|prefix| {
        let valid = prefix.starts_with('/')
            && prefix.len() > 1
            && !prefix.contains(['?', '#'])
            && HeaderValue::from_str(prefix).is_ok();
        if !valid {
            problems.push(
                format!("{base}.add_prefix"),
                format!("{prefix:?} must be a path starting with '/' (no query)"),
            );
            return None;
        }
        Some(prefix.trim_end_matches('/').to_string())
    });
    let rewrite = route.rewrite.as_ref().and_then(|rewrite| {
        let path = format!("{base}.rewrite");
        let path_regex = regex(&format!("{path}.path_regex"), &rewrite.path_regex, problems)?;
        if !rewrite.to.starts_with('/') && !rewrite.to.starts_with('{') {
            problems.push(
                format!("{path}.to"),
                format!("{:?} must give a path starting with '/'", rewrite.to),
            );
        }
        let to = template(
            &format!("{path}.to"),
            &rewrite.to,
            Context::Request,
            Some(&path_regex),
            problems,
        )?;
        Some(PathRewrite { path_regex, to })
    });
    let https_redirect = route.https_redirect;
    if https_redirect == Some(true) && file.proxy.tls_listen.as_ref().is_none_or(Vec::is_empty) {
        problems.push(
            format!("{base}.https_redirect"),
            "needs an HTTPS listener to redirect to: set proxy.tls_listen",
        );
    }
    RouteEdge {
        redirect,
        respond,
        add_prefix,
        rewrite,
        request_headers: header_rules(
            &format!("{base}.request_headers"),
            route.request_headers.as_ref(),
            true,
            jwt,
            problems,
        ),
        response_headers: header_rules(
            &format!("{base}.response_headers"),
            route.response_headers.as_ref(),
            false,
            jwt,
            problems,
        ),
        https_redirect,
    }
}

fn regex(path: &str, source: &str, problems: &mut Problems) -> Option<Pattern> {
    match regex::Regex::new(source) {
        Ok(regex) => Some(Pattern(regex)),
        Err(error) => {
            // The regex crate's message spans several lines with a caret; its last line says
            // what is wrong.
            let reason = error.to_string();
            let reason = reason
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_string();
            problems.push(path, format!("invalid regex {source:?}: {reason}"));
            None
        }
    }
}

fn template(
    path: &str,
    source: &str,
    context: Context,
    regex: Option<&Pattern>,
    problems: &mut Problems,
) -> Option<Template> {
    let captures = regex.map(|Pattern(regex)| {
        (
            regex.captures_len().saturating_sub(1),
            regex
                .capture_names()
                .flatten()
                .map(str::to_string)
                .collect(),
        )
    });
    Template::parse(source, context, captures)
        .map_err(|reason| problems.push(path, reason))
        .ok()
}

fn header_rules(
    base: &str,
    rules: Option<&FileHeaderRules>,
    request: bool,
    jwt: bool,
    problems: &mut Problems,
) -> HeaderRules {
    let Some(rules) = rules else {
        return HeaderRules::default();
    };
    let name = |path: String, text: &str, problems: &mut Problems| -> Option<Name> {
        let Ok(name) = HeaderName::from_bytes(text.as_bytes()) else {
            problems.push(path, format!("{text:?} is not a valid header name"));
            return None;
        };
        if let Some(reason) = forbidden(&name, request) {
            problems.push(path, format!("{text:?} cannot be changed: {reason}"));
            return None;
        }
        Some(Name(name))
    };
    let values = |op: &str,
                  list: &std::collections::BTreeMap<String, String>,
                  problems: &mut Problems| {
        let mut out = Vec::new();
        for (key, value) in list {
            let path = format!("{base}.{op}.{key}");
            let Some(header) = name(path.clone(), key, problems) else {
                continue;
            };
            let Some(template) = template(&path, value, Context::Headers { jwt }, None, problems)
            else {
                continue;
            };
            let value = match template.literal() {
                Some(text) => match HeaderValue::from_str(text) {
                    Ok(value) => RuleValue::Fixed(value),
                    Err(_) => {
                        problems.push(path, format!("{value:?} is not a valid header value"));
                        continue;
                    }
                },
                None => {
                    // The fixed parts must be valid on their own; the variables' values are
                    // checked per request (a header is left out rather than sent broken).
                    if HeaderValue::from_str(&template.render(&Vars::default())).is_err() {
                        problems.push(path, format!("{value:?} is not a valid header value"));
                        continue;
                    }
                    RuleValue::Template(template)
                }
            };
            out.push((header, value));
        }
        out
    };
    let set = values("set", &rules.set, problems);
    let add = values("add", &rules.add, problems);
    let remove = rules
        .remove
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let path = format!("{base}.remove[{i}]");
            let header = name(path.clone(), text, problems)?;
            if request && header.0 == http::header::HOST {
                problems.push(path, "\"Host\" cannot be removed: HTTP/1.1 requires it");
                return None;
            }
            Some(header)
        })
        .collect();
    HeaderRules { set, add, remove }
}

//! CORS (the Fetch standard's CORS protocol) per route: which origins a policy allows, the
//! answer to a preflight, and the headers an actual response gets. Pure: the caller passes
//! the request's `Origin` and preflight headers and applies what comes back.
//!
//! An allowed origin is always echoed exactly (never `*` with credentials), and every answer
//! on a CORS route says `Vary: Origin`, so a shared cache never gives one origin's headers to
//! another. A disallowed origin gets no CORS headers at all: the browser then blocks the
//! response, which is the whole enforcement (the server is not a browser and cannot be).

use crate::config::access::{CorsPolicy, OriginPattern};

/// Whether `origin` (the request's `Origin` header) is allowed by `policy`.
pub fn allowed(policy: &CorsPolicy, origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    let Some((scheme, host_port)) = origin.split_once("://") else {
        return false;
    };
    // The host without its port, for the wildcard patterns.
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    };
    policy.origins.iter().any(|pattern| match pattern {
        OriginPattern::Any => true,
        OriginPattern::Exact(exact) => *exact == origin,
        OriginPattern::Subdomains {
            scheme: wanted,
            suffix,
        } => {
            wanted.as_deref().is_none_or(|wanted| wanted == scheme)
                && host.len() > suffix.len()
                && host.ends_with(suffix.as_str())
        }
    })
}

/// What a CORS route does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// No `Origin`: not a cross-origin request; nothing to add.
    NotCors,
    /// A preflight the proxy answers itself (204) with these headers.
    Preflight(Vec<(&'static str, String)>),
    /// A preflight or an actual request from an origin (or asking for a method or header) the
    /// policy does not allow: no CORS headers; counted.
    Refused,
    /// An actual request from an allowed origin: these headers go on its response.
    Actual(Vec<(&'static str, String)>),
}

/// Decides for one request: `method` and `origin` as received, and for a preflight (`OPTIONS`
/// with `Access-Control-Request-Method`) the method and headers it asks for.
pub fn decide(
    policy: &CorsPolicy,
    method: &http::Method,
    origin: Option<&str>,
    request_method: Option<&str>,
    request_headers: Option<&str>,
) -> Decision {
    let Some(origin) = origin else {
        return Decision::NotCors;
    };
    if !allowed(policy, origin) {
        return Decision::Refused;
    }
    let allow_origin = if policy.credentials || !policy.origins.contains(&OriginPattern::Any) {
        origin.to_string()
    } else {
        "*".to_string()
    };
    let mut headers = vec![("access-control-allow-origin", allow_origin)];
    if policy.credentials {
        headers.push(("access-control-allow-credentials", "true".to_string()));
    }
    if *method == http::Method::OPTIONS {
        if let Some(requested) = request_method {
            let method_ok = policy
                .methods
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(requested.trim()));
            let asked: Vec<String> = request_headers
                .into_iter()
                .flat_map(|v| v.split(','))
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
            let headers_ok = asked.iter().all(|h| policy.headers.contains(h));
            if !method_ok || !headers_ok {
                return Decision::Refused;
            }
            let methods: Vec<&str> = policy.methods.iter().map(http::Method::as_str).collect();
            headers.push(("access-control-allow-methods", methods.join(", ")));
            if !asked.is_empty() {
                headers.push(("access-control-allow-headers", asked.join(", ")));
            }
            if let Some(max_age) = policy.max_age {
                headers.push(("access-control-max-age", max_age.as_secs().to_string()));
            }
            return Decision::Preflight(headers);
        }
    }
    if !policy.expose_headers.is_empty() {
        headers.push((
            "access-control-expose-headers",
            policy.expose_headers.join(", "),
        ));
    }
    Decision::Actual(headers)
}

#[cfg(test)]
mod tests;

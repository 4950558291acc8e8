//! Cache key templates: parsed once when the config is validated, rendered per request from
//! the method, host, path, query and headers. The default sorts the query and leaves out the
//! control parameters, so `?b=1&a=2` and `?a=2&b=1&bypass_cache=true` share an object.
//!
//! A template is a config value (a route's `cache.key`), so it lives with the config; the cache
//! only renders it. Pure: no IO, no Pingora types.

use serde::Serialize;

/// Query parameters that steer the proxy and never distinguish objects.
pub const CONTROL_PARAMS: [&str; 3] = ["strategy", "bypass_cache", "cache_ttl"];

pub const DEFAULT_TEMPLATE: &str = "{method} {host}{path}?{query}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Method,
    Host,
    Path,
    Query,
    QueryParam(String),
    Header(String),
}

/// A parsed key template such as `complex_data_{query.id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    parts: Vec<Part>,
}

impl Serialize for KeyTemplate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// What a key is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
}

impl KeyTemplate {
    /// Parses a template.
    ///
    /// # Errors
    /// A message naming the unknown variable or the unclosed brace.
    pub fn parse(source: &str) -> Result<KeyTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in key template {source:?}"))?;
            let name = &after[..close];
            parts.push(match name {
                "method" => Part::Method,
                "host" => Part::Host,
                "path" => Part::Path,
                "query" => Part::Query,
                _ => {
                    if let Some(param) = name.strip_prefix("query.").filter(|p| !p.is_empty()) {
                        Part::QueryParam(param.to_string())
                    } else if let Some(header) = name.strip_prefix("header.").filter(|h| !h.is_empty()) {
                        Part::Header(header.to_ascii_lowercase())
                    } else {
                        return Err(format!(
                            "unknown variable {{{name}}}; use {{method}}, {{host}}, {{path}}, {{query}}, {{query.NAME}} or {{header.NAME}}"
                        ));
                    }
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(KeyTemplate {
            source: source.to_string(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn render(&self, input: &KeyInput<'_>) -> String {
        let mut key = String::with_capacity(64);
        for part in &self.parts {
            match part {
                Part::Literal(text) => key.push_str(text),
                Part::Method => key.push_str(input.method),
                Part::Host => key.push_str(&input.host.to_ascii_lowercase()),
                Part::Path => key.push_str(input.path),
                Part::Query => key.push_str(&normalized_query(input.query)),
                Part::QueryParam(name) => {
                    if let Some(value) = input
                        .query
                        .and_then(|q| crate::headers::query_param(q, name))
                    {
                        key.push_str(value);
                    }
                }
                Part::Header(name) => {
                    if let Some(value) = input
                        .headers
                        .get(name.as_str())
                        .and_then(|v| v.to_str().ok())
                    {
                        key.push_str(value);
                    }
                }
            }
        }
        key
    }
}

impl Default for KeyTemplate {
    fn default() -> Self {
        // The default template is a constant that parses.
        KeyTemplate::parse(DEFAULT_TEMPLATE).unwrap_or(KeyTemplate {
            source: DEFAULT_TEMPLATE.to_string(),
            parts: Vec::new(),
        })
    }
}

/// The query with control parameters removed and the rest sorted.
pub fn normalized_query(query: Option<&str>) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !CONTROL_PARAMS.contains(&name)
        })
        .collect();
    pairs.sort_unstable();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates_render() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", "acme".parse().expect("value"));
        let input = KeyInput {
            method: "GET",
            host: "Example.COM",
            path: "/data/complex",
            query: Some("id=7&strategy=weighted&b=2&a=1&cache_ttl=5"),
            headers: &headers,
        };
        let cases = [
            (
                "{method} {host}{path}?{query}",
                "GET example.com/data/complex?a=1&b=2&id=7",
            ),
            ("my_data", "my_data"),
            ("complex_data_{query.id}", "complex_data_7"),
            ("{header.X-Tenant}:{path}", "acme:/data/complex"),
            ("{query.missing}x", "x"),
        ];
        for (template, expected) in cases {
            assert_eq!(
                KeyTemplate::parse(template).expect("parse").render(&input),
                expected,
                "{template}"
            );
        }
        assert!(KeyTemplate::parse("{nope}").is_err());
        assert!(KeyTemplate::parse("{path").is_err());
        assert_eq!(normalized_query(Some("bypass_cache=true")), "");
    }
}

//! Value templates of the edge rules: `https://{host}{path_and_query}`, `/new/{1}`,
//! `{jwt.tenant}`. Parsed once per config (an unknown variable is a config error with its
//! path), rendered per request from `Vars`. Pure: no IO, no pingora types.

#[cfg(test)]
mod tests;

use std::fmt::Write as _;

/// One variable of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Scheme,
    Host,
    Path,
    Query,
    PathAndQuery,
    RequestId,
    ClientIp,
    Route,
    UpstreamServer,
    /// A numbered capture group of the rule's `path_regex` (`{1}`).
    Capture(usize),
    /// A named capture group (`{name}`).
    Named(String),
    /// A claim of the verified token (`{jwt.tenant}`).
    Claim(String),
}

/// Where a template is used, which decides the variables it may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A redirect's target or a fixed response: the request, before any upstream.
    Request,
    /// A header rule: also the route, the chosen server and, on a JWT route, the claims.
    Headers { jwt: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// The request's values a template may use; captures only where the rule has a regex.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vars<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub request_id: &'a str,
    pub client_ip: &'a str,
    pub route: &'a str,
    pub upstream_server: &'a str,
    pub captures: Option<&'a regex::Captures<'a>>,
    pub claims: Option<&'a serde_json::Value>,
}

const NAMES: &str = "{scheme} {host} {path} {query} {path_and_query} {request_id} {client_ip} \
                     {route} {upstream_server} {jwt.CLAIM}, and {1} or {name} for captures of \
                     the rule's path_regex";

impl Template {
    /// Parses `source` for `context`; `{{` and `}}` stand for literal braces. `captures` is
    /// the number of groups of the rule's regex and their names (none without a regex).
    pub fn parse(
        source: &str,
        context: Context,
        captures: Option<(usize, Vec<String>)>,
    ) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("unclosed {{ in {source:?}")),
                        }
                    }
                    let var = variable(&name, context, captures.as_ref())?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(var));
                }
                '}' => return Err(format!("a lone }} in {source:?} (write }}}} for a brace)")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            parts,
            source: source.to_string(),
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template names no variable (its value can be made once).
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The text for one request. A capture group that did not take part in the match, or a
    /// claim the token does not have, is empty.
    pub fn render(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => push_var(&mut out, var, vars),
            }
        }
        out
    }
}

fn push_var(out: &mut String, var: &Var, vars: &Vars) {
    match var {
        Var::Scheme => out.push_str(vars.scheme),
        Var::Host => out.push_str(vars.host),
        Var::Path => out.push_str(vars.path),
        Var::Query => out.push_str(vars.query.unwrap_or("")),
        Var::PathAndQuery => {
            out.push_str(vars.path);
            if let Some(query) = vars.query {
                out.push('?');
                out.push_str(query);
            }
        }
        Var::RequestId => out.push_str(vars.request_id),
        Var::ClientIp => out.push_str(vars.client_ip),
        Var::Route => out.push_str(vars.route),
        Var::UpstreamServer => out.push_str(vars.upstream_server),
        Var::Capture(index) => {
            if let Some(group) = vars.captures.and_then(|c| c.get(*index)) {
                out.push_str(group.as_str());
            }
        }
        Var::Named(name) => {
            if let Some(group) = vars.captures.and_then(|c| c.name(name)) {
                out.push_str(group.as_str());
            }
        }
        Var::Claim(claim) => match vars.claims.and_then(|claims| claims.get(claim)) {
            Some(serde_json::Value::String(text)) => out.push_str(text),
            Some(serde_json::Value::Null) | None => {}
            Some(other) => {
                let _ = write!(out, "{other}");
            }
        },
    }
}

fn variable(
    name: &str,
    context: Context,
    captures: Option<&(usize, Vec<String>)>,
) -> Result<Var, String> {
    let var = match name {
        "scheme" => Var::Scheme,
        "host" => Var::Host,
        "path" => Var::Path,
        "query" => Var::Query,
        "path_and_query" => Var::PathAndQuery,
        "request_id" => Var::RequestId,
        "client_ip" => Var::ClientIp,
        "route" => Var::Route,
        "upstream_server" => match context {
            Context::Headers { .. } => Var::UpstreamServer,
            Context::Request => {
                return Err(
                    "{upstream_server} is known only once a server is chosen (header rules)".into(),
                )
            }
        },
        _ => {
            if let Some(claim) = name.strip_prefix("jwt.") {
                return match context {
                    Context::Headers { jwt: true } if !claim.is_empty() => {
                        Ok(Var::Claim(claim.to_string()))
                    }
                    Context::Headers { jwt: true } => Err("{jwt.} needs a claim name".into()),
                    _ => Err(format!(
                        "{{{name}}} needs a verified token: only on a route with auth = \"jwt\""
                    )),
                };
            }
            let Some((groups, names)) = captures else {
                return Err(format!("unknown variable {{{name}}}; valid: {NAMES}"));
            };
            if let Ok(index) = name.parse::<usize>() {
                if index > *groups {
                    return Err(format!(
                        "{{{index}}}: the path_regex has only {groups} capture group(s)"
                    ));
                }
                Var::Capture(index)
            } else if names.iter().any(|n| n == name) {
                Var::Named(name.to_string())
            } else {
                return Err(format!("unknown variable {{{name}}}; valid: {NAMES}"));
            }
        }
    };
    Ok(var)
}

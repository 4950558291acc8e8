//! One request's part in a trace: its context (`RequestTrace`: the trace it belongs to, the
//! proxy's span, whether it is sampled, the `tracestate` to pass on) and, when its spans are
//! recorded or it shows `Server-Timing`, its `Timeline` (the phases and the upstream attempts,
//! as instants). The spans are made from the timeline once, when the request ends
//! (`spans`), so a request that is not sampled pays for none of them.

use http::HeaderValue;
use scalelab_common::trace::export::{Attribute, Kind, SpanRecord};
use scalelab_common::trace::{self as w3c, SpanId, TraceId};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// The trace context of one request.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    pub trace_id: TraceId,
    /// The proxy's server span: the parent of its phases and attempts.
    pub span_id: SpanId,
    /// The caller's span, from a valid `traceparent`.
    pub remote_parent: Option<SpanId>,
    pub sampled: bool,
    /// The caller's `tracestate`, passed on only when it and `traceparent` were valid.
    pub tracestate: Option<HeaderValue>,
}

impl RequestTrace {
    /// Reads the request's `traceparent` (exactly one, valid) and `tracestate`; otherwise
    /// starts a new trace, sampled at `sample_ratio`. A valid parent's sampled flag decides
    /// alone (parent-based): kept at ratio 0, left out at ratio 1.
    pub fn start(headers: &http::HeaderMap, sample_ratio: f64) -> RequestTrace {
        let mut sent = headers.get_all(w3c::TRACEPARENT).iter();
        let parent = match (sent.next(), sent.next()) {
            (Some(value), None) => w3c::parse_traceparent(value.as_bytes()),
            _ => None,
        };
        let span_id = SpanId::random();
        match parent {
            Some(parent) => {
                let mut states = headers.get_all(w3c::TRACESTATE).iter();
                let tracestate = match (states.next(), states.next()) {
                    (Some(value), None) if w3c::valid_tracestate(value.as_bytes()) => {
                        Some(value.clone())
                    }
                    _ => None,
                };
                RequestTrace {
                    trace_id: parent.trace_id,
                    span_id,
                    remote_parent: Some(parent.span_id),
                    sampled: parent.sampled,
                    tracestate,
                }
            }
            None => {
                let trace_id = TraceId::random();
                RequestTrace {
                    trace_id,
                    span_id,
                    remote_parent: None,
                    sampled: w3c::sampled_by_ratio(trace_id, sample_ratio),
                    tracestate: None,
                }
            }
        }
    }

    /// The `traceparent` sent upstream, naming `parent` (the attempt's span when sampled).
    pub fn traceparent(&self, parent: SpanId) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&w3c::format_traceparent(
            self.trace_id,
            parent,
            self.sampled,
        ))
        .ok()
    }
}

/// A phase of the request that took time (auth, rate limits, cache lookup, queue wait).
#[derive(Debug, Clone)]
pub struct Phase {
    /// The span's name and the `Server-Timing` metric's.
    pub name: &'static str,
    pub start: Instant,
    pub end: Instant,
    /// The cache's result (`hit`, `miss`, ...), shown as the metric's `desc`.
    pub detail: Option<&'static str>,
}

/// One try of an upstream server.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub span_id: SpanId,
    pub upstream: String,
    pub server: SocketAddr,
    pub start: Instant,
    /// When the response head arrived.
    pub first_byte: Option<Instant>,
    pub end: Option<Instant>,
    pub status: Option<u16>,
    /// Pingora's name of the failure that ended the try.
    pub error: Option<String>,
}

/// What a request did when, recorded only when it is sampled or shows `Server-Timing`.
#[derive(Debug)]
pub struct Timeline {
    /// The request's start, and the wall-clock time it corresponds to.
    anchor: Instant,
    wall: SystemTime,
    pub phases: Vec<Phase>,
    pub attempts: Vec<Attempt>,
}

impl Timeline {
    pub fn new(started: Instant) -> Timeline {
        Timeline {
            anchor: started,
            wall: SystemTime::now()
                .checked_sub(started.elapsed())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            phases: Vec::new(),
            attempts: Vec::new(),
        }
    }

    /// A phase from `start` to now.
    pub fn phase(&mut self, name: &'static str, start: Instant, detail: Option<&'static str>) {
        self.phases.push(Phase {
            name,
            start,
            end: Instant::now(),
            detail,
        });
    }

    /// A new try of `server`; returns its span id (the parent the server sees).
    pub fn attempt(&mut self, upstream: &str, server: SocketAddr) -> SpanId {
        let span_id = SpanId::random();
        self.attempts.push(Attempt {
            span_id,
            upstream: upstream.to_string(),
            server,
            start: Instant::now(),
            first_byte: None,
            end: None,
            status: None,
            error: None,
        });
        span_id
    }

    /// The current try got its response head.
    pub fn responded(&mut self, status: u16) {
        if let Some(attempt) = self.attempts.last_mut() {
            attempt.first_byte = Some(Instant::now());
            attempt.status = Some(status);
        }
    }

    /// The current try failed with `error` (a retry may follow).
    pub fn failed(&mut self, error: &str) {
        if let Some(attempt) = self.attempts.last_mut().filter(|a| a.end.is_none()) {
            attempt.end = Some(Instant::now());
            attempt.error = Some(error.to_string());
        }
    }

    fn at(&self, instant: Instant) -> SystemTime {
        self.wall + instant.saturating_duration_since(self.anchor)
    }

    /// `Server-Timing` (W3C): the route, then each phase and the upstream's time to its
    /// response head, in milliseconds.
    pub fn server_timing(&self, route: &str) -> Option<HeaderValue> {
        let mut text = String::with_capacity(128);
        let _ = write!(text, "route;desc=\"{}\"", quoted(route));
        for phase in &self.phases {
            let _ = write!(text, ", {}", phase.name);
            if let Some(detail) = phase.detail {
                let _ = write!(text, ";desc=\"{detail}\"");
            }
            let _ = write!(text, ";dur={}", millis(phase.end - phase.start));
        }
        if let Some(attempt) = self.attempts.last() {
            let end = attempt
                .first_byte
                .or(attempt.end)
                .unwrap_or_else(Instant::now);
            let _ = write!(
                text,
                ", upstream;dur={}",
                millis(end.saturating_duration_since(attempt.start))
            );
        }
        HeaderValue::from_str(&text).ok()
    }
}

/// What the server span says about the request, gathered by the service at its end.
#[derive(Debug, Clone, Copy)]
pub struct ServerFacts<'a> {
    pub method: &'a str,
    pub route: &'a str,
    /// The matched route's path prefix (`http.route`).
    pub route_path: Option<&'a str>,
    pub path: &'a str,
    pub scheme: &'static str,
    pub host: Option<&'a str>,
    pub protocol: &'static str,
    pub status: u16,
    pub client: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: &'a str,
    pub cache: &'a str,
    pub error: Option<&'a str>,
}

/// The request's spans: the server span, its phases and one client span per attempt.
pub fn spans(
    trace: &RequestTrace,
    timeline: &Timeline,
    facts: &ServerFacts<'_>,
) -> Vec<SpanRecord> {
    let end = Instant::now();
    let mut out = Vec::with_capacity(1 + timeline.phases.len() + timeline.attempts.len());
    let text = |key: &'static str, value: &str| Attribute::new(key, value.to_string());
    let mut attributes = vec![
        text("http.request.method", facts.method),
        text("url.path", facts.path),
        text("url.scheme", facts.scheme),
        text("network.protocol.version", facts.protocol),
        Attribute::new("http.response.status_code", i64::from(facts.status)),
        text("scalelab.route", facts.route),
        text("scalelab.request_id", facts.request_id),
        text("scalelab.cache", facts.cache),
    ];
    if let Some(route) = facts.route_path {
        attributes.push(text("http.route", route));
    }
    if let Some(host) = facts.host {
        let (name, port) = split_host(host);
        attributes.push(text("server.address", name));
        if let Some(port) = port {
            attributes.push(Attribute::new("server.port", i64::from(port)));
        }
    }
    if let Some(client) = facts.client {
        attributes.push(text("client.address", client));
    }
    if let Some(agent) = facts.user_agent {
        attributes.push(text("user_agent.original", agent));
    }
    // A server span is an error for a 5xx only: a 4xx is the client's (semantic conventions).
    let error = if facts.status >= 500 || facts.status == 0 {
        let kind: String = facts
            .error
            .map_or_else(|| facts.status.to_string(), str::to_string);
        attributes.push(Attribute::new("error.type", kind.clone()));
        Some(Cow::Owned(kind))
    } else {
        None
    };
    let name = match facts.route_path {
        Some(route) => format!("{} {route}", facts.method),
        None => facts.method.to_string(),
    };
    out.push(SpanRecord {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        parent: trace.remote_parent,
        parent_remote: trace.remote_parent.is_some(),
        name: Cow::Owned(name),
        kind: Kind::Server,
        start: timeline.wall,
        end: timeline.at(end),
        attributes,
        error,
    });
    for phase in &timeline.phases {
        let mut attributes = Vec::new();
        if let Some(detail) = phase.detail {
            attributes.push(Attribute::new("scalelab.cache.result", detail));
        }
        out.push(SpanRecord {
            trace_id: trace.trace_id,
            span_id: SpanId::random(),
            parent: Some(trace.span_id),
            parent_remote: false,
            name: Cow::Borrowed(phase.name),
            kind: Kind::Internal,
            start: timeline.at(phase.start),
            end: timeline.at(phase.end),
            attributes,
            error: None,
        });
    }
    for (index, attempt) in timeline.attempts.iter().enumerate() {
        let mut attributes = vec![
            text("http.request.method", facts.method),
            text("server.address", &attempt.server.ip().to_string()),
            Attribute::new("server.port", i64::from(attempt.server.port())),
            text("scalelab.upstream", &attempt.upstream),
        ];
        if index > 0 {
            attributes.push(Attribute::new("http.request.resend_count", index as i64));
        }
        if let Some(status) = attempt.status {
            attributes.push(Attribute::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(first_byte) = attempt.first_byte {
            let ttfb = first_byte.saturating_duration_since(attempt.start);
            attributes.push(Attribute::new(
                "scalelab.time_to_first_byte_ms",
                ttfb.as_secs_f64() * 1000.0,
            ));
        }
        let error: Option<Cow<'static, str>> = match (&attempt.error, attempt.status) {
            (Some(error), _) => Some(Cow::Owned(error.clone())),
            (None, Some(status)) if status >= 500 => Some(Cow::Owned(status.to_string())),
            _ => None,
        };
        if let Some(error) = &error {
            attributes.push(Attribute::new("error.type", error.to_string()));
        }
        out.push(SpanRecord {
            trace_id: trace.trace_id,
            span_id: attempt.span_id,
            parent: Some(trace.span_id),
            parent_remote: false,
            name: Cow::Owned(facts.method.to_string()),
            kind: Kind::Client,
            start: timeline.at(attempt.start),
            end: timeline.at(attempt.end.unwrap_or(end)),
            attributes,
            error,
        });
    }
    out
}

/// `host[:port]` split; a bracketed IPv6 literal keeps its brackets off.
fn split_host(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((ip, tail)) = rest.split_once(']') {
            return (ip, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, port.parse().ok()),
        _ => (host, None),
    }
}

/// Milliseconds with up to three decimals.
fn millis(duration: Duration) -> String {
    let micros = duration.as_micros();
    format!("{}.{:03}", micros / 1000, micros % 1000)
}

/// A route name inside a quoted string: quotes and backslashes escaped.
fn quoted(text: &str) -> Cow<'_, str> {
    if text.contains(['"', '\\']) {
        Cow::Owned(text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        Cow::Borrowed(text)
    }
}

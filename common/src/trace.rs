//! W3C Trace Context (`traceparent`, `tracestate`) as the proxy and the lab's services read and
//! write it, and the ids of new traces and spans. Pure: no IO, no allocation but the ids'
//! random draw, so the proxy can parse every request's header when tracing is on.
//!
//! `export` (feature `otlp`) sends finished spans to an OTLP/HTTP collector; `received`
//! (feature `otlp-receive`) decodes what a collector receives into flat spans.

#[cfg(feature = "otlp")]
pub mod export;
#[cfg(feature = "otlp-receive")]
pub mod received;
#[cfg(test)]
mod tests;

/// The header names, lowercase as HTTP/2 sends them.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The 16-byte id of a trace; never all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// The 8-byte id of a span; never all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random id (fastrand's per-thread generator: no system call per request).
    pub fn random() -> TraceId {
        let high = fastrand::u64(1..);
        let low = fastrand::u64(..);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        TraceId(bytes)
    }

    /// Lowercase hex, as in `traceparent` and in the access log.
    pub fn hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex_into(&self.0, &mut out);
        out
    }
}

impl SpanId {
    pub fn random() -> SpanId {
        SpanId(fastrand::u64(1..).to_be_bytes())
    }

    pub fn hex(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        hex_into(&self.0, &mut out);
        out
    }
}

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).unwrap_or("-"))
    }
}

impl std::fmt::Display for SpanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).unwrap_or("-"))
    }
}

/// What a valid `traceparent` says: the caller's trace, its span (our parent) and whether the
/// caller sampled the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

/// Parses a `traceparent` value by the W3C rules: version 00 is exactly 55 characters; a later
/// version may carry more after a `-`; version `ff`, uppercase hex, and all-zero ids are invalid.
/// `None` for anything invalid: the caller then starts a new trace and never forwards it as sent.
pub fn parse_traceparent(value: &[u8]) -> Option<Parent> {
    if value.len() < 55 {
        return None;
    }
    let version = hex_byte(&value[0..2])?;
    if version == 0xff || (version == 0 && value.len() != 55) {
        return None;
    }
    if value.len() > 55 && value[55] != b'-' {
        return None;
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let mut trace = [0u8; 16];
    for (i, byte) in trace.iter_mut().enumerate() {
        *byte = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
    }
    let mut span = [0u8; 8];
    for (i, byte) in span.iter_mut().enumerate() {
        *byte = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&value[53..55])?;
    if trace == [0; 16] || span == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id: TraceId(trace),
        span_id: SpanId(span),
        sampled: flags & 1 == 1,
    })
}

/// `00-<trace>-<span>-<flags>`, on the stack.
pub fn format_traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> [u8; 55] {
    let mut out = [b'-'; 55];
    out[0] = b'0';
    out[1] = b'0';
    hex_into(&trace_id.0, &mut out[3..35]);
    hex_into(&span_id.0, &mut out[36..52]);
    out[53] = b'0';
    out[54] = if sampled { b'1' } else { b'0' };
    out
}

/// Whether a `tracestate` value may be passed on: at most 512 bytes and 32 list members, each
/// `key=value` with the spec's characters. An invalid one is dropped, not repaired.
pub fn valid_tracestate(value: &[u8]) -> bool {
    if value.len() > 512 {
        return false;
    }
    let mut members = 0;
    for member in value.split(|&b| b == b',') {
        let member = trim(member);
        if member.is_empty() {
            continue;
        }
        members += 1;
        let Some(eq) = member.iter().position(|&b| b == b'=') else {
            return false;
        };
        let (key, value) = (&member[..eq], &member[eq + 1..]);
        let key_ok = !key.is_empty()
            && key.len() <= 256
            && key.iter().all(|&b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
            });
        let value_ok = !value.is_empty()
            && value.len() <= 256
            && value
                .iter()
                .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
            && value.last() != Some(&b' ');
        if !key_ok || !value_ok {
            return false;
        }
    }
    members <= 32
}

/// The ratio sampler of OpenTelemetry's `TraceIdRatioBased`: the trace id's last 8 bytes (its
/// random part) below `ratio` of the range. Every service that sees the same trace id and ratio
/// decides alike.
pub fn sampled_by_ratio(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id.0[8..]);
    let value = u64::from_be_bytes(low) >> 1;
    // `as` saturates, and `ratio` is in (0, 1) here.
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    value < bound
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (i, byte) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
}

/// Two lowercase hex digits (the spec forbids uppercase).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

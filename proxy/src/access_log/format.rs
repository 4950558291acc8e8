//! One access-log line, written straight into the batch's byte buffer: numbers with `itoa`,
//! the timestamp from a per-thread copy remade once a second, strings escaped byte by byte. No
//! `String` is built for a line, so formatting one costs no allocation (the buffer's capacity is
//! reserved per batch).

use crate::config::AccessLogFormat;
use std::cell::RefCell;
use std::time::{Duration, SystemTime};

/// What one finished request leaves in the log; borrowed from the request, so building one
/// copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Since the Unix epoch, when the request ended.
    pub time: Duration,
    /// The client's IP as text (empty when unknown).
    pub client: &'a [u8],
    pub method: &'a str,
    pub path: &'a [u8],
    pub protocol: &'a str,
    /// 0 when the client left before any answer.
    pub status: u16,
    pub body_bytes: usize,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub route: &'a str,
    pub upstream: Option<&'a str>,
    /// The path sent upstream when a rule (`strip_prefix`, `rewrite`, `add_prefix`) changed
    /// the client's; `path` stays what the client asked for.
    pub upstream_path: Option<&'a [u8]>,
    /// The server's address as text (preformatted per server, so no line formats it).
    pub server: Option<&'a [u8]>,
    pub strategy: &'a str,
    pub attempts: u32,
    /// `HIT`, `STALE`, `MISS`, ... or `-` when the route does not cache.
    pub cache: &'a str,
    pub duration: Duration,
    pub request_id: &'a [u8],
    /// The W3C trace id (32 hex digits) when `[tracing]` is configured.
    pub trace_id: Option<&'a [u8]>,
    /// Pingora's name of the error that ended the request, if one did.
    pub error: Option<&'a str>,
}

/// Appends `line` and its newline to `out` in `format`.
pub fn write_line(format: AccessLogFormat, line: &Line<'_>, out: &mut Vec<u8>) {
    match format {
        AccessLogFormat::Text => write_text(line, out),
        AccessLogFormat::Json => write_json(line, out),
    }
}

/// nginx's `combined` format (`$remote_addr - - [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`), then scalelab's fields as `key=value`.
/// Free text is quoted and escaped as nginx does (`\xHH`), so one line is always one record.
fn write_text(line: &Line<'_>, out: &mut Vec<u8>) {
    text_or_dash(out, Some(line.client).filter(|c| !c.is_empty()));
    out.extend_from_slice(b" - - [");
    with_clock(line.time, |clock| out.extend_from_slice(&clock.local));
    out.extend_from_slice(b"] \"");
    escape_text(out, line.method.as_bytes());
    out.push(b' ');
    escape_text(out, line.path);
    out.push(b' ');
    escape_text(out, line.protocol.as_bytes());
    out.extend_from_slice(b"\" ");
    integer(out, line.status);
    out.push(b' ');
    integer(out, line.body_bytes);
    out.extend_from_slice(b" \"");
    text_or_dash(out, line.referer);
    out.extend_from_slice(b"\" \"");
    text_or_dash(out, line.user_agent);
    out.extend_from_slice(b"\" route=\"");
    escape_text(out, line.route.as_bytes());
    out.extend_from_slice(b"\" upstream=\"");
    text_or_dash(out, line.upstream.map(str::as_bytes));
    out.extend_from_slice(b"\" upstream_path=");
    match line.upstream_path {
        Some(path) => {
            out.push(b'"');
            escape_text(out, path);
            out.push(b'"');
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" server=");
    text_or_dash(out, line.server);
    out.extend_from_slice(b" strategy=");
    escape_text(out, line.strategy.as_bytes());
    out.extend_from_slice(b" attempts=");
    integer(out, line.attempts);
    out.extend_from_slice(b" cache=");
    escape_text(out, line.cache.as_bytes());
    out.extend_from_slice(b" duration_ms=");
    milliseconds(out, line.duration);
    out.extend_from_slice(b" request_id=\"");
    escape_text(out, line.request_id);
    out.extend_from_slice(b"\" trace_id=");
    text_or_dash(out, line.trace_id);
    out.extend_from_slice(b" error=");
    text_or_dash(out, line.error.map(str::as_bytes));
    out.push(b'\n');
}

/// One JSON object; the keys are those of the `tracing` line this log replaced, plus the
/// combined format's.
fn write_json(line: &Line<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    with_clock(line.time, |clock| out.extend_from_slice(&clock.iso));
    out.push(b'.');
    padded(out, line.time.subsec_millis(), 3);
    out.extend_from_slice(b"Z\",\"client\":");
    json_string(out, Some(line.client).filter(|c| !c.is_empty()));
    out.extend_from_slice(b",\"method\":");
    json_string(out, Some(line.method.as_bytes()));
    out.extend_from_slice(b",\"path\":");
    json_string(out, Some(line.path));
    out.extend_from_slice(b",\"protocol\":");
    json_string(out, Some(line.protocol.as_bytes()));
    out.extend_from_slice(b",\"status\":");
    integer(out, line.status);
    out.extend_from_slice(b",\"bytes\":");
    integer(out, line.body_bytes);
    out.extend_from_slice(b",\"referer\":");
    json_string(out, line.referer);
    out.extend_from_slice(b",\"user_agent\":");
    json_string(out, line.user_agent);
    out.extend_from_slice(b",\"route\":");
    json_string(out, Some(line.route.as_bytes()));
    out.extend_from_slice(b",\"upstream\":");
    json_string(out, line.upstream.map(str::as_bytes));
    out.extend_from_slice(b",\"upstream_path\":");
    json_string(out, line.upstream_path);
    out.extend_from_slice(b",\"server\":");
    json_string(out, line.server);
    out.extend_from_slice(b",\"strategy\":");
    json_string(out, Some(line.strategy.as_bytes()));
    out.extend_from_slice(b",\"attempts\":");
    integer(out, line.attempts);
    out.extend_from_slice(b",\"cache\":");
    json_string(out, Some(line.cache.as_bytes()));
    out.extend_from_slice(b",\"duration_ms\":");
    milliseconds(out, line.duration);
    out.extend_from_slice(b",\"request_id\":");
    json_string(out, Some(line.request_id));
    out.extend_from_slice(b",\"trace_id\":");
    json_string(out, line.trace_id);
    out.extend_from_slice(b",\"error\":");
    json_string(out, line.error.map(str::as_bytes));
    out.extend_from_slice(b"}\n");
}

fn integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `n` with leading zeros to `width` digits.
fn padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(n);
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits.as_bytes());
}

/// Milliseconds with three decimals (microsecond resolution), as a JSON number too.
fn milliseconds(out: &mut Vec<u8>, duration: Duration) {
    let micros = duration.as_micros();
    integer(out, micros / 1000);
    out.push(b'.');
    // The remainder is below 1000, so it fits a u32.
    padded(out, (micros % 1000) as u32, 3);
}

fn text_or_dash(out: &mut Vec<u8>, text: Option<&[u8]>) {
    match text {
        Some(text) => escape_text(out, text),
        None => out.push(b'-'),
    }
}

/// nginx's escaping of logged variables: `"`, `\`, control bytes, DEL and bytes above ASCII
/// become `\xHH`, so a header cannot end a quoted field or forge a line.
pub(super) fn escape_text(out: &mut Vec<u8>, text: &[u8]) {
    if plain(text) {
        out.extend_from_slice(text);
        return;
    }
    let mut start = 0;
    for (i, &byte) in text.iter().enumerate() {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            out.extend_from_slice(&text[start..i]);
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
            start = i + 1;
        }
    }
    out.extend_from_slice(&text[start..]);
}

/// A JSON string, or `null`. Bytes above ASCII are written as `\u00HH` (each byte as its
/// Latin-1 character): header values need not be UTF-8, and the line must stay valid JSON.
pub(super) fn json_string(out: &mut Vec<u8>, text: Option<&[u8]>) {
    let Some(text) = text else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'"');
    if plain(text) {
        out.extend_from_slice(text);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &byte) in text.iter().enumerate() {
        let short = match byte {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            _ => None,
        };
        if short.is_none() && (0x20..0x7f).contains(&byte) {
            continue;
        }
        out.extend_from_slice(&text[start..i]);
        match short {
            Some(escaped) => out.extend_from_slice(&[b'\\', escaped]),
            None => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'"');
}

/// Whether `text` needs no escaping in either format: printable ASCII without `"` or `\`.
/// Most fields are, so they are checked in one branch-free pass (which the compiler
/// vectorises) and copied whole.
fn plain(text: &[u8]) -> bool {
    text.iter().fold(true, |plain, &byte| {
        plain & (byte != b'"') & (byte != b'\\') & (0x20..0x7f).contains(&byte)
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The second a thread last formatted, in both layouts.
struct Clock {
    second: u64,
    /// nginx's `$time_local` in UTC: `01/Dec/2026:13:17:11 +0000`.
    local: Vec<u8>,
    /// ISO 8601 without the fraction: `2026-12-01T13:17:11`.
    iso: Vec<u8>,
}

thread_local! {
    static CLOCK: RefCell<Option<Clock>> = const { RefCell::new(None) };
}

/// Runs `use_clock` with the formatted second of `time`, remade only when the second changed.
fn with_clock(time: Duration, use_clock: impl FnOnce(&Clock)) {
    CLOCK.with(|cell| {
        let mut slot = cell.borrow_mut();
        let second = time.as_secs();
        if slot.as_ref().is_none_or(|clock| clock.second != second) {
            *slot = Some(Clock::at(second));
        }
        if let Some(clock) = slot.as_ref() {
            use_clock(clock);
        }
    });
}

impl Clock {
    /// Both layouts, from `httpdate`'s fixed-width IMF-fixdate (`Tue, 01 Dec 2026 13:17:11 GMT`),
    /// so no calendar arithmetic is written here.
    fn at(second: u64) -> Clock {
        let date = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(second));
        let date = date.as_bytes();
        if date.len() != 29 {
            // Not reachable (the format is fixed width), but a log line is not worth a panic.
            return Clock {
                second,
                local: b"-".to_vec(),
                iso: b"-".to_vec(),
            };
        }
        let (day, month, year, time) = (&date[5..7], &date[8..11], &date[12..16], &date[17..25]);
        let month_number = MONTHS
            .iter()
            .position(|name| name.as_bytes() == month)
            .map_or(1, |i| i + 1);
        let mut local = Vec::with_capacity(26);
        for part in [day, b"/", month, b"/", year, b":", time, b" +0000"] {
            local.extend_from_slice(part);
        }
        let mut iso = Vec::with_capacity(19);
        iso.extend_from_slice(year);
        iso.push(b'-');
        padded(&mut iso, month_number as u32, 2);
        for part in [b"-", day, b"T", time] {
            iso.extend_from_slice(part);
        }
        Clock { second, local, iso }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

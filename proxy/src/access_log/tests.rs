use super::format::{escape_text, json_string, write_line, Line};
use crate::config::AccessLogFormat;
use std::time::Duration;

fn line() -> Line<'static> {
    Line {
        // 2026-12-01 13:17:11.042 UTC
        time: Duration::from_millis(1_796_131_031_042),
        client: b"127.0.0.1",
        method: "GET",
        path: b"/api/x",
        protocol: "HTTP/1.1",
        status: 200,
        body_bytes: 100,
        referer: None,
        user_agent: Some(b"curl/8.5"),
        route: "api",
        upstream: Some("g"),
        upstream_path: None,
        server: Some(b"10.0.0.1:5000"),
        strategy: "round_robin",
        attempts: 1,
        cache: "-",
        duration: Duration::from_micros(1_234),
        request_id: b"r-1",
        trace_id: None,
        error: None,
    }
}

fn render(format: AccessLogFormat, line: &Line<'_>) -> String {
    let mut out = Vec::new();
    write_line(format, line, &mut out);
    String::from_utf8(out).expect("ASCII")
}

#[test]
fn text_is_combined_then_scalelab_fields() {
    assert_eq!(
        render(AccessLogFormat::Text, &line()),
        "127.0.0.1 - - [01/Dec/2026:13:17:11 +0000] \"GET /api/x HTTP/1.1\" 200 100 \"-\" \
         \"curl/8.5\" route=\"api\" upstream=\"g\" upstream_path=- server=10.0.0.1:5000 \
         strategy=round_robin attempts=1 cache=- duration_ms=1.234 request_id=\"r-1\" trace_id=- error=-\n"
    );
}

#[test]
fn text_of_a_request_nothing_answered() {
    let line = Line {
        client: b"",
        status: 0,
        upstream: None,
        upstream_path: None,
        server: None,
        duration: Duration::from_micros(5),
        error: Some("ConnectionClosed"),
        ..line()
    };
    let text = render(AccessLogFormat::Text, &line);
    assert!(text.starts_with("- - - ["), "{text}");
    assert!(text.contains("\" 0 100 "), "{text}");
    assert!(
        text.ends_with(
            "upstream=\"-\" upstream_path=- server=- strategy=round_robin attempts=1 cache=- \
             duration_ms=0.005 request_id=\"r-1\" trace_id=- error=ConnectionClosed\n"
        ),
        "{text}"
    );
}

#[test]
fn json_has_every_field_and_parses() {
    let text = render(AccessLogFormat::Json, &line());
    assert!(text.ends_with("}\n"));
    let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        value,
        serde_json::json!({
            "time": "2026-12-01T13:17:11.042Z", "client": "127.0.0.1", "method": "GET",
            "path": "/api/x", "protocol": "HTTP/1.1", "status": 200, "bytes": 100,
            "referer": null, "user_agent": "curl/8.5", "route": "api", "upstream": "g", "upstream_path": null,
            "server": "10.0.0.1:5000", "strategy": "round_robin", "attempts": 1, "cache": "-",
            "duration_ms": 1.234, "request_id": "r-1", "trace_id": null, "error": null
        })
    );
}

#[test]
fn text_escapes_quotes_backslashes_control_and_high_bytes() {
    let cases: [(&[u8], &str); 6] = [
        (b"plain /a?b=c", "plain /a?b=c"),
        (b"say \"hi\"", "say \\x22hi\\x22"),
        (b"back\\slash", "back\\x5cslash"),
        (b"line\nbreak\r\ttab", "line\\x0abreak\\x0d\\x09tab"),
        (b"del\x7f nul\x00", "del\\x7f nul\\x00"),
        (b"caf\xc3\xa9 \xff", "caf\\xc3\\xa9 \\xff"),
    ];
    for (input, expected) in cases {
        let mut out = Vec::new();
        escape_text(&mut out, input);
        assert_eq!(String::from_utf8(out).expect("ASCII"), expected);
    }
}

#[test]
fn json_escapes_quotes_backslashes_control_and_high_bytes() {
    let cases: [(&[u8], &str); 6] = [
        (b"plain", "\"plain\""),
        (b"say \"hi\"", "\"say \\\"hi\\\"\""),
        (b"back\\slash", "\"back\\\\slash\""),
        (b"a\nb\rc\td", "\"a\\nb\\rc\\td\""),
        (
            b"nul\x00 esc\x1b del\x7f",
            "\"nul\\u0000 esc\\u001b del\\u007f\"",
        ),
        (b"\xff\xc3\xa9", "\"\\u00ff\\u00c3\\u00a9\""),
    ];
    for (input, expected) in cases {
        let mut out = Vec::new();
        json_string(&mut out, Some(input));
        let text = String::from_utf8(out).expect("ASCII");
        assert_eq!(text, expected);
        // Whatever the bytes, the result is one valid JSON string.
        assert!(serde_json::from_str::<String>(&text).is_ok(), "{text}");
    }
}

#[test]
fn a_forged_line_stays_one_line_in_both_formats() {
    let forged = Line {
        user_agent: Some(b"x\" 200 0\n127.0.0.1 - - [forged]"),
        request_id: b"\"}\n{\"status\":500",
        ..line()
    };
    for format in [AccessLogFormat::Text, AccessLogFormat::Json] {
        let text = render(format, &forged);
        assert_eq!(text.matches('\n').count(), 1, "{text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&render(AccessLogFormat::Json, &forged)).expect("valid JSON");
    assert_eq!(json["status"], 200);
    assert_eq!(json["request_id"], "\"}\n{\"status\":500");
}

#[test]
fn the_timestamp_follows_the_second() {
    let first = render(AccessLogFormat::Text, &line());
    let later = Line {
        time: Duration::from_millis(1_796_131_031_042 + 86_400_000 * 31),
        ..line()
    };
    assert!(first.contains("[01/Dec/2026:13:17:11 +0000]"));
    assert!(render(AccessLogFormat::Text, &later).contains("[01/Jan/2027:13:17:11 +0000]"));
    let json: serde_json::Value =
        serde_json::from_str(&render(AccessLogFormat::Json, &later)).expect("valid JSON");
    assert_eq!(json["time"], "2027-01-01T13:17:11.042Z");
}

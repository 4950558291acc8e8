use super::*;

fn head(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    map
}

/// A request head as (name, value) pairs, the config, and the expected verdict.
type Case<'a> = (Version, Vec<(&'a str, &'a str)>, Allowed, Upgrade);

const OPEN: Allowed = Allowed {
    route: true,
    h2c: false,
};

#[test]
fn classify_table() {
    use Upgrade::*;
    let closed = Allowed {
        route: false,
        h2c: false,
    };
    let h2c = Allowed {
        route: true,
        h2c: true,
    };
    let ws = [("connection", "Upgrade"), ("upgrade", "websocket")];
    let cases: Vec<Case> = vec![
        (Version::HTTP_11, vec![], OPEN, None),
        (
            Version::HTTP_11,
            vec![("connection", "upgrade")],
            OPEN,
            None,
        ),
        (Version::HTTP_11, ws.to_vec(), OPEN, Forward),
        (
            Version::HTTP_11,
            vec![
                ("connection", "keep-alive, UPGRADE"),
                ("upgrade", "websocket"),
            ],
            OPEN,
            Forward,
        ),
        // Other protocols pass too: the server decides.
        (
            Version::HTTP_11,
            vec![("connection", "upgrade"), ("upgrade", "foo/2, bar")],
            OPEN,
            Forward,
        ),
        (Version::HTTP_11, ws.to_vec(), closed, Refuse),
        // Not a valid upgrade: no `upgrade` option, HTTP/1.0, an empty field.
        (
            Version::HTTP_11,
            vec![("upgrade", "websocket")],
            OPEN,
            Strip,
        ),
        (
            Version::HTTP_11,
            vec![("upgrade", "websocket")],
            closed,
            Strip,
        ),
        (Version::HTTP_10, ws.to_vec(), OPEN, Strip),
        (
            Version::HTTP_11,
            vec![("connection", "upgrade"), ("upgrade", "")],
            OPEN,
            Strip,
        ),
        // h2c is removed unless configured; the route's opt-out does not refuse what is stripped.
        (
            Version::HTTP_11,
            vec![
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
            ],
            OPEN,
            Strip,
        ),
        (
            Version::HTTP_11,
            vec![("connection", "upgrade"), ("upgrade", "H2C")],
            closed,
            Strip,
        ),
        (
            Version::HTTP_11,
            vec![("connection", "upgrade"), ("upgrade", "h2c, websocket")],
            OPEN,
            ForwardOnly("websocket".to_string()),
        ),
        (
            Version::HTTP_11,
            vec![("connection", "upgrade"), ("upgrade", "h2c")],
            h2c,
            Forward,
        ),
    ];
    for (version, pairs, allowed, expected) in cases {
        assert_eq!(
            classify(version, &head(&pairs), allowed),
            expected,
            "{version:?} {pairs:?} {allowed:?}"
        );
    }
}

#[test]
fn connection_without_table() {
    let cases = [
        ("Upgrade", None),
        ("upgrade, HTTP2-Settings", None),
        ("keep-alive, Upgrade", Some("keep-alive")),
        ("close,upgrade,x-custom", Some("close, x-custom")),
        ("", None),
    ];
    for (value, expected) in cases {
        assert_eq!(
            connection_without(value, &UPGRADE_FIELDS).as_deref(),
            expected,
            "{value}"
        );
    }
}

#[test]
fn nominated_fields_table() {
    let cases: [(&str, &[&str]); 4] = [
        ("Upgrade", &[]),
        ("keep-alive, Upgrade, X-Secret", &["x-secret"]),
        ("upgrade, HTTP2-Settings, close, Host", &[]),
        ("x-a,,  X-B ", &["x-a", "x-b"]),
    ];
    for (value, expected) in cases {
        assert_eq!(nominated_fields(value), expected, "{value}");
    }
    assert_eq!(upstream_connection(false), "Upgrade");
    assert_eq!(upstream_connection(true), "Upgrade, HTTP2-Settings");
}

use super::*;

fn vars<'a>(
    captures: Option<&'a regex::Captures<'a>>,
    claims: Option<&'a serde_json::Value>,
) -> Vars<'a> {
    Vars {
        scheme: "http",
        host: "example.com",
        path: "/old/a/b",
        query: Some("x=1"),
        request_id: "rid-1",
        client_ip: "10.0.0.9",
        route: "legacy",
        upstream_server: "127.0.0.1:5000",
        captures,
        claims,
    }
}

#[test]
fn templates_render_request_values() {
    let cases = [
        (
            "https://{host}{path_and_query}",
            "https://example.com/old/a/b?x=1",
        ),
        (
            "{scheme}://{host}{path}?{query}",
            "http://example.com/old/a/b?x=1",
        ),
        (
            "id={request_id} from {client_ip} on {route}",
            "id=rid-1 from 10.0.0.9 on legacy",
        ),
        ("{{literal}} braces", "{literal} braces"),
        ("", ""),
    ];
    for (source, expected) in cases {
        let template = Template::parse(source, Context::Request, None).expect(source);
        assert_eq!(template.render(&vars(None, None)), expected, "{source}");
    }
    let no_query = Vars {
        query: None,
        ..vars(None, None)
    };
    let template = Template::parse("{path_and_query}|{query}", Context::Request, None).unwrap();
    assert_eq!(template.render(&no_query), "/old/a/b|");
}

#[test]
fn captures_and_claims_render_where_allowed() {
    let regex = regex::Regex::new("^/old/(?P<first>[^/]+)/(.*)$").unwrap();
    let captures = regex.captures("/old/a/b").unwrap();
    let names = vec!["first".to_string()];
    let template = Template::parse(
        "/new/{first}/{2}/{1}",
        Context::Request,
        Some((2, names.clone())),
    )
    .unwrap();
    assert_eq!(template.render(&vars(Some(&captures), None)), "/new/a/b/a");

    let claims = serde_json::json!({"tenant": "acme", "level": 3});
    let template = Template::parse(
        "{jwt.tenant}-{jwt.level}-{jwt.missing}-{upstream_server}",
        Context::Headers { jwt: true },
        None,
    )
    .unwrap();
    assert_eq!(
        template.render(&vars(None, Some(&claims))),
        "acme-3--127.0.0.1:5000"
    );
    assert_eq!(
        Template::parse("fixed", Context::Request, None)
            .unwrap()
            .literal(),
        Some("fixed")
    );
    assert_eq!(
        Template::parse("{host}", Context::Request, None)
            .unwrap()
            .literal(),
        None
    );
}

#[test]
fn bad_templates_say_why() {
    type Case = (
        &'static str,
        Context,
        Option<(usize, Vec<String>)>,
        &'static str,
    );
    let cases: [Case; 7] = [
        ("{hots}", Context::Request, None, "unknown variable {hots}"),
        ("{1}", Context::Request, None, "unknown variable {1}"),
        (
            "{3}",
            Context::Request,
            Some((2, vec![])),
            "only 2 capture group(s)",
        ),
        (
            "{jwt.sub}",
            Context::Headers { jwt: false },
            None,
            "auth = \"jwt\"",
        ),
        ("{jwt.sub}", Context::Request, None, "auth = \"jwt\""),
        ("{upstream_server}", Context::Request, None, "header rules"),
        ("{host", Context::Request, None, "unclosed"),
    ];
    for (source, context, captures, expected) in cases {
        let error = Template::parse(source, context, captures).expect_err(source);
        assert!(error.contains(expected), "{source}: {error}");
    }
    assert!(Template::parse("a } b", Context::Request, None)
        .unwrap_err()
        .contains("lone }"));
}

//! JWT at the proxy, end to end: every vector of the auth crate's table
//! (`auth/tests/support/vectors.rs`, the one source of truth) is sent through the real proxy
//! against the same `[auth]` table and must be refused with 401, its exact reason and an RFC 6750
//! challenge, without one request reaching the upstream; the controls must pass and carry
//! `X-Auth-Subject`. Then identity-header stripping, public routes, and a cached protected route.

#[path = "../../../auth/tests/support/vectors.rs"]
pub mod vectors;

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use vectors::*;

/// The proxy's default `proxy.max_header_bytes`: a header section over it is answered 431 before
/// routing, so a vector that large never reaches the token check.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// One backend behind `/api` (`auth = "jwt"`) and `/public` (no auth), with the given `[auth]`
/// table body, spoken to over `client`.
async fn protected(auth_table: &str, client: Client) -> (TestBackend, TestProxy) {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .auth_table(&resolve_table(auth_table))
        .jwt_route("api", "/api", "g")
        .route("public", "/public", "g")
        .client(client);
    let proxy = TestProxy::start(&config).await;
    (backend, proxy)
}

#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    www_authenticate: Option<String>,
    cache_control: Option<String>,
    x_cache: Option<String>,
}

async fn send(
    proxy: &TestProxy,
    path: &str,
    authorization: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Result<Answer, reqwest::Error> {
    let mut request = proxy.http().get(proxy.url(path));
    if let Some(value) = authorization {
        let value = reqwest::header::HeaderValue::from_bytes(value).expect("a header value");
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await?;
    assert_eq!(response.version(), proxy.client.version());
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let (www_authenticate, cache_control, x_cache) = (
        header("www-authenticate"),
        header("cache-control"),
        header("x-cache"),
    );
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok(Answer {
        status,
        body,
        www_authenticate,
        cache_control,
        x_cache,
    })
}

/// What is wrong with a 401 for `reason`, if anything.
fn check_refusal(answer: &Answer, reason: &str) -> Option<String> {
    let error = if reason == "missing" {
        "missing token"
    } else {
        "invalid token"
    };
    let mut wrong = Vec::new();
    if answer.status != 401 {
        wrong.push(format!("status {}", answer.status));
    }
    if answer.body != json!({"error": error, "reason": reason}) {
        wrong.push(format!("body {}", answer.body));
    }
    match answer.www_authenticate.as_deref() {
        None => wrong.push("no WWW-Authenticate".to_owned()),
        Some(challenge) => {
            let invalid_token = challenge.contains(r#"error="invalid_token""#);
            let ok = challenge.starts_with(r#"Bearer realm="scalelab""#)
                && if reason == "missing" {
                    // RFC 6750 §3.1: no error code when the request carried no token.
                    !challenge.contains("error=")
                } else {
                    invalid_token && challenge.contains("error_description=\"")
                };
            if !ok {
                wrong.push(format!("WWW-Authenticate {challenge:?}"));
            }
        }
    }
    if answer.cache_control.as_deref() != Some("no-store") {
        wrong.push(format!("Cache-Control {:?}", answer.cache_control));
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// The distinct `[auth]` tables among the vectors and controls, in order of first use.
fn distinct_tables<'a>(vectors: &'a [Vector], controls: &'a [Control]) -> Vec<&'a str> {
    let mut tables: Vec<&str> = Vec::new();
    let all = vectors
        .iter()
        .map(|v| v.auth_table.as_str())
        .chain(controls.iter().map(|c| c.auth_table.as_str()));
    for table in all {
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    tables
}

/// One proxy per distinct `[auth]` table; every vector for it must be refused with its reason and
/// leave the backend's hit count at zero, then every control for it must pass and reach the backend
/// as `user123`, and the admin counters must have counted exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_is_refused_at_the_proxy_and_never_reaches_the_upstream() {
    let vectors = vectors();
    let controls = controls();
    let tables = distinct_tables(&vectors, &controls);
    let mut failures = Vec::new();
    let (mut refused_by_auth, mut refused_by_size, mut accepted) = (0, 0, 0);
    for table in &tables {
        let (backend, proxy) = protected(table, Client::Http1).await;
        let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
        for vector in vectors.iter().filter(|v| v.auth_table == *table) {
            let authorization = vector.authorization.as_deref();
            let answer = send(&proxy, "/api/x", authorization, &[]).await;
            let size = authorization.map_or(0, <[u8]>::len);
            if size > MAX_HEADER_BYTES {
                // Refused before routing, so never upstream and not counted as an auth outcome.
                // Over Pingora's own 1 MiB ceiling the head is refused by its parser, which
                // the proxy answers with the same 431 (`listeners::head_error`).
                let expected = 431;
                match &answer {
                    Ok(answer) if answer.status == expected => refused_by_size += 1,
                    other => failures.push(format!(
                        "{}: expected {expected} for a {size}-byte header, got {other:?}",
                        vector.name
                    )),
                }
            } else {
                match &answer {
                    Ok(answer) => match check_refusal(answer, vector.reason) {
                        Some(wrong) => failures.push(format!(
                            "{}: expected 401 {}: {wrong}",
                            vector.name, vector.reason
                        )),
                        None => refused_by_auth += 1,
                    },
                    Err(error) => {
                        failures.push(format!("{}: request failed: {error}", vector.name))
                    }
                }
                *counted.entry(vector.reason).or_default() += 1;
            }
            if backend.hits() != 0 {
                failures.push(format!(
                    "{}: reached the upstream ({} hits)",
                    vector.name,
                    backend.hits()
                ));
            }
        }
        for control in controls.iter().filter(|c| c.auth_table == *table) {
            let before = backend.hits();
            let answer = send(&proxy, "/api/x", Some(&bearer(&control.token)), &[]).await;
            let status = answer.as_ref().map(|a| a.status).ok();
            let subject = backend.last_header("x-auth-subject");
            if status != Some(200)
                || backend.hits() != before + 1
                || subject.as_deref() != Some("user123")
            {
                failures.push(format!(
                    "control {}: {answer:?}, hits {before} -> {}, X-Auth-Subject {subject:?}",
                    control.name,
                    backend.hits()
                ));
            } else {
                accepted += 1;
            }
            *counted.entry("accepted").or_default() += 1;
        }
        let report = proxy.admin_get("/admin/auth").await;
        let mut expected = json!({"accepted": counted.get("accepted").copied().unwrap_or(0)});
        for reason in scalelab_auth::Rejection::ALL_REASONS {
            expected["rejected"][*reason] = json!(counted.get(reason).copied().unwrap_or(0));
        }
        if report != expected {
            failures.push(format!("/admin/auth: expected {expected}, got {report}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(refused_by_auth + refused_by_size, vectors.len());
    assert_eq!(accepted, controls.len());
    eprintln!(
        "{} vectors through {} proxies, 0 upstream hits: {refused_by_auth} refused with 401 and \
         their reason, {refused_by_size} refused for size before routing; {accepted} controls passed",
        vectors.len(),
        tables.len()
    );
}

over_each_client!(
    minted_tokens_pass_and_identity_headers_are_the_proxys,
    a_cached_object_is_never_served_to_a_request_that_fails_auth,
);

/// A minted HS256 token passes with `Bearer`, `bearer` and bare; whatever identity headers the
/// client sends, the backend only ever sees the proxy's `X-Auth-Subject` (from `sub`) and no
/// `X-Auth-Claims`; a public route needs no token and passes no client identity either.
async fn minted_tokens_pass_and_identity_headers_are_the_proxys(client: Client) {
    let (backend, proxy) = protected(&hs256_table(), client).await;
    let settings = settings(&hs256_table());
    let token = scalelab_auth::mint(&settings, "alice", Duration::from_secs(60)).unwrap();
    let forged = [
        ("X-Auth-Subject", "admin"),
        ("X-Auth-Claims", r#"{"role":"admin"}"#),
    ];
    for (n, authorization) in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        token.clone(),
    ]
    .iter()
    .enumerate()
    {
        let answer = send(&proxy, "/api/x", Some(authorization.as_bytes()), &forged)
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{authorization:?}: {answer:?}");
        assert_eq!(backend.hits(), n + 1);
        assert_eq!(
            backend.last_header("x-auth-subject").as_deref(),
            Some("alice")
        );
        assert_eq!(backend.last_header("x-auth-claims"), None);
    }

    // A token without `sub`: accepted, and the client's subject is still not passed on.
    let no_sub = hs256(&without(good_claims(), "sub"));
    let answer = send(&proxy, "/api/x", Some(&bearer(&no_sub)), &forged)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(backend.hits(), 4);
    assert_eq!(backend.last_header("x-auth-subject"), None);
    assert_eq!(backend.last_header("x-auth-claims"), None);

    // Refused with forged identity headers: still 401 and nothing upstream.
    let answer = send(&proxy, "/api/x", None, &forged).await.unwrap();
    assert_eq!(check_refusal(&answer, "missing"), None);
    assert_eq!(backend.hits(), 4);

    // The public route: no token needed, and no identity from the client either.
    let answer = send(&proxy, "/public/x", None, &forged).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.www_authenticate, None);
    assert_eq!(backend.hits(), 5);
    assert_eq!(backend.last_header("x-auth-subject"), None);
    assert_eq!(backend.last_header("x-auth-claims"), None);
}

/// A protected cached route: an authenticated request stores a `public` response, a second one is a
/// HIT, and then a request without a token, or with a bad one, still gets 401 and nothing of the
/// cached body.
async fn a_cached_object_is_never_served_to_a_request_that_fails_auth(client: Client) {
    let backend = TestBackend::start("origin");
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", "round_robin", &[&backend], &[1]))
        .auth_table(&resolve_table(&hs256_table()))
        .cache(&[("L1", 100), ("L2", 100)], 2)
        .cached_jwt_route(
            "c",
            "/c",
            "g",
            "key = \"{path}?{query}\", default_ttl = \"300s\"",
        )
        .client(client);
    let proxy = TestProxy::start(&config).await;
    let good = bearer(&hs256(&good_claims()));
    let path = "/c/item?cc=public%2C%20max-age=60";

    let first = send(&proxy, path, Some(&good), &[]).await.unwrap();
    assert_eq!(
        (first.status, first.x_cache.as_deref()),
        (200, Some("MISS")),
        "{first:?}"
    );
    assert_eq!(first.body["server"], "origin");
    let second = send(&proxy, path, Some(&good), &[]).await.unwrap();
    assert_eq!(
        (second.status, second.x_cache.as_deref()),
        (200, Some("HIT")),
        "{second:?}"
    );
    assert_eq!(second.body, first.body);
    assert_eq!(backend.hits(), 1);

    let refused: [(&str, Option<Vec<u8>>, &str); 4] = [
        ("no token", None, "missing"),
        (
            "Basic",
            Some(b"Basic dXNlcjpwYXNzd29yZA==".to_vec()),
            "bad_scheme",
        ),
        (
            "one flipped signature bit",
            Some(bearer(&flip_first_signature_bit(&hs256(&good_claims())))),
            "bad_signature",
        ),
        (
            "expired",
            Some(bearer(&hs256(&with(
                good_claims(),
                "exp",
                json!(now() - 60),
            )))),
            "expired",
        ),
    ];
    for (name, authorization, reason) in &refused {
        let answer = send(&proxy, path, authorization.as_deref(), &[])
            .await
            .unwrap();
        assert_eq!(check_refusal(&answer, reason), None, "{name}: {answer:?}");
        assert_eq!(answer.x_cache, None, "{name}: {answer:?}");
        assert!(answer.body.get("server").is_none(), "{name}: {answer:?}");
    }
    assert_eq!(backend.hits(), 1);

    // The object is still there for a valid token.
    let third = send(&proxy, path, Some(&good), &[]).await.unwrap();
    assert_eq!(third.x_cache.as_deref(), Some("HIT"), "{third:?}");
    assert_eq!(backend.hits(), 1);
}

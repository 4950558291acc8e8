//! The storing side of the protocol (`CacheStore::on_origin_response`): which outcome each
//! origin answer gives, what a stored object is made of, and freshening after a 304.

use super::{object, settings};
use crate::cache::policy::{Conditionals, TtlSource};
use crate::cache::{CacheStore, Lifetimes, OriginResponse, Storing};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;

fn english(name: &str) -> Option<String> {
    (name == "accept-language").then(|| "en".to_string())
}

const LIFETIMES: Lifetimes = Lifetimes {
    default_ttl: Duration::from_secs(30),
    stale_while_revalidate: Duration::from_secs(5),
    stale_if_error: Duration::from_secs(60),
};

fn headers(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

/// One origin answer as the request path would describe it.
struct Answer {
    method: Method,
    status: u16,
    headers: HeaderMap,
    authorization: bool,
    verified: bool,
    cache_ttl: Option<&'static str>,
    if_none_match: Option<&'static str>,
}

impl Answer {
    fn ok(fields: &[(&'static str, &'static str)]) -> Answer {
        Answer {
            method: Method::GET,
            status: 200,
            headers: headers(fields),
            authorization: false,
            verified: false,
            cache_ttl: None,
            if_none_match: None,
        }
    }

    fn status(mut self, status: u16) -> Answer {
        self.status = status;
        self
    }
}

fn decide(store: &CacheStore, answer: &Answer, stale: bool) -> Storing {
    let stale = stale.then(|| {
        store.insert(object("old", &[]));
        store.peek("old").map(|(_, entry)| entry).expect("stored")
    });
    store.on_origin_response(
        &OriginResponse {
            key: "k",
            route: "route",
            method: &answer.method,
            status: StatusCode::from_u16(answer.status).expect("status"),
            headers: &answer.headers,
            request_has_authorization: answer.authorization,
            proxy_verified_token: answer.verified,
            cache_ttl_param: answer.cache_ttl,
            conditionals: Conditionals {
                if_none_match: answer.if_none_match,
                if_modified_since: None,
            },
            request_header: &english,
            lifetimes: LIFETIMES,
        },
        stale,
    )
}

/// The outcome's shape, for a table: "stale", "304:<detail>", "store:<ttl>:<source>" or
/// "skip:<reason>".
fn shape(storing: &Storing) -> String {
    match storing {
        Storing::ServeStale(entry) => format!("stale:{}", entry.key),
        Storing::NotModified { detail } => format!("304:{detail}"),
        Storing::Store {
            ttl, ttl_source, ..
        } => format!("store:{}:{}", ttl.as_secs(), ttl_source.as_str()),
        Storing::Skip(reason) => format!("skip:{}", reason.as_str()),
    }
}

#[test]
fn each_origin_answer_gives_its_outcome() {
    let authorized = |mut answer: Answer, verified: bool| {
        answer.authorization = true;
        answer.verified = verified;
        answer
    };
    let cases: Vec<(&str, Answer, bool, &str)> = vec![
        (
            "a plain 200 lives the route's default",
            Answer::ok(&[]),
            false,
            "store:30:default_ttl",
        ),
        (
            "max-age wins over the default",
            Answer::ok(&[("cache-control", "max-age=7")]),
            false,
            "store:7:max-age",
        ),
        (
            "s-maxage wins over max-age",
            Answer::ok(&[("cache-control", "max-age=7, s-maxage=9")]),
            false,
            "store:9:s-maxage",
        ),
        (
            "?cache_ttl= wins over the response",
            Answer {
                cache_ttl: Some("3"),
                ..Answer::ok(&[("cache-control", "max-age=7")])
            },
            false,
            "store:3:cache_ttl",
        ),
        (
            "no-store",
            Answer::ok(&[("cache-control", "no-store")]),
            false,
            "skip:no-store",
        ),
        (
            "private",
            Answer::ok(&[("cache-control", "private")]),
            false,
            "skip:private",
        ),
        (
            "set-cookie",
            Answer::ok(&[("set-cookie", "a=b")]),
            false,
            "skip:set-cookie",
        ),
        (
            "vary: *",
            Answer::ok(&[("vary", "*")]),
            false,
            "skip:vary-star",
        ),
        (
            "a POST",
            Answer {
                method: Method::POST,
                ..Answer::ok(&[])
            },
            false,
            "skip:method",
        ),
        (
            "a status not listed",
            Answer::ok(&[]).status(404),
            false,
            "skip:status",
        ),
        (
            "a zero lifetime",
            Answer::ok(&[("cache-control", "max-age=0")]),
            false,
            "skip:zero-ttl",
        ),
        (
            "larger than an object may be",
            Answer::ok(&[("content-length", "2000000")]),
            false,
            "skip:too-large",
        ),
        (
            "trailers would be lost",
            Answer::ok(&[("trailer", "x-checksum")]),
            false,
            "skip:trailers",
        ),
        (
            "authorized, not verified here",
            authorized(Answer::ok(&[("cache-control", "public")]), false),
            false,
            "skip:authorization-not-verified-by-proxy",
        ),
        (
            "authorized and verified, without public",
            authorized(Answer::ok(&[]), true),
            false,
            "skip:authorization-without-public",
        ),
        (
            "authorized, verified and public",
            authorized(Answer::ok(&[("cache-control", "public")]), true),
            false,
            "store:30:default_ttl",
        ),
        (
            "a 5xx with a stale object",
            Answer::ok(&[]).status(503),
            true,
            "stale:old",
        ),
        (
            "a 5xx without one",
            Answer::ok(&[]).status(503),
            false,
            "skip:status",
        ),
        (
            "a 200 does not use the stale object",
            Answer::ok(&[]),
            true,
            "store:30:default_ttl",
        ),
        (
            "a 304 for nothing stored",
            Answer::ok(&[]).status(304),
            false,
            "304:not-stored",
        ),
    ];
    let mut failures = Vec::new();
    for (name, answer, stale, expected) in &cases {
        let store = CacheStore::new(settings(&[10], 1));
        let got = shape(&decide(&store, answer, *stale));
        if got != *expected {
            failures.push(format!("{name}: expected {expected}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_stored_object_keeps_what_describes_it_and_drops_what_describes_one_response() {
    let store = Arc::new(CacheStore::new(settings(&[10], 1)));
    let answer = Answer::ok(&[
        ("content-type", "text/plain"),
        ("etag", "\"v1\""),
        ("connection", "keep-alive"),
        ("date", "Tue, 08 Dec 2026 02:00:00 GMT"),
        ("age", "4"),
        ("surrogate-key", "user-1 list"),
        ("vary", "Accept-Language"),
    ]);
    let Storing::Store { mut collect, .. } = decide(&store, &answer, false) else {
        panic!("stored");
    };
    assert!(collect.push(b"hello "));
    assert!(collect.push(b"world"));
    let new = collect.finish();
    let names: Vec<&str> = new.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["content-type", "etag", "surrogate-key", "vary"]);
    assert_eq!(new.tags, ["user-1", "list"]);
    assert_eq!(
        new.vary,
        [("accept-language".to_string(), Some("en".to_string()))]
    );
    assert_eq!(&new.body[..], b"hello world");
    assert_eq!((new.key.as_str(), new.route.as_str()), ("k", "route"));
    assert_eq!(
        (new.ttl, new.ttl_source, new.stale_if_error),
        (
            Duration::from_secs(30),
            TtlSource::RouteDefault,
            Duration::from_secs(60)
        )
    );
}

#[test]
fn a_body_past_the_largest_object_stops_the_collection() {
    let mut tight = settings(&[10], 1);
    tight.max_object_bytes = 8;
    let store = CacheStore::new(tight);
    let Storing::Store { mut collect, .. } = decide(&store, &Answer::ok(&[]), false) else {
        panic!("stored");
    };
    assert!(collect.push(b"12345678"));
    assert!(!collect.push(b"9"), "the ninth byte is past the limit");
}

#[test]
fn a_304_freshens_only_the_object_it_is_about() {
    let stored_with = |etag: &'static str| {
        let store = CacheStore::new(settings(&[10], 1));
        let mut new = object("k", &[]);
        new.headers = vec![(http::header::ETAG, HeaderValue::from_static(etag))];
        new.ttl = Duration::from_secs(1);
        store.insert(new);
        store
    };
    let not_modified = |etag: &'static str, if_none_match, cache_control| Answer {
        if_none_match,
        ..Answer::ok(&[("etag", etag), ("cache-control", cache_control)]).status(304)
    };
    let cases = [
        (
            "our etag, our validators",
            "\"v1\"",
            Some("\"v1\""),
            "max-age=90",
            "304:freshened",
        ),
        (
            "another etag",
            "\"v2\"",
            Some("\"v1\""),
            "max-age=90",
            "304:validator-mismatch",
        ),
        (
            "the client's validators differ",
            "\"v1\"",
            Some("\"v0\""),
            "max-age=90",
            "304:validator-mismatch",
        ),
        (
            "now no-store",
            "\"v1\"",
            Some("\"v1\""),
            "no-store",
            "304:no-store",
        ),
    ];
    for (name, etag, if_none_match, cache_control, expected) in cases {
        let store = stored_with("\"v1\"");
        let got = shape(&decide(
            &store,
            &not_modified(etag, if_none_match, cache_control),
            false,
        ));
        assert_eq!(got, expected, "{name}");
        if expected == "304:freshened" {
            let (_, entry) = store.peek("k").expect("still stored");
            assert_eq!(
                entry.ttl,
                Duration::from_secs(90),
                "{name}: the 304's lifetime"
            );
        }
    }
}

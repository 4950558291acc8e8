//! Table tests of the pure cache policy (key templates are tested in `config::key_template`).

use crate::cache::policy::*;
use std::time::Duration;

#[test]
fn storable_table() {
    let public = CacheControl::parse(["public, max-age=300"].into_iter());
    let private = CacheControl::parse(["private, max-age=300"].into_iter());
    let no_store = CacheControl::parse(["no-store"].into_iter());
    let plain = CacheControl::default();
    let base = StoreInput {
        method: "GET",
        status: 200,
        cacheable_statuses: &[200, 203, 301, 404],
        response_cc: &plain,
        has_set_cookie: false,
        vary_star: false,
        request_has_authorization: false,
        proxy_verified_token: false,
        content_length: Some(10),
        max_object_bytes: 100,
        has_trailers: false,
    };
    let cases: Vec<(StoreInput, Result<(), NotStored>)> = vec![
        (base, Ok(())),
        (
            StoreInput {
                method: "POST",
                ..base
            },
            Err(NotStored::Method),
        ),
        (
            StoreInput {
                status: 500,
                ..base
            },
            Err(NotStored::Status),
        ),
        (
            StoreInput {
                status: 404,
                ..base
            },
            Ok(()),
        ),
        (
            StoreInput {
                response_cc: &no_store,
                ..base
            },
            Err(NotStored::NoStore),
        ),
        (
            StoreInput {
                response_cc: &private,
                ..base
            },
            Err(NotStored::Private),
        ),
        (
            StoreInput {
                has_set_cookie: true,
                ..base
            },
            Err(NotStored::SetCookie),
        ),
        (
            StoreInput {
                vary_star: true,
                ..base
            },
            Err(NotStored::VaryStar),
        ),
        (
            StoreInput {
                request_has_authorization: true,
                ..base
            },
            Err(NotStored::UnverifiedAuthorization),
        ),
        (
            StoreInput {
                request_has_authorization: true,
                proxy_verified_token: true,
                ..base
            },
            Err(NotStored::AuthorizedNotPublic),
        ),
        (
            StoreInput {
                request_has_authorization: true,
                proxy_verified_token: true,
                response_cc: &public,
                ..base
            },
            Ok(()),
        ),
        (
            StoreInput {
                content_length: Some(101),
                ..base
            },
            Err(NotStored::TooLarge),
        ),
        (
            StoreInput {
                has_trailers: true,
                response_cc: &public,
                ..base
            },
            Err(NotStored::Trailers),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(storable(&input), expected, "{input:?}");
    }
}

#[test]
fn freshness_precedence_table() {
    let both = CacheControl::parse(["max-age=10, s-maxage=20"].into_iter());
    let max_age = CacheControl::parse(["max-age=10"].into_iter());
    let none = CacheControl::default();
    let default = Duration::from_secs(300);
    let cases = [
        (Some("5"), &both, (5, TtlSource::CacheTtlParam)),
        (Some("x"), &both, (20, TtlSource::SMaxage)),
        (None, &max_age, (10, TtlSource::MaxAge)),
        (None, &none, (300, TtlSource::RouteDefault)),
    ];
    for (param, cc, (seconds, source)) in cases {
        assert_eq!(
            freshness(param, cc, default),
            (Duration::from_secs(seconds), source)
        );
    }
}

#[test]
fn usability_windows() {
    let s = Duration::from_secs;
    let cases = [
        (s(5), Usability::Fresh),
        (s(10), Usability::StaleRevalidate),
        (s(14), Usability::StaleRevalidate),
        (s(15), Usability::StaleIfError),
        (s(69), Usability::StaleIfError),
        (s(70), Usability::Expired),
    ];
    for (age, expected) in cases {
        assert_eq!(usability(age, s(10), s(5), s(60)), expected, "age {age:?}");
    }
}

#[test]
fn not_modified_table() {
    const DATE: &str = "Sat, 28 Nov 2026 07:00:00 GMT";
    const LATER: &str = "Sat, 28 Nov 2026 08:00:00 GMT";
    let stored = Validators {
        etag: Some("\"v1\""),
        last_modified: Some(DATE),
    };
    let weak_stored = Validators {
        etag: Some("W/\"v1\""),
        last_modified: None,
    };
    let no_validators = Validators::default();
    let ask = |inm: Option<&'static str>, ims: Option<&'static str>| Conditionals {
        if_none_match: inm,
        if_modified_since: ims,
    };
    let cases = [
        (ask(Some("\"v1\""), None), stored, true),
        (ask(Some("\"v0\", \"v1\""), None), stored, true),
        (ask(Some("W/\"v1\""), None), stored, true),
        (ask(Some("\"v1\""), None), weak_stored, true),
        (ask(Some("*"), None), stored, true),
        (ask(Some("\"v2\""), None), stored, false),
        // If-None-Match decides alone, even when the date would match.
        (ask(Some("\"v2\""), Some(DATE)), stored, false),
        (ask(None, Some(DATE)), stored, true),
        (ask(None, Some(LATER)), stored, false),
        (ask(None, None), stored, false),
        (ask(Some("*"), None), no_validators, false),
        (ask(None, Some(DATE)), no_validators, false),
    ];
    for (request, validators, expected) in cases {
        assert_eq!(
            not_modified(request, validators),
            expected,
            "{request:?} {validators:?}"
        );
    }
}

#[test]
fn lifetimes_from_clients_origins_and_config_are_capped_at_max_ttl() {
    const U64_MAX: &str = "18446744073709551615";
    const BEYOND_U64: &str = "99999999999999999999999";
    let year = Duration::from_secs(365 * 24 * 60 * 60);
    assert_eq!(MAX_TTL, year);
    let cc = |text: &str| CacheControl::parse([text].into_iter());
    let none = CacheControl::default();
    let default = Duration::from_secs(300);
    let cases = [
        (
            Some(U64_MAX),
            none.clone(),
            default,
            (MAX_TTL, TtlSource::CacheTtlParam),
        ),
        (
            Some(BEYOND_U64),
            none.clone(),
            default,
            (MAX_TTL, TtlSource::CacheTtlParam),
        ),
        (
            Some("31536001"),
            none.clone(),
            default,
            (MAX_TTL, TtlSource::CacheTtlParam),
        ),
        (
            Some("31535999"),
            none.clone(),
            default,
            (MAX_TTL - Duration::from_secs(1), TtlSource::CacheTtlParam),
        ),
        (
            None,
            cc(&format!("s-maxage={U64_MAX}")),
            default,
            (MAX_TTL, TtlSource::SMaxage),
        ),
        (
            None,
            cc(&format!("max-age={BEYOND_U64}")),
            default,
            (MAX_TTL, TtlSource::MaxAge),
        ),
        (
            None,
            cc("max-age=-1"),
            default,
            (default, TtlSource::RouteDefault),
        ),
        (
            None,
            none.clone(),
            Duration::MAX,
            (MAX_TTL, TtlSource::RouteDefault),
        ),
    ];
    for (param, cc, default_ttl, expected) in cases {
        assert_eq!(
            freshness(param, &cc, default_ttl),
            expected,
            "{param:?} {cc:?} {default_ttl:?}"
        );
    }
    for (window, expected) in [
        (Duration::ZERO, Duration::ZERO),
        (Duration::from_secs(30), Duration::from_secs(30)),
        (Duration::MAX, MAX_TTL),
    ] {
        assert_eq!(bounded(window), expected);
    }
}

#[test]
fn usability_saturates_instead_of_overflowing() {
    let s = Duration::from_secs;
    let max = Duration::MAX;
    let cases = [
        (s(5), max, max, max, Usability::Fresh),
        (s(100), s(10), max, s(0), Usability::StaleRevalidate),
        (s(100), s(10), s(0), max, Usability::StaleIfError),
        (max, max, max, max, Usability::Expired),
    ];
    for (age, ttl, swr, sie, expected) in cases {
        assert_eq!(usability(age, ttl, swr, sie), expected, "{age:?} {ttl:?}");
    }
}

#[test]
fn responses_ending_in_trailers_are_recognised() {
    let headers = |pairs: &[(&str, &str)]| {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                http::HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    };
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("content-type", "application/json")], false),
        (&[], false),
        (&[("content-type", "application/grpc")], true),
        (&[("content-type", "application/grpc+proto")], true),
        (
            &[("content-type", "text/plain"), ("trailer", "x-checksum")],
            true,
        ),
    ];
    for (pairs, expected) in cases {
        assert_eq!(ends_in_trailers(&headers(pairs)), *expected, "{pairs:?}");
    }
}

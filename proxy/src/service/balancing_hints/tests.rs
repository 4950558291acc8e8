use super::*;
use std::time::Duration;

#[test]
fn cookie_finds_the_named_value_across_fields() {
    let mut map = http::HeaderMap::new();
    map.append(
        http::header::COOKIE,
        "a=1; scalelab_srv=abc".parse().expect("value"),
    );
    map.append(http::header::COOKIE, "b=\"quoted\"".parse().expect("value"));
    assert_eq!(cookie(&map, "scalelab_srv"), Some("abc"));
    assert_eq!(cookie(&map, "a"), Some("1"));
    assert_eq!(cookie(&map, "b"), Some("quoted"));
    assert_eq!(cookie(&map, "scalelab"), None);
    assert_eq!(cookie(&http::HeaderMap::new(), "a"), None);
}

#[test]
fn set_cookie_value_has_the_configured_attributes() {
    let mut sticky = StickySettings {
        cookie: "srv".into(),
        ttl: Duration::from_secs(3600),
        secure: false,
        http_only: true,
    };
    assert_eq!(
        set_cookie_value(&sticky, "t0k"),
        "srv=t0k; Path=/; Max-Age=3600; SameSite=Lax; HttpOnly"
    );
    sticky.secure = true;
    sticky.http_only = false;
    assert_eq!(
        set_cookie_value(&sticky, "t0k"),
        "srv=t0k; Path=/; Max-Age=3600; SameSite=Lax; Secure"
    );
}

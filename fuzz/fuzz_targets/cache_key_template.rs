//! A route's cache key template: parsed, and when valid rendered for a request built from the
//! same input, never panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelab_proxy::config::key_template::{KeyInput, KeyTemplate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the template; the rest feeds the request it renders.
    let (template, rest) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(template) = KeyTemplate::parse(template) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    for line in rest.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(name), Ok(value)) = (
                http::header::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
    }
    let target = rest.lines().next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let _ = template.render(&KeyInput {
        method: "GET",
        host: "example.test",
        path,
        query,
        headers: &headers,
    });
});

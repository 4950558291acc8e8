//! HTTP clients for talking to the processes under test.

use std::time::Duration;

use crate::patience::patient;

/// A client builder that ignores `HTTP_PROXY` and friends: the tests talk to loopback
/// addresses, and a proxy configured on a developer's machine must not sit in between.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy()
}

/// A client whose requests fail after `timeout`, scaled by [`crate::patience`].
pub fn client(timeout: Duration) -> reqwest::Client {
    client_builder()
        .timeout(patient(timeout))
        .build()
        .expect("HTTP client")
}

/// The blocking counterpart of [`client_builder`].
#[cfg(feature = "blocking")]
pub fn blocking_client_builder() -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder().no_proxy()
}

/// The blocking counterpart of [`client`].
#[cfg(feature = "blocking")]
pub fn blocking_client(timeout: Duration) -> reqwest::blocking::Client {
    blocking_client_builder()
        .timeout(patient(timeout))
        .build()
        .expect("HTTP client")
}

/// Undoes the `%XX` escapes of a URL component, to check that a link carries its text
/// unchanged.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

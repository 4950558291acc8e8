//! The `protocol` label of the request counter.

/// The protocol a request arrived over, for the request counter's `protocol` label (the ALPN
/// names: `http/1.1`, `h2`; HTTP/1.0 and older are `http/1.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http10,
    Http11,
    H2,
}

impl Protocol {
    pub(super) const ALL: [Protocol; 3] = [Protocol::Http10, Protocol::Http11, Protocol::H2];

    /// The protocol of a request of `version` (HTTP/3 is not served, so it cannot occur).
    pub fn of(version: http::Version) -> Protocol {
        match version {
            http::Version::HTTP_09 | http::Version::HTTP_10 => Protocol::Http10,
            http::Version::HTTP_2 => Protocol::H2,
            _ => Protocol::Http11,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Protocol::Http10 => "http/1.0",
            Protocol::Http11 => "http/1.1",
            Protocol::H2 => "h2",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

use super::*;

type Case = (
    &'static [(&'static str, &'static str)],
    Result<Framing, FramingError>,
);

fn headers(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn framing_table() {
    let single = |n: u64| Ok(Framing::SingleContentLength(HeaderValue::from(n)));
    let cases: &[Case] = &[
        (&[], Ok(Framing::Unchanged)),
        (&[("content-length", "5")], Ok(Framing::Unchanged)),
        (&[("content-length", "5, 5")], single(5)),
        (
            &[("content-length", "5"), ("content-length", "5")],
            single(5),
        ),
        (&[("content-length", "5,5,5")], single(5)),
        (
            &[("content-length", "005"), ("content-length", "005")],
            single(5),
        ),
        (
            &[("content-length", "5"), ("content-length", "6")],
            Err(FramingError::AmbiguousContentLength),
        ),
        (
            &[("content-length", "+5, +5")],
            Err(FramingError::AmbiguousContentLength),
        ),
        (&[("transfer-encoding", "chunked")], Ok(Framing::Unchanged)),
        (
            &[("transfer-encoding", "chunked, chunked")],
            Err(FramingError::ChunkedTwice),
        ),
        (
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            Err(FramingError::ChunkedTwice),
        ),
        (
            &[("transfer-encoding", "Chunked , CHUNKED")],
            Err(FramingError::ChunkedTwice),
        ),
        (
            &[("transfer-encoding", "gzip, chunked")],
            Ok(Framing::Unchanged),
        ),
        (
            &[("transfer-encoding", "chunked"), ("content-length", "5, 5")],
            Ok(Framing::Unchanged),
        ),
    ];
    for (fields, expected) in cases {
        assert_eq!(&check(&headers(fields)), expected, "{fields:?}");
    }
}

#[test]
fn http_1_1_needs_a_host() {
    let none = HeaderMap::new();
    let host = headers(&[("host", "a")]);
    assert_eq!(
        check_host(http::Version::HTTP_11, &none),
        Err(FramingError::MissingHost)
    );
    assert_eq!(check_host(http::Version::HTTP_11, &host), Ok(()));
    assert_eq!(check_host(http::Version::HTTP_10, &none), Ok(()));
}

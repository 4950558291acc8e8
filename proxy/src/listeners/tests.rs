use super::*;

#[test]
fn refusals_have_reasons_and_failures_do_not() {
    let cases = [
        (Reject::NoRoute { path: "/".into() }, Some("no_route")),
        (Reject::BodyTooLarge { limit: 1 }, Some("body_too_large")),
        (
            Reject::BadRequest { detail: "x".into() },
            Some("bad_request"),
        ),
        (Reject::Status { code: 405 }, Some("other")),
        (Reject::Status { code: 502 }, None),
        (Reject::Internal, None),
        (
            Reject::NoHealthyUpstream {
                upstream: "u".into(),
            },
            None,
        ),
    ];
    for (reject, reason) in cases {
        assert_eq!(refusal_reason(&reject), reason, "{reject:?}");
    }
}

#[test]
fn head_errors_are_answered_by_kind_without_echoing_the_client() {
    let malformed = Error::explain(ErrorType::InvalidHTTPHeader, "buf: GET /secret\\x00");
    let (reason, answer) = head_error(&malformed);
    assert_eq!(reason, "malformed_head");
    let answer = answer.expect("an answer");
    assert_eq!(answer.status, 400);
    assert!(!answer.body.to_string().contains("secret"));

    let large = Error::explain(
        ErrorType::InvalidHTTPHeader,
        "Request header larger than 1048575",
    );
    assert_eq!(head_error(&large).1.map(|a| a.status), Some(431));

    let slow = Error::explain(ErrorType::ReadTimedout, "head not complete");
    assert_eq!(head_error(&slow).0, "header_timeout");
    assert_eq!(head_error(&slow).1.map(|a| a.status), Some(408));

    let closed = Error::explain(ErrorType::ConnectionClosed, "closed");
    assert_eq!(head_error(&closed), ("incomplete_head", None));
}

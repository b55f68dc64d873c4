//! `application/problem+json` bodies (RFC 9457) for the middleware's own error answers.
//!
//! The body says what happened in generic terms and carries the request id so a user can quote
//! it to support; it never contains internal detail (error messages, host names, stack traces),
//! which would help an attacker more than the user.

use http::StatusCode;

use crate::json;

/// Media type of problem details.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The one wording of the 429 `detail` (host rate limiting), used by [`body`] and by hosts that
/// write their own problem bodies.
macro_rules! too_many_requests_detail {
    () => {
        "Too many requests; retry after the number of seconds in Retry-After."
    };
}

/// `detail` of a 429 answer.
pub const TOO_MANY_REQUESTS_DETAIL: &str = too_many_requests_detail!();

/// The body up to the request id for a status: `about:blank` with the status phrase as title
/// (RFC 9457) and a generic, safe explanation. Whole prefixes rather than assembled pieces,
/// and our own texts rather than `StatusCode::canonical_reason` (a 3 KB table in the
/// component).
fn prefix(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => {
            r#"{"type":"about:blank","title":"Bad Request","status":400,"detail":"The request is malformed.","request_id":""#
        }
        413 => {
            r#"{"type":"about:blank","title":"Content Too Large","status":413,"detail":"The request body is larger than this server accepts.","request_id":""#
        }
        414 => {
            r#"{"type":"about:blank","title":"URI Too Long","status":414,"detail":"The request target is longer than this server accepts.","request_id":""#
        }
        431 => {
            r#"{"type":"about:blank","title":"Request Header Fields Too Large","status":431,"detail":"The request header section is larger than this server accepts.","request_id":""#
        }
        429 => concat!(
            r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":""#,
            too_many_requests_detail!(),
            r#"","request_id":""#
        ),
        500 => {
            r#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"The request could not be completed.","request_id":""#
        }
        501 => {
            r#"{"type":"about:blank","title":"Not Implemented","status":501,"detail":"The request method is not supported.","request_id":""#
        }
        503 => {
            r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"The service is temporarily unavailable; retry after the time given in Retry-After.","request_id":""#
        }
        504 => {
            r#"{"type":"about:blank","title":"Gateway Timeout","status":504,"detail":"The application did not respond in time.","request_id":""#
        }
        _ => {
            r#"{"type":"about:blank","title":"Bad Gateway","status":502,"detail":"The application could not produce a response.","request_id":""#
        }
    }
}

/// The problem+json body for `status` (one of the statuses [`crate::ErrorType::status`] gives,
/// or 429; any other status gets the 502 body), e.g.
/// `{"type":"about:blank","title":"Bad Gateway","status":502,"detail":"...","request_id":"..."}`.
pub fn body(status: StatusCode, request_id: &str) -> Vec<u8> {
    let mut s = String::with_capacity(160 + request_id.len());
    s.push_str(prefix(status));
    json::escape_into(&mut s, request_id);
    s.push_str("\"}");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> serde_json::Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn bad_gateway_body() {
        let v = parse(&body(StatusCode::BAD_GATEWAY, "req-1"));
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Bad Gateway");
        assert_eq!(v["status"], 502);
        assert_eq!(v["request_id"], "req-1");
        assert!(v["detail"].as_str().unwrap().len() > 10);
        assert_eq!(v.as_object().unwrap().len(), 5);
    }

    #[test]
    fn gateway_timeout_body() {
        let v = parse(&body(StatusCode::GATEWAY_TIMEOUT, "x"));
        assert_eq!(v["title"], "Gateway Timeout");
        assert_eq!(v["status"], 504);
        assert!(v["detail"].as_str().unwrap().contains("in time"));
    }

    #[test]
    fn other_statuses_get_generic_texts() {
        let v = parse(&body(StatusCode::SERVICE_UNAVAILABLE, "x"));
        assert_eq!(v["title"], "Service Unavailable");
        let v = parse(&body(StatusCode::INTERNAL_SERVER_ERROR, "x"));
        assert_eq!(v["title"], "Internal Server Error");
        assert_eq!(v["status"], 500);
        // Anything else is answered as a bad gateway: the body never contradicts itself.
        let v = parse(&body(StatusCode::IM_A_TEAPOT, "x"));
        assert_eq!(v["status"], 502);
    }

    #[test]
    fn every_failure_status_has_its_own_body() {
        for error in crate::ErrorType::ALL {
            let status = error.status();
            let v = parse(&body(status, "x"));
            assert_eq!(v["status"], status.as_u16(), "{error:?}");
            assert_eq!(
                v["title"].as_str().unwrap(),
                match status.as_u16() {
                    413 => "Content Too Large",
                    s => StatusCode::from_u16(s).unwrap().canonical_reason().unwrap(),
                },
                "{error:?}"
            );
        }
        let v = parse(&body(StatusCode::TOO_MANY_REQUESTS, "x"));
        assert_eq!(v["title"], "Too Many Requests");
    }

    #[test]
    fn too_many_requests_body() {
        let v = parse(&body(StatusCode::TOO_MANY_REQUESTS, "r"));
        assert_eq!(v["title"], "Too Many Requests");
        assert_eq!(v["status"], 429);
        assert_eq!(v["detail"], TOO_MANY_REQUESTS_DETAIL);
    }

    #[test]
    fn request_id_is_escaped() {
        let v = parse(&body(StatusCode::BAD_GATEWAY, "a\"b\\c\n"));
        assert_eq!(v["request_id"], "a\"b\\c\n");
    }
}

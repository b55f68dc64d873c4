//! `application/problem+json` bodies (RFC 9457) for the middleware's own error answers.
//!
//! The body says what happened in generic terms and carries the request id so a user can quote
//! it to support; it never contains internal detail (error messages, host names, stack traces),
//! which would help an attacker more than the user.

use http::StatusCode;

use crate::json;

/// Media type of problem details.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Generic, safe explanation for a status the middleware answers with.
fn detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::GATEWAY_TIMEOUT => "The application did not respond in time.",
        StatusCode::BAD_GATEWAY => "The application could not produce a response.",
        _ => "The request could not be completed.",
    }
}

/// The problem+json body for `status`, e.g.
/// `{"type":"about:blank","title":"Bad Gateway","status":502,"detail":"...","request_id":"..."}`.
pub fn body(status: StatusCode, request_id: &str) -> Vec<u8> {
    let mut s = String::with_capacity(160 + request_id.len());
    s.push_str("{\"type\":\"about:blank\",\"title\":\"");
    json::escape_into(&mut s, status.canonical_reason().unwrap_or("Error"));
    s.push_str("\",\"status\":");
    json::push_u64(&mut s, u64::from(status.as_u16()));
    s.push_str(",\"detail\":\"");
    s.push_str(detail(status));
    s.push_str("\",\"request_id\":\"");
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
    fn request_id_is_escaped() {
        let v = parse(&body(StatusCode::BAD_GATEWAY, "a\"b\\c\n"));
        assert_eq!(v["request_id"], "a\"b\\c\n");
    }
}

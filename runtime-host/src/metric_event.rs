//! Parsing of the `edge_obs.metric.v1` metric event lines that the middleware prints on stdout
//! (schema: `docs/metric-event.md`).
//!
//! Guest output is untrusted: a buggy or hostile guest can print anything that starts with the
//! schema prefix. Every label value is therefore validated and normalised here, so that whatever
//! the guest writes, the label values that reach Prometheus come from a small, bounded set (or
//! are short, printable route templates, which `metrics` caps again by count).

use edge_observability::metrics;
use serde::Deserialize;
use std::fmt;

/// Every metric event line starts with exactly these bytes, so a line can be told from an
/// access-log line (or any other guest output) without parsing JSON.
pub const SCHEMA_PREFIX: &[u8] = metrics::LINE_PREFIX.as_bytes();

/// The schema name a line must carry (checked again after parsing, not only as a prefix).
const SCHEMA: &str = metrics::SCHEMA;

/// Longest line [`parse`] looks at. A real event is about 250 bytes; the bound keeps a hostile
/// guest from making the host spend CPU on megabyte-sized "events".
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Longest `http.route` kept as a label value; longer ones are dropped (a template that long is
/// almost certainly a raw path or garbage).
pub const MAX_ROUTE_CHARS: usize = 128;

/// Longest `error.type` kept as is; longer ones become [`OTHER`].
pub const MAX_ERROR_TYPE_CHARS: usize = 64;

pub use metrics::{KNOWN_METHODS, OTHER};

/// One validated, normalised metric event.
///
/// Label-valued fields hold only values that are safe to use as Prometheus label values:
/// `method` is one of [`KNOWN_METHODS`] or [`OTHER`]; `scheme` is `http`, `https` or [`OTHER`];
/// `route` is short printable ASCII without `"` or `\`; `error_type` matches
/// `[a-zA-Z0-9_.]{1,64}` or is [`OTHER`]; `status_code` is in 100..=599.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEvent {
    /// Seconds from the request's arrival at the middleware until the response was sent;
    /// finite and >= 0.
    pub duration_s: f64,
    /// Request body size in bytes, when known.
    pub request_body_bytes: Option<u64>,
    /// Response body size in bytes, when known.
    pub response_body_bytes: Option<u64>,
    /// `http.request.method`, normalised (see the type docs).
    pub method: String,
    /// `http.route`, when present and valid.
    pub route: Option<String>,
    /// `http.response.status_code`, when present and a valid HTTP status (100..=599).
    pub status_code: Option<u16>,
    /// `url.scheme`, normalised, when present.
    pub scheme: Option<String>,
    /// `error.type`, normalised, when present.
    pub error_type: Option<String>,
}

/// Why a line was not accepted as a metric event.
#[derive(Debug)]
pub enum MetricEventError {
    /// The line is longer than [`MAX_LINE_BYTES`].
    TooLong(usize),
    /// The line does not start with [`SCHEMA_PREFIX`] or names another schema.
    WrongSchema,
    /// The line is not UTF-8.
    NotUtf8,
    /// The line is not valid JSON or a field has the wrong type.
    Json(serde_json::Error),
    /// `duration_s` is negative or not finite.
    InvalidDuration(f64),
}

impl fmt::Display for MetricEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "metric event line too long ({n} bytes)"),
            Self::WrongSchema => write!(f, "not an {SCHEMA} line"),
            Self::NotUtf8 => write!(f, "metric event line is not UTF-8"),
            Self::Json(e) => write!(f, "invalid metric event JSON: {e}"),
            Self::InvalidDuration(d) => write!(f, "invalid duration_s {d}"),
        }
    }
}

impl std::error::Error for MetricEventError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for MetricEventError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

/// Whether `line` is a metric event line (as opposed to an access log or other output).
///
/// Only a prefix comparison, so it is cheap enough to run on every line a guest prints.
pub fn is_metric_line(line: &[u8]) -> bool {
    line.starts_with(SCHEMA_PREFIX)
}

/// The wire form. Unknown fields are ignored (serde's default), as the schema requires, so fields
/// can be added within v1. `time` is not read: the host records at the time it sees the line.
#[derive(Deserialize)]
struct RawEvent {
    schema: String,
    duration_s: f64,
    #[serde(default)]
    request_body_bytes: Option<u64>,
    #[serde(default)]
    response_body_bytes: Option<u64>,
    #[serde(default)]
    attributes: RawAttributes,
}

#[derive(Deserialize, Default)]
struct RawAttributes {
    #[serde(rename = "http.request.method", default)]
    method: Option<String>,
    #[serde(rename = "http.route", default)]
    route: Option<String>,
    // u64 rather than u16 so that an out-of-range number drops the status instead of rejecting
    // the whole event: the request still happened and should be counted.
    #[serde(rename = "http.response.status_code", default)]
    status_code: Option<u64>,
    #[serde(rename = "url.scheme", default)]
    scheme: Option<String>,
    #[serde(rename = "error.type", default)]
    error_type: Option<String>,
}

/// Parses and validates one metric event line (a trailing `\n` or `\r\n` is fine).
///
/// The event is rejected (an error) when the line is too long, is not `edge_obs.metric.v1`, is
/// not JSON of the right shape, or has a negative or non-finite duration. Bad label values do not
/// reject the event, they are normalised: an unknown method or scheme becomes `_OTHER`, an
/// invalid route is dropped, an invalid error type becomes `_OTHER`, an invalid status code is
/// dropped. A missing method (the schema says it is always there) is recorded as `_OTHER`.
pub fn parse(line: &[u8]) -> Result<MetricEvent, MetricEventError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(MetricEventError::TooLong(line.len()));
    }
    if !is_metric_line(line) {
        return Err(MetricEventError::WrongSchema);
    }
    // One check of the whole line is cheaper than serde_json's check of every string in it.
    let line = std::str::from_utf8(line).map_err(|_| MetricEventError::NotUtf8)?;
    let raw: RawEvent = serde_json::from_str(line)?;
    // The prefix check alone would accept a duplicated "schema" key naming something else.
    if raw.schema != SCHEMA {
        return Err(MetricEventError::WrongSchema);
    }
    if !raw.duration_s.is_finite() || raw.duration_s < 0.0 {
        return Err(MetricEventError::InvalidDuration(raw.duration_s));
    }
    let a = raw.attributes;
    Ok(MetricEvent {
        duration_s: raw.duration_s,
        request_body_bytes: raw.request_body_bytes,
        response_body_bytes: raw.response_body_bytes,
        method: normalize_method(a.method.as_deref().unwrap_or(OTHER)).to_owned(),
        route: a.route.filter(|r| sanitize_route(r).is_some()),
        status_code: a
            .status_code
            .filter(|s| (100..=599).contains(s))
            .map(|s| s as u16),
        scheme: a.scheme.map(|s| normalize_scheme(&s).to_owned()),
        error_type: a.error_type.map(|e| {
            if sanitize_error_type(&e) == e {
                e
            } else {
                OTHER.to_owned()
            }
        }),
    })
}

/// Maps a method to its label value: one of [`KNOWN_METHODS`] (case-sensitive, as HTTP methods
/// are) or [`OTHER`], by the core crate's rule.
pub fn normalize_method(method: &str) -> &'static str {
    metrics::standard_method_str(method)
}

/// Maps a URL scheme to its label value: `http`, `https` or [`OTHER`], by the core crate's
/// rule.
pub fn normalize_scheme(scheme: &str) -> &'static str {
    metrics::normalize_scheme(Some(scheme))
}

/// Returns the route if it may be used as a label value, else `None` (the route is dropped).
///
/// A route is kept when it is 1..=128 printable ASCII characters other than `"` and `\`.
/// `"` and `\` are excluded because prometheus-client 0.24 writes label values verbatim,
/// without escaping; a real route template never contains them.
pub fn sanitize_route(route: &str) -> Option<&str> {
    let ok = !route.is_empty()
        && route.len() <= MAX_ROUTE_CHARS
        && route
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    ok.then_some(route)
}

/// Returns the error type if it is 1..=64 characters of `[a-zA-Z0-9_.]`, else [`OTHER`].
pub fn sanitize_error_type(error_type: &str) -> &str {
    let ok = !error_type.is_empty()
        && error_type.len() <= MAX_ERROR_TYPE_CHARS
        && error_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if ok { error_type } else { OTHER }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"schema":"edge_obs.metric.v1","time":"2026-11-23T11:22:33.456Z","duration_s":0.001234,"request_body_bytes":0,"response_body_bytes":512,"attributes":{"http.request.method":"GET","http.route":"/users/{id}","http.response.status_code":200,"url.scheme":"http"}}"#;

    /// Builds an event line with the given attributes JSON (without braces).
    fn line(duration: &str, attrs: &str) -> String {
        format!(
            r#"{{"schema":"edge_obs.metric.v1","time":"2026-11-23T11:22:33.456Z","duration_s":{duration},"attributes":{{{attrs}}}}}"#
        )
    }

    fn attrs(attrs: &str) -> MetricEvent {
        parse(line("0.5", attrs).as_bytes()).expect("valid event")
    }

    #[test]
    fn prefix_check() {
        assert!(is_metric_line(EXAMPLE.as_bytes()));
        assert!(!is_metric_line(br#"{"schema":"edge_obs.access.v1"}"#));
        assert!(!is_metric_line(br#" {"schema":"edge_obs.metric.v1"}"#));
        assert!(!is_metric_line(b""));
        assert!(!is_metric_line(b"hello"));
    }

    #[test]
    fn parses_the_documented_example() {
        let ev = parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(
            ev,
            MetricEvent {
                duration_s: 0.001234,
                request_body_bytes: Some(0),
                response_body_bytes: Some(512),
                method: "GET".into(),
                route: Some("/users/{id}".into()),
                status_code: Some(200),
                scheme: Some("http".into()),
                error_type: None,
            }
        );
        // With the trailing newline the guest writes.
        assert_eq!(parse(format!("{EXAMPLE}\n").as_bytes()).unwrap(), ev);
        assert_eq!(parse(format!("{EXAMPLE}\r\n").as_bytes()).unwrap(), ev);
    }

    #[test]
    fn optional_fields_and_unknown_fields() {
        let l = r#"{"schema":"edge_obs.metric.v1","duration_s":1,"future":{"x":[1,2]},"attributes":{"http.request.method":"POST","new.attr":"x","error.type":"timeout"}}"#;
        let ev = parse(l.as_bytes()).unwrap();
        assert_eq!(ev.duration_s, 1.0);
        assert_eq!(ev.request_body_bytes, None);
        assert_eq!(ev.response_body_bytes, None);
        assert_eq!(ev.method, "POST");
        assert_eq!(ev.route, None);
        assert_eq!(ev.status_code, None);
        assert_eq!(ev.scheme, None);
        assert_eq!(ev.error_type.as_deref(), Some("timeout"));
        // No attributes object at all: counted as an _OTHER request rather than lost.
        let ev = parse(br#"{"schema":"edge_obs.metric.v1","duration_s":0}"#).unwrap();
        assert_eq!(ev.method, "_OTHER");
    }

    #[test]
    fn methods() {
        for m in KNOWN_METHODS {
            assert_eq!(attrs(&format!(r#""http.request.method":"{m}""#)).method, m);
        }
        for m in ["get", "PROPFIND", "", "GET ", "_OTHER", "G\u{e9}T", "x\ny"] {
            let json = serde_json::to_string(m).unwrap();
            assert_eq!(
                attrs(&format!(r#""http.request.method":{json}"#)).method,
                "_OTHER",
                "{m:?}"
            );
        }
        // 10 KB of method is still one label value.
        let long = "A".repeat(10_000);
        assert_eq!(
            attrs(&format!(r#""http.request.method":"{long}""#)).method,
            "_OTHER"
        );
    }

    #[test]
    fn schemes() {
        assert_eq!(
            attrs(r#""url.scheme":"http""#).scheme.as_deref(),
            Some("http")
        );
        assert_eq!(
            attrs(r#""url.scheme":"https""#).scheme.as_deref(),
            Some("https")
        );
        // The core crate's rule: case-insensitive, anything else is _OTHER.
        assert_eq!(
            attrs(r#""url.scheme":"HTTP""#).scheme.as_deref(),
            Some("http")
        );
        for s in ["ftp", "", "https "] {
            assert_eq!(
                attrs(&format!(r#""url.scheme":"{s}""#)).scheme.as_deref(),
                Some("_OTHER"),
                "{s:?}"
            );
        }
        assert_eq!(attrs("").scheme, None);
    }

    #[test]
    fn routes() {
        for r in ["/", "/users/{id}", "/a-b_c.d/~x/{*rest}", "/x?y=1&z"] {
            assert_eq!(
                attrs(&format!(r#""http.route":"{r}""#)).route.as_deref(),
                Some(r)
            );
        }
        let max = format!("/{}", "a".repeat(MAX_ROUTE_CHARS - 1));
        assert_eq!(
            attrs(&format!(r#""http.route":"{max}""#)).route.as_deref(),
            Some(max.as_str())
        );
        let too_long = format!("/{}", "a".repeat(MAX_ROUTE_CHARS));
        for r in [
            too_long.as_str(),
            "",
            "/a\"b",
            "/a\\b",
            "/a\nb",
            "/a\tb",
            "/caf\u{e9}",
            "/\u{7f}",
        ] {
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(
                attrs(&format!(r#""http.route":{json}"#)).route,
                None,
                "{r:?}"
            );
        }
    }

    #[test]
    fn error_types() {
        for e in [
            "timeout",
            "500",
            "java.net.SocketException",
            "_OTHER",
            "a_b.C9",
        ] {
            assert_eq!(
                attrs(&format!(r#""error.type":"{e}""#))
                    .error_type
                    .as_deref(),
                Some(e)
            );
        }
        let max = "e".repeat(MAX_ERROR_TYPE_CHARS);
        assert_eq!(
            attrs(&format!(r#""error.type":"{max}""#))
                .error_type
                .as_deref(),
            Some(max.as_str())
        );
        let too_long = "e".repeat(MAX_ERROR_TYPE_CHARS + 1);
        for e in [too_long.as_str(), "", "a b", "a-b", "a/b", "x\"y", "\u{e9}"] {
            let json = serde_json::to_string(e).unwrap();
            assert_eq!(
                attrs(&format!(r#""error.type":{json}"#))
                    .error_type
                    .as_deref(),
                Some("_OTHER"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn status_codes() {
        for (s, want) in [
            ("100", Some(100)),
            ("200", Some(200)),
            ("599", Some(599)),
            ("99", None),
            ("600", None),
            ("0", None),
            ("70000", None),
            ("18446744073709551615", None),
        ] {
            assert_eq!(
                attrs(&format!(r#""http.response.status_code":{s}"#)).status_code,
                want,
                "{s}"
            );
        }
        // A string status is the wrong type: the event is rejected, not guessed at.
        assert!(parse(line("0.1", r#""http.response.status_code":"200""#).as_bytes()).is_err());
        assert!(parse(line("0.1", r#""http.response.status_code":-1"#).as_bytes()).is_err());
    }

    #[test]
    fn durations() {
        for d in ["0", "0.0", "-0.0", "1e-9", "12.5", "1e6"] {
            assert!(parse(line(d, "").as_bytes()).is_ok(), "{d}");
        }
        for d in ["-0.001", "-1", "1e999", "\"1\"", "null", "NaN", "Infinity"] {
            assert!(parse(line(d, "").as_bytes()).is_err(), "{d}");
        }
        assert!(matches!(
            parse(line("-1", "").as_bytes()),
            Err(MetricEventError::InvalidDuration(_))
        ));
        // Missing duration.
        assert!(parse(br#"{"schema":"edge_obs.metric.v1"}"#).is_err());
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(matches!(
            parse(br#"{"schema":"edge_obs.access.v1","duration_s":1}"#),
            Err(MetricEventError::WrongSchema)
        ));
        // Prefix right, but a later duplicate key names another schema.
        assert!(parse(br#"{"schema":"edge_obs.metric.v1","schema":"x","duration_s":1}"#).is_err());
        // Prefix of a longer schema name.
        assert!(parse(br#"{"schema":"edge_obs.metric.v1x","duration_s":1}"#).is_err());
        assert!(matches!(
            parse(br#"{"schema":"edge_obs.metric.v1","duration_s":1"#),
            Err(MetricEventError::Json(_))
        ));
        assert!(parse(br#"{"schema":"edge_obs.metric.v1","duration_s":1} trailing"#).is_err());
        assert!(
            parse(br#"{"schema":"edge_obs.metric.v1","duration_s":1,"request_body_bytes":-5}"#)
                .is_err()
        );
        assert!(
            parse(br#"{"schema":"edge_obs.metric.v1","duration_s":1,"attributes":"x"}"#).is_err()
        );
        let huge = format!(
            r#"{{"schema":"edge_obs.metric.v1","duration_s":1,"pad":"{}"}}"#,
            "x".repeat(MAX_LINE_BYTES)
        );
        assert!(matches!(
            parse(huge.as_bytes()),
            Err(MetricEventError::TooLong(_))
        ));
        // Invalid UTF-8 anywhere in the line rejects the event.
        let bad_utf8 = b"{\"schema\":\"edge_obs.metric.v1\",\"duration_s\":1,\"attributes\":{\"http.route\":\"/\xff\"}}";
        assert!(matches!(parse(bad_utf8), Err(MetricEventError::NotUtf8)));
        // Errors display without panicking.
        let e = parse(b"{\"schema\":\"edge_obs.metric.v1\"").unwrap_err();
        assert!(e.to_string().contains("invalid metric event JSON"));
    }
}

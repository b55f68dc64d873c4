//! The metric event line, schema `edge_obs.metric.v1` (see `docs/metric-event.md`).
//!
//! One line per request whatever the access-log sampling says, so a host or log pipeline can
//! derive exact RED metrics. Attribute values are low-cardinality by construction: the method
//! is one of nine or `_OTHER`, the route is a configured template, never a raw path.

use std::time::Duration;

use http::Method;

use crate::access_log::{MAX_LINE_BYTES, hex};
use crate::json::{self, ObjectLine};
use crate::trace_context::TraceIds;

/// Every metric line starts with this, so consumers can tell it from log lines by prefix.
pub const LINE_PREFIX: &str = "{\"schema\":\"edge_obs.metric.v1\"";

/// Schema name.
pub const SCHEMA: &str = "edge_obs.metric.v1";

/// Keys of the metric event line: the line's own fields, then its `attributes`. The component
/// writes them and every consumer reads them by these names.
pub mod keys {
    /// Schema name ([`super::SCHEMA`]).
    pub const SCHEMA: &str = "schema";
    /// RFC 3339 end time.
    pub const TIME: &str = "time";
    /// Duration in seconds (a number).
    pub const DURATION_S: &str = "duration_s";
    /// Request body size in bytes, when known.
    pub const REQUEST_BODY_BYTES: &str = "request_body_bytes";
    /// Response body size in bytes, when known.
    pub const RESPONSE_BODY_BYTES: &str = "response_body_bytes";
    /// Trace id (32 lowercase hex digits) of the span this request reports, only when it
    /// reports one (the trace is sampled): consumers attach it to exemplars.
    pub const TRACE_ID: &str = "trace_id";
    /// Span id (16 lowercase hex digits) of that span, with [`TRACE_ID`].
    pub const SPAN_ID: &str = "span_id";
    /// The object holding the OpenTelemetry attributes below.
    pub const ATTRIBUTES: &str = "attributes";
    /// `http.request.method`: one of [`super::KNOWN_METHODS`] or [`super::OTHER`].
    pub const METHOD: &str = crate::access_log::fields::METHOD;
    /// `http.route`: the matched template, at most [`super::MAX_ROUTE_LEN`] bytes.
    pub const ROUTE: &str = crate::access_log::fields::ROUTE;
    /// `http.response.status_code` (a number).
    pub const STATUS_CODE: &str = crate::access_log::fields::STATUS_CODE;
    /// `url.scheme`: `http`, `https` or [`super::OTHER`].
    pub const SCHEME: &str = "url.scheme";
    /// `error.type`, only on failure, at most [`super::MAX_ERROR_TYPE_LEN`] bytes.
    pub const ERROR_TYPE: &str = crate::access_log::fields::ERROR_TYPE;
}

/// Longest `http.route` a metric event carries: the longest template the configuration accepts.
pub const MAX_ROUTE_LEN: usize = crate::route::MAX_TEMPLATE_LEN;

/// Longest `error.type` a metric event carries (the access line's bound); consumers treat
/// longer ones as [`OTHER`].
pub use crate::access_log::MAX_ERROR_TYPE_LEN;

/// Bucket bounds of `http.server.request.duration`, in seconds: the ones the OpenTelemetry HTTP
/// semantic conventions recommend, so dashboards built for other OpenTelemetry-instrumented
/// servers work unchanged. Every exporter of the duration histogram uses these.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// One metric event.
#[derive(Clone, Copy, Debug)]
pub struct MetricEvent<'a> {
    /// When the request finished, formatted by [`crate::timestamp::rfc3339`].
    pub time: &'a str,
    /// From arrival until the response body was sent (or the exchange failed).
    pub duration: Duration,
    /// Request body size, when known.
    pub request_body_bytes: Option<u64>,
    /// Response body size, when known.
    pub response_body_bytes: Option<u64>,
    /// The request method (normalised with [`standard_method`] when written).
    pub method: &'a Method,
    /// Matched route template.
    pub route: Option<&'a str>,
    /// Response status, when a response was sent.
    pub status: Option<u16>,
    /// `http` or `https` (see [`normalize_scheme`]).
    pub scheme: &'static str,
    /// `error.type`, only on failure.
    pub error_type: Option<&'a str>,
    /// The ids of the span this exchange reports (a span line or an OTLP span), so that a
    /// consumer's exemplars only point at traces a backend receives; `None` otherwise.
    pub trace: Option<&'a TraceIds>,
}

/// Bucket bounds of the body size histograms in bytes (the conventions give none): powers
/// of four from 64 bytes to 64 MiB, with 0 for empty bodies.
pub const BODY_SIZE_BUCKETS_BYTES: [f64; 12] = [
    0.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// The catch-all value OpenTelemetry uses for methods (and error types) outside the known set.
pub const OTHER: &str = "_OTHER";

/// The nine standard HTTP methods OpenTelemetry keeps as `http.request.method`.
pub const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The method as a metric attribute: one of the nine standard methods (exact, uppercase) or
/// `_OTHER`, as OpenTelemetry requires to bound cardinality.
pub fn standard_method(m: &Method) -> &'static str {
    standard_method_str(m.as_str())
}

/// [`standard_method`] for a method given as text (as a consumer of metric events reads it).
pub fn standard_method_str(m: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| **known == m)
        .copied()
        .unwrap_or(OTHER)
}

/// The scheme as a metric attribute: `http` or `https` (case-insensitive), [`OTHER`] for any
/// other scheme, and `http` when the host did not say (the middleware is reached over HTTP).
/// The one rule for the component and for every consumer of metric events.
pub fn normalize_scheme(scheme: Option<&str>) -> &'static str {
    match scheme {
        None => "http",
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        Some(_) => OTHER,
    }
}

/// Appends the metric line (ending in `\n`) to `out`.
pub fn write(ev: &MetricEvent<'_>, out: &mut String) {
    let mut line = ObjectLine::begin(out, MAX_LINE_BYTES);
    line.str(keys::SCHEMA, SCHEMA, 32);
    line.plain(keys::TIME, ev.time);
    line.raw(keys::DURATION_S, json::duration_s(ev.duration).as_str());
    if let Some(n) = ev.request_body_bytes {
        line.u64(keys::REQUEST_BODY_BYTES, n);
    }
    if let Some(n) = ev.response_body_bytes {
        line.u64(keys::RESPONSE_BODY_BYTES, n);
    }
    if let Some(t) = ev.trace {
        line.plain(keys::TRACE_ID, hex(&t.trace_id).as_str());
        line.plain(keys::SPAN_ID, hex(&t.span_id).as_str());
    }
    line.begin_object(keys::ATTRIBUTES);
    line.str(keys::METHOD, standard_method(ev.method), 16);
    if let Some(route) = ev.route {
        line.str(keys::ROUTE, route, MAX_ROUTE_LEN);
    }
    if let Some(s) = ev.status {
        line.u64(keys::STATUS_CODE, u64::from(s));
    }
    line.str(keys::SCHEME, ev.scheme, 8);
    if let Some(e) = ev.error_type {
        line.str(keys::ERROR_TYPE, e, MAX_ERROR_TYPE_LEN);
    }
    line.end_object();
    line.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(method: &Method) -> MetricEvent<'_> {
        MetricEvent {
            time: "2026-11-23T11:22:33.456Z",
            duration: Duration::from_micros(1234),
            request_body_bytes: Some(0),
            response_body_bytes: Some(512),
            method,
            route: Some("/users/{id}"),
            status: Some(200),
            scheme: "http",
            error_type: None,
            trace: None,
        }
    }

    #[test]
    fn matches_the_documented_example_exactly() {
        let mut s = String::new();
        write(&event(&Method::GET), &mut s);
        assert_eq!(
            s,
            "{\"schema\":\"edge_obs.metric.v1\",\"time\":\"2026-11-23T11:22:33.456Z\",\"duration_s\":0.001234,\"request_body_bytes\":0,\"response_body_bytes\":512,\"attributes\":{\"http.request.method\":\"GET\",\"http.route\":\"/users/{id}\",\"http.response.status_code\":200,\"url.scheme\":\"http\"}}\n"
        );
        assert!(s.starts_with(LINE_PREFIX));
    }

    #[test]
    fn a_reported_span_adds_its_ids() {
        let ids = TraceIds {
            trace_id: [0x4b; 16],
            span_id: [0xa1; 8],
            parent_span_id: None,
            flags: 1,
        };
        let mut ev = event(&Method::GET);
        ev.trace = Some(&ids);
        let mut s = String::new();
        write(&ev, &mut s);
        assert!(s.starts_with(LINE_PREFIX));
        assert!(
            s.contains("\"response_body_bytes\":512,\"trace_id\":\"4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b\",\"span_id\":\"a1a1a1a1a1a1a1a1\",\"attributes\""),
            "{s}"
        );
    }

    #[test]
    fn optional_fields_and_errors() {
        let m = Method::POST;
        let mut ev = event(&m);
        ev.request_body_bytes = None;
        ev.response_body_bytes = None;
        ev.route = None;
        ev.status = Some(504);
        ev.scheme = "https";
        ev.error_type = Some("timeout");
        let mut s = String::new();
        write(&ev, &mut s);
        let v: serde_json::Value = serde_json::from_str(s.trim_end()).unwrap();
        assert!(v.get("request_body_bytes").is_none());
        assert!(v.get("response_body_bytes").is_none());
        let a = &v["attributes"];
        assert!(a.get("http.route").is_none());
        assert_eq!(a["http.request.method"], "POST");
        assert_eq!(a["http.response.status_code"], 504);
        assert_eq!(a["url.scheme"], "https");
        assert_eq!(a["error.type"], "timeout");
    }

    #[test]
    fn unknown_and_lowercase_methods_become_other() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            assert_eq!(
                standard_method(&Method::from_bytes(m.as_bytes()).unwrap()),
                m
            );
        }
        for m in ["get", "Get", "PROPFIND", "PURGE", "QUERY", "X"] {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(standard_method(&method), "_OTHER", "{m}");
            let mut s = String::new();
            write(&event(&method), &mut s);
            assert!(s.contains("\"http.request.method\":\"_OTHER\""));
            assert!(
                !s.contains(&format!("\"{m}\"")),
                "raw method must not appear: {s}"
            );
        }
    }

    #[test]
    fn scheme_normalisation() {
        assert_eq!(normalize_scheme(Some("https")), "https");
        assert_eq!(normalize_scheme(Some("HTTPS")), "https");
        assert_eq!(normalize_scheme(Some("http")), "http");
        assert_eq!(normalize_scheme(None), "http");
        assert_eq!(normalize_scheme(Some("gopher")), "_OTHER");
    }
}

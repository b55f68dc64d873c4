//! Parsing of the `edge_obs.metric.v1` metric event lines that the middleware prints on stdout
//! (schema: `docs/metric-event.md`).
//!
//! Guest output is untrusted: a buggy or hostile guest can print anything that starts with the
//! schema prefix. Every label value is therefore validated and normalised here, so that whatever
//! the guest writes, the label values that reach Prometheus come from a small, bounded set (or
//! are short, printable route templates, which `metrics` caps again by count).

use crate::plain_json::{NotPlain, Plain, Reader, Readers};
use crate::text::Text;
use edge_observability::metrics::{self, MAX_ERROR_TYPE_LEN, MAX_ROUTE_LEN, keys};
use edge_observability::trace_context;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Every metric event line starts with exactly these bytes, so a line can be told from an
/// access-log line (or any other guest output) without parsing JSON.
pub const SCHEMA_PREFIX: &[u8] = metrics::LINE_PREFIX.as_bytes();

/// The schema name a line must carry (checked again after parsing, not only as a prefix).
const SCHEMA: &str = metrics::SCHEMA;

/// Longest line [`parse`] looks at. A real event is about 250 bytes; the bound keeps a hostile
/// guest from making the host spend CPU on megabyte-sized "events".
pub const MAX_LINE_BYTES: usize = 16 * 1024;

pub use metrics::{KNOWN_METHODS, OTHER};

/// The fields of a metric event as its producer has them, before normalisation: what a line
/// says, or what the host knows of a request it answered itself. [`MetricEvent::new`] turns
/// them into label-safe values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFields<'a> {
    /// Seconds from the request's arrival until the response was sent.
    pub duration_s: f64,
    /// Request body size in bytes, when known.
    pub request_body_bytes: Option<u64>,
    /// Response body size in bytes, when known.
    pub response_body_bytes: Option<u64>,
    /// `http.request.method` as given.
    pub method: Cow<'a, str>,
    /// `http.route` as given.
    pub route: Option<Cow<'a, str>>,
    /// `http.response.status_code` as given (wider than `u16`, so an out-of-range number
    /// drops the status instead of rejecting the event: the request still happened).
    pub status_code: Option<u64>,
    /// `url.scheme` as given.
    pub scheme: Option<Cow<'a, str>>,
    /// `error.type` as given.
    pub error_type: Option<Cow<'a, str>>,
    /// The trace of the span the request reports, when it reports one.
    pub trace: Option<TraceRef>,
}

/// The ids of a reported span, as a metric event carries them (`trace_id`, `span_id`): what an
/// exemplar points at. Held as lowercase hex text, so recording an exemplar copies 48 bytes and
/// allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceRef {
    trace_id: [u8; 32],
    span_id: [u8; 16],
}

impl TraceRef {
    /// Accepts W3C trace context ids as the middleware writes them: 32 and 16 lowercase hex
    /// digits, not all zero (all-zero ids are invalid in trace context). Anything else is
    /// `None`: the event still counts, it just gets no exemplar.
    pub fn parse(trace_id: &str, span_id: &str) -> Option<TraceRef> {
        fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
            let bytes: [u8; N] = s.as_bytes().try_into().ok()?;
            // Checked by decoding (the ids are at most 16 bytes); the text is what is kept.
            let mut decoded = [0u8; 16];
            let valid = trace_context::parse_lower_hex(&bytes, decoded.get_mut(..N / 2)?)
                && decoded.iter().any(|b| *b != 0);
            valid.then_some(bytes)
        }
        Some(TraceRef {
            trace_id: hex(trace_id)?,
            span_id: hex(span_id)?,
        })
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        // Only ASCII hex digits get in (`parse`).
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }

    /// The span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> &str {
        std::str::from_utf8(&self.span_id).unwrap_or_default()
    }
}

/// At most this many distinct label sets are admitted to the request families of `/metrics`
/// ([`crate::metrics`]) before routes and error types are collapsed to `_OTHER`, and kept as
/// OTLP series ([`crate::otlp::metrics`]). 2000 is far above what a real app with route
/// templates produces (routes × methods × a few status codes). Each label set costs about
/// 7.5 KB of scrape (three histograms and a counter), so with the overflow sets a scrape stays
/// under about 20 MB whatever the traffic (measured by `tests/hostile_input.rs`).
pub const MAX_REQUEST_LABEL_SETS: usize = 2000;

/// One validated, normalised metric event.
///
/// Its label-valued fields hold only values that are safe to use as Prometheus label values:
/// `method` is one of [`KNOWN_METHODS`] or [`OTHER`]; `scheme` is `http`, `https` or [`OTHER`];
/// `route` is printable ASCII without `"` or `\`, at most [`MAX_ROUTE_LEN`] bytes (the longest
/// template the middleware accepts); `error_type` matches `[a-zA-Z0-9_.]{1,64}` or is
/// [`OTHER`]; `status_code` is in 100..=599. The fields are private so that no event skips
/// [`MetricEvent::new`], the one place labels are normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEvent {
    duration_s: f64,
    request_body_bytes: Option<u64>,
    response_body_bytes: Option<u64>,
    method: &'static str,
    route: Option<String>,
    status_code: Option<u16>,
    scheme: Option<&'static str>,
    error_type: Option<String>,
    trace: Option<TraceRef>,
}

impl MetricEvent {
    /// Normalises `fields`: an unknown method or scheme becomes `_OTHER`, an invalid route is
    /// dropped, an invalid error type becomes `_OTHER`, an invalid status code is dropped, a
    /// negative or non-finite duration counts as 0.
    pub fn new(fields: EventFields<'_>) -> MetricEvent {
        let duration_s = if fields.duration_s.is_finite() {
            fields.duration_s.max(0.0)
        } else {
            0.0
        };
        MetricEvent {
            duration_s,
            request_body_bytes: fields.request_body_bytes,
            response_body_bytes: fields.response_body_bytes,
            method: normalize_method(&fields.method),
            route: fields
                .route
                .filter(|r| sanitize_route(r).is_some())
                .map(Cow::into_owned),
            status_code: fields
                .status_code
                .filter(|s| (100..=599).contains(s))
                .map(|s| s as u16),
            scheme: fields.scheme.as_deref().map(normalize_scheme),
            error_type: fields.error_type.map(|e| {
                if sanitize_error_type(&e) == e {
                    e.into_owned()
                } else {
                    OTHER.to_owned()
                }
            }),
            trace: fields.trace,
        }
    }

    /// The reported span's ids, when the request's trace is sampled and its span reported.
    pub fn trace(&self) -> Option<&TraceRef> {
        self.trace.as_ref()
    }

    /// Seconds from the request's arrival until the response was sent; finite and >= 0.
    pub fn duration_s(&self) -> f64 {
        self.duration_s
    }

    /// Request body size in bytes, when known.
    pub fn request_body_bytes(&self) -> Option<u64> {
        self.request_body_bytes
    }

    /// Response body size in bytes, when known.
    pub fn response_body_bytes(&self) -> Option<u64> {
        self.response_body_bytes
    }

    /// `http.request.method`: one of [`KNOWN_METHODS`] or [`OTHER`].
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// `http.route`, when present and valid.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// `http.response.status_code`, when present and in 100..=599.
    pub fn status_code(&self) -> Option<u16> {
        self.status_code
    }

    /// `url.scheme` (`http`, `https` or [`OTHER`]), when present.
    pub fn scheme(&self) -> Option<&'static str> {
        self.scheme
    }

    /// `error.type` (valid, or [`OTHER`]), when present.
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }
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

/// The wire form, read by the keys the core crate writes ([`keys`]). Unknown fields are
/// ignored, as the schema requires, so fields can be added within v1. `time` is not read: the
/// host records at the time it sees the line.
#[derive(Default)]
struct RawEvent<'a> {
    /// Whether the (last) `schema` member names this schema.
    schema_ok: bool,
    duration_s: Option<f64>,
    fields: EventFields<'a>,
}

impl<'a> RawEvent<'a> {
    /// Takes in the `attributes` object (a later one replaces an earlier one whole).
    fn set_attributes(&mut self, a: RawAttributes<'a>) {
        // The schema says the method is always there; without it the request is still
        // counted, as `_OTHER`.
        self.fields.method = a.method.map(|t| t.0).unwrap_or_default();
        self.fields.route = a.route.map(|t| t.0);
        self.fields.status_code = a.status_code;
        self.fields.scheme = a.scheme.map(|t| t.0);
        self.fields.error_type = a.error_type.map(|t| t.0);
    }

    /// What is read after the last member: the trace.
    fn complete(mut self, trace_id: Option<Text<'a>>, span_id: Option<Text<'a>>) -> Self {
        // Invalid ids are dropped, not fatal: the request happened all the same.
        self.fields.trace = trace_id
            .zip(span_id)
            .and_then(|(t, s)| TraceRef::parse(&t, &s));
        self
    }

    /// The line read by [`plain_json`](crate::plain_json), when it is in the subset that
    /// reader knows; members are taken as the serde visitor below takes them.
    fn read_plain(text: &'a str) -> Result<Self, NotPlain> {
        let mut raw = RawEvent::default();
        let (mut trace_id, mut span_id) = (None, None);
        let mut r = Reader::new(text)?;
        r.object(|key, r| {
            match key {
                keys::SCHEMA => raw.schema_ok = r.str()? == SCHEMA,
                keys::DURATION_S => {
                    raw.duration_s = Some(match r.value()? {
                        Plain::Float(f) => f,
                        // As serde reads an integer into an `f64`.
                        Plain::Uint(n) => n as f64,
                        _ => return Err(NotPlain),
                    })
                }
                keys::REQUEST_BODY_BYTES => raw.fields.request_body_bytes = r.optional_uint()?,
                keys::RESPONSE_BODY_BYTES => raw.fields.response_body_bytes = r.optional_uint()?,
                keys::TRACE_ID => trace_id = Some(Text::borrowed(r.str()?)),
                keys::SPAN_ID => span_id = Some(Text::borrowed(r.str()?)),
                keys::ATTRIBUTES => {
                    if r.value()? != Plain::Object {
                        return Err(NotPlain);
                    }
                    raw.set_attributes(RawAttributes::read_plain(r)?);
                }
                _ => r.skip()?,
            }
            Ok(())
        })?;
        r.finish()?;
        Ok(raw.complete(trace_id, span_id))
    }
}

impl<'de> Deserialize<'de> for RawEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEvent<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a metric event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent<'de>, A::Error> {
                let mut raw = RawEvent::default();
                let (mut trace_id, mut span_id) = (None, None);
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        keys::SCHEMA => {
                            let schema: Text<'de> = map.next_value()?;
                            raw.schema_ok = &*schema == SCHEMA;
                        }
                        keys::DURATION_S => raw.duration_s = Some(map.next_value()?),
                        keys::REQUEST_BODY_BYTES => {
                            raw.fields.request_body_bytes = map.next_value()?
                        }
                        keys::RESPONSE_BODY_BYTES => {
                            raw.fields.response_body_bytes = map.next_value()?
                        }
                        keys::TRACE_ID => trace_id = Some(map.next_value::<Text<'de>>()?),
                        keys::SPAN_ID => span_id = Some(map.next_value::<Text<'de>>()?),
                        keys::ATTRIBUTES => {
                            raw.set_attributes(map.next_value()?);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(raw.complete(trace_id, span_id))
            }
        }
        d.deserialize_map(V)
    }
}

/// The attributes the host reads; strings borrow from the line.
#[derive(Default)]
struct RawAttributes<'a> {
    method: Option<Text<'a>>,
    route: Option<Text<'a>>,
    status_code: Option<u64>,
    scheme: Option<Text<'a>>,
    error_type: Option<Text<'a>>,
}

impl<'a> RawAttributes<'a> {
    /// The object at `r`'s position, read by [`plain_json`](crate::plain_json) as the serde
    /// visitor below reads it.
    fn read_plain(r: &mut Reader<'a>) -> Result<Self, NotPlain> {
        let mut a = RawAttributes::default();
        r.object(|key, r| {
            match key {
                keys::METHOD => a.method = r.optional_str()?.map(Text::borrowed),
                keys::ROUTE => a.route = r.optional_str()?.map(Text::borrowed),
                keys::STATUS_CODE => a.status_code = r.optional_uint()?,
                keys::SCHEME => a.scheme = r.optional_str()?.map(Text::borrowed),
                keys::ERROR_TYPE => a.error_type = r.optional_str()?.map(Text::borrowed),
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(a)
    }
}

impl<'de> Deserialize<'de> for RawAttributes<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAttributes<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an attributes object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawAttributes<'de>, A::Error> {
                let mut a = RawAttributes::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        keys::METHOD => a.method = map.next_value()?,
                        keys::ROUTE => a.route = map.next_value()?,
                        keys::STATUS_CODE => a.status_code = map.next_value()?,
                        keys::SCHEME => a.scheme = map.next_value()?,
                        keys::ERROR_TYPE => a.error_type = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(a)
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses and validates one metric event line (a trailing `\n` or `\r\n` is fine).
///
/// The event is rejected (an error) when the line is too long, is not `edge_obs.metric.v1`, is
/// not JSON of the right shape, or has a missing, negative or non-finite duration. Bad label
/// values do not reject the event; [`MetricEvent::new`] normalises them.
pub fn parse(line: &[u8]) -> Result<MetricEvent, MetricEventError> {
    parse_with(line, Readers::PlainFirst)
}

/// [`parse`], reading the line with `readers`.
pub(crate) fn parse_with(line: &[u8], readers: Readers) -> Result<MetricEvent, MetricEventError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(MetricEventError::TooLong(line.len()));
    }
    if !is_metric_line(line) {
        return Err(MetricEventError::WrongSchema);
    }
    // One check of the whole line is cheaper than serde_json's check of every string in it.
    let line = std::str::from_utf8(line).map_err(|_| MetricEventError::NotUtf8)?;
    // The plain reader first; serde_json for what it does not know (and for the error).
    let plain = match readers {
        Readers::PlainFirst => RawEvent::read_plain(line).ok(),
        Readers::SerdeOnly => None,
    };
    let raw = match plain {
        Some(raw) => raw,
        None => serde_json::from_str::<RawEvent>(line)?,
    };
    // The prefix check alone would accept a duplicated "schema" key naming something else.
    if !raw.schema_ok {
        return Err(MetricEventError::WrongSchema);
    }
    let Some(duration_s) = raw.duration_s else {
        return Err(MetricEventError::Json(de::Error::missing_field(
            keys::DURATION_S,
        )));
    };
    if !duration_s.is_finite() || duration_s < 0.0 {
        return Err(MetricEventError::InvalidDuration(duration_s));
    }
    Ok(MetricEvent::new(EventFields {
        duration_s,
        ..raw.fields
    }))
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
/// A route is kept when it is 1..=[`MAX_ROUTE_LEN`] printable ASCII characters other than `"`
/// and `\`: every template the middleware accepts fits, and a real route template never
/// contains `"` or `\`, which a label value would have to escape.
pub fn sanitize_route(route: &str) -> Option<&str> {
    let ok = !route.is_empty()
        && route.len() <= MAX_ROUTE_LEN
        && route
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    ok.then_some(route)
}

/// Returns the error type if it is 1..=[`MAX_ERROR_TYPE_LEN`] characters of `[a-zA-Z0-9_.]`,
/// else [`OTHER`].
pub fn sanitize_error_type(error_type: &str) -> &str {
    let ok = !error_type.is_empty()
        && error_type.len() <= MAX_ERROR_TYPE_LEN
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
                method: "GET",
                route: Some("/users/{id}".into()),
                status_code: Some(200),
                scheme: Some("http"),
                error_type: None,
                trace: None,
            }
        );
        // With the trailing newline the guest writes.
        assert_eq!(parse(format!("{EXAMPLE}\n").as_bytes()).unwrap(), ev);
        assert_eq!(parse(format!("{EXAMPLE}\r\n").as_bytes()).unwrap(), ev);
    }

    #[test]
    fn trace_ids_are_read_when_valid() {
        let with = |trace: &str, span: &str| {
            let l = format!(
                r#"{{"schema":"edge_obs.metric.v1","duration_s":0.1,"trace_id":"{trace}","span_id":"{span}","attributes":{{"http.request.method":"GET"}}}}"#
            );
            parse(l.as_bytes()).expect("the event counts whatever its ids")
        };
        let ev = with("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
        let t = ev.trace().expect("valid ids");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id(), "00f067aa0ba902b7");
        for (trace, span) in [
            ("4BF92F3577B34DA6A3CE929D0E0E4736", "00f067aa0ba902b7"),
            ("00000000000000000000000000000000", "00f067aa0ba902b7"),
            ("4bf92f3577b34da6a3ce929d0e0e473", "00f067aa0ba902b7"),
            ("4bf92f3577b34da6a3ce929d0e0e4736", "0000000000000000"),
            ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7x"),
            // Escaped in JSON: 32 characters once decoded, one of them not hex.
            ("4bf92f3577b34da6a3ce929d0e0e473\\\\", "00f067aa0ba902b7"),
        ] {
            assert_eq!(with(trace, span).trace(), None, "{trace} {span}");
        }
        // A trace id alone is not enough.
        let l = r#"{"schema":"edge_obs.metric.v1","duration_s":0.1,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","attributes":{}}"#;
        assert_eq!(parse(l.as_bytes()).unwrap().trace(), None);
        // A field of the wrong type rejects the line, like any other field.
        let l = r#"{"schema":"edge_obs.metric.v1","duration_s":0.1,"trace_id":7,"attributes":{}}"#;
        assert!(matches!(
            parse(l.as_bytes()),
            Err(MetricEventError::Json(_))
        ));
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
        assert_eq!(attrs(r#""url.scheme":"http""#).scheme, Some("http"));
        assert_eq!(attrs(r#""url.scheme":"https""#).scheme, Some("https"));
        // The core crate's rule: case-insensitive, anything else is _OTHER.
        assert_eq!(attrs(r#""url.scheme":"HTTP""#).scheme, Some("http"));
        for s in ["ftp", "", "https "] {
            assert_eq!(
                attrs(&format!(r#""url.scheme":"{s}""#)).scheme,
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
        let max = format!("/{}", "a".repeat(MAX_ROUTE_LEN - 1));
        assert_eq!(
            attrs(&format!(r#""http.route":"{max}""#)).route.as_deref(),
            Some(max.as_str())
        );
        let too_long = format!("/{}", "a".repeat(MAX_ROUTE_LEN));
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
        let max = "e".repeat(MAX_ERROR_TYPE_LEN);
        assert_eq!(
            attrs(&format!(r#""error.type":"{max}""#))
                .error_type
                .as_deref(),
            Some(max.as_str())
        );
        let too_long = "e".repeat(MAX_ERROR_TYPE_LEN + 1);
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

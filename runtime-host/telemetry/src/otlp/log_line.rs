//! Access-log lines (JSON format, event `http.request`) into OpenTelemetry log records that
//! carry the request's trace and span ids, so a backend links each log line to its span.
//!
//! Lines in the pretty format, or any other guest output, are not exported.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use edge_observability::access_log::{EVENT_REQUEST, fields};
use opentelemetry::Key;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::attributes::{self, MAX_ATTRIBUTES, Scalar};
use super::span_line::hex_id;

/// Longest line looked at (the middleware writes at most 4 KB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// The log record of an access line, or `None` when the line is not one (or is longer than
/// [`MAX_LINE_BYTES`]).
pub fn parse(line: &[u8], logger: &SdkLogger) -> Option<SdkLogRecord> {
    if line.len() > MAX_LINE_BYTES {
        return None;
    }
    // One check of the whole line is cheaper than serde_json's check of every string in it.
    let v: AccessLine = serde_json::from_str(std::str::from_utf8(line).ok()?).ok()?;
    if v.event.as_deref() != Some(EVENT_REQUEST) {
        return None;
    }
    let mut r = logger.create_log_record();
    let now = SystemTime::now();
    r.set_event_name(EVENT_REQUEST);
    r.set_timestamp(
        v.timestamp
            .as_deref()
            .and_then(edge_observability::timestamp::parse_rfc3339)
            .unwrap_or(now),
    );
    r.set_observed_timestamp(now);
    let (number, text) = severity(v.level.as_deref().unwrap_or("info"));
    r.set_severity_number(number);
    r.set_severity_text(text);
    // A short human body; everything else is an attribute.
    let method = v.method.as_deref().unwrap_or("-");
    let path = attributes::cut(v.path.as_deref().unwrap_or("-"), 1024);
    let body = match v.status {
        Some(status) => format!("{method} {path} {status}"),
        None => format!("{method} {path} -"),
    };
    r.set_body(AnyValue::from(body));
    if let (Some(t), Some(s)) = (
        v.trace_id.as_deref().and_then(hex_id::<16>),
        v.span_id.as_deref().and_then(hex_id::<8>),
    ) {
        r.set_trace_context(
            TraceId::from_bytes(t),
            SpanId::from_bytes(s),
            Some(TraceFlags::SAMPLED),
        );
    }
    for (key, value) in v.attributes {
        r.add_attribute(key, value);
    }
    Some(r)
}

/// An access line as read: the fields the record is made of, and the other scalar fields as
/// attributes (at most [`MAX_ATTRIBUTES`]). Strings borrow from the line.
#[derive(Default)]
struct AccessLine<'a> {
    event: Option<Cow<'a, str>>,
    timestamp: Option<Cow<'a, str>>,
    level: Option<Cow<'a, str>>,
    trace_id: Option<Cow<'a, str>>,
    span_id: Option<Cow<'a, str>>,
    method: Option<Cow<'a, str>>,
    path: Option<Cow<'a, str>>,
    status: Option<u64>,
    attributes: Vec<(Key, AnyValue)>,
}

impl<'de> Deserialize<'de> for AccessLine<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AccessLine<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an access-log line")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                let mut line = AccessLine {
                    attributes: Vec::with_capacity(24),
                    ..AccessLine::default()
                };
                attributes::for_each_member(map, |name, map| {
                    let value = map.next_value::<Scalar<'de>>()?;
                    let text = || match &value {
                        Scalar::Str(s) => Some(s.clone()),
                        _ => None,
                    };
                    match &*name {
                        fields::EVENT => {
                            // Other events (config.invalid, ...) are not log records: stop
                            // reading as soon as that is known.
                            if value.as_str() != Some(EVENT_REQUEST) {
                                return Err(de::Error::custom("not an access line"));
                            }
                            line.event = text();
                        }
                        fields::TIMESTAMP => line.timestamp = text(),
                        fields::LEVEL => line.level = text(),
                        fields::TRACE_ID => line.trace_id = text(),
                        fields::SPAN_ID => line.span_id = text(),
                        other => {
                            match other {
                                fields::METHOD => line.method = text(),
                                fields::PATH => line.path = text(),
                                fields::STATUS_CODE => line.status = value.as_u64(),
                                _ => {}
                            }
                            if line.attributes.len() < MAX_ATTRIBUTES
                                && let Some(value) = value.into_any()
                            {
                                line.attributes.push((attributes::key(name), value));
                            }
                        }
                    }
                    Ok(())
                })?;
                Ok(line)
            }
        }
        d.deserialize_map(V)
    }
}

fn severity(level: &str) -> (Severity, &'static str) {
    match level {
        "debug" => (Severity::Debug, "DEBUG"),
        "warn" => (Severity::Warn, "WARN"),
        "error" => (Severity::Error, "ERROR"),
        _ => (Severity::Info, "INFO"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::logs::LoggerProvider as _;

    #[test]
    fn access_lines_become_records_with_trace_context() {
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
        let logger = provider.logger("test");
        let line = br#"{"timestamp":"2026-11-23T11:22:33.456Z","level":"error","event":"http.request","request_id":"r1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","http.request.method":"GET","url.path":"/x","http.response.status_code":503}"#;
        assert!(edge_observability::access_log::is_access_line(line));
        let r = parse(line, &logger).unwrap();
        assert_eq!(r.severity_number(), Some(Severity::Error));
        let tc = r.trace_context().unwrap();
        assert_eq!(tc.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tc.span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(r.body(), Some(&AnyValue::from("GET /x 503".to_owned())));
        assert!(r.attributes_iter().any(|(k, _)| k.as_str() == "request_id"));
        assert!(!r.attributes_iter().any(|(k, _)| k.as_str() == "trace_id"));
        // Escaped strings, nested values and too many fields: kept bounded, nothing lost
        // that fits.
        let extra: String = (0..100).map(|i| format!(r#","x{i}":{i}"#)).collect();
        let hostile = format!(
            r#"{{"timestamp":"bad","event":"http.request","url.path":"/a\"b","nested":{{"k":[1]}},"http.request.method":"GET"{extra}}}"#
        );
        let r = parse(hostile.as_bytes(), &logger).unwrap();
        assert_eq!(r.body(), Some(&AnyValue::from("GET /a\"b -".to_owned())));
        assert_eq!(r.attributes_iter().count(), attributes::MAX_ATTRIBUTES);
        assert!(!r.attributes_iter().any(|(k, _)| k.as_str() == "nested"));
        assert!(r.trace_context().is_none());
        // Other lines are not log records, nor are lines that are not UTF-8.
        assert!(parse(br#"{"timestamp":"x","event":"config.invalid"}"#, &logger).is_none());
        let mut not_utf8 = line.to_vec();
        not_utf8[std::str::from_utf8(line).unwrap().find("/x").unwrap() + 1] = 0xff;
        assert!(parse(&not_utf8, &logger).is_none());
    }
}

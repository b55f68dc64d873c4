//! Access-log lines (JSON format, event `http.request`) into OpenTelemetry log records that
//! carry the request's trace and span ids, so a backend links each log line to its span.
//!
//! Lines in the pretty format, or any other guest output, are not exported.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge_observability::access_log::{EVENT_REQUEST, fields};
use opentelemetry::Key;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::attributes::{self, MAX_ATTRIBUTES, Scalar};
use super::span_line::hex_id;

/// JSON access lines start with this (the timestamp is the first field).
pub const LINE_PREFIX: &[u8] = br#"{"timestamp":""#;

/// Longest line looked at (the middleware writes at most 4 KB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Whether a line may be an access-log line (cheap prefix check before parsing).
pub fn maybe_access_line(line: &[u8]) -> bool {
    line.starts_with(LINE_PREFIX) && line.len() <= MAX_LINE_BYTES
}

/// The log record of an access line, or `None` when the line is not one.
pub fn parse(line: &[u8], logger: &SdkLogger) -> Option<SdkLogRecord> {
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
            .and_then(parse_rfc3339)
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

/// `YYYY-MM-DDTHH:MM:SS[.fff...]Z`, the UTC form the middleware writes.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let frac = &s[19..s.len() - 1];
    let nanos = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(digits)
            if (1..=9).contains(&digits.len()) && digits.bytes().all(|c| c.is_ascii_digit()) =>
        {
            digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::logs::LoggerProvider as _;

    #[test]
    fn rfc3339_times() {
        let t = parse_rfc3339("2026-11-23T11:22:33.456Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_millis(1_795_432_953_456)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        for bad in [
            "",
            "2026-11-23 11:22:33Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T11:22:33.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn access_lines_become_records_with_trace_context() {
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
        let logger = provider.logger("test");
        let line = br#"{"timestamp":"2026-11-23T11:22:33.456Z","level":"error","event":"http.request","request_id":"r1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","http.request.method":"GET","url.path":"/x","http.response.status_code":503}"#;
        assert!(maybe_access_line(line));
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

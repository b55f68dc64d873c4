//! Access-log lines (JSON format, event `http.request`) into OTLP log records that carry the
//! request's trace and span ids, so a backend links each log line to its span.
//!
//! Lines in the pretty format, or any other guest output, are not exported. The record is
//! written as protobuf straight from the borrowed parse of the line, with the core crate's
//! encoder (the one the component's own export uses).

use std::borrow::Cow;
use std::fmt;

use edge_observability::access_log::{EVENT_REQUEST, fields};
use edge_observability::otlp::proto::{self, begin, end};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::attributes::{self, Attributes, Scalar};
use super::span_line::hex_id;
use crate::plain_json::{NotPlain, Reader, Readers};

/// Longest line looked at (the middleware writes at most 4 KB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Longest path kept in the record's body, in bytes.
const MAX_BODY_PATH_BYTES: usize = 1024;

/// `LogRecordFlags`: the trace is sampled (the middleware only logs ids of its own span).
const SAMPLED: u32 = 0x01;

/// Parses an access line and appends it to `buf` as a `LogRecord` (field 2 of `ScopeLogs`);
/// false, with nothing appended, when the line is not one (or is longer than
/// [`MAX_LINE_BYTES`]). `now_unix_nano` is the observed time, and the time when the line has
/// no valid timestamp.
pub fn encode(line: &[u8], buf: &mut Vec<u8>, now_unix_nano: u64) -> bool {
    encode_with(line, buf, now_unix_nano, Readers::PlainFirst)
}

/// [`encode`], reading the line with `readers`.
pub(crate) fn encode_with(
    line: &[u8],
    buf: &mut Vec<u8>,
    now_unix_nano: u64,
    readers: Readers,
) -> bool {
    if line.len() > MAX_LINE_BYTES {
        return false;
    }
    // One check of the whole line is cheaper than serde_json's check of every string in it.
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    // The plain reader first; serde_json for what it does not know.
    let plain = match readers {
        Readers::PlainFirst => AccessLine::read_plain(text).ok(),
        Readers::SerdeOnly => None,
    };
    let Some(v) = plain.or_else(|| serde_json::from_str::<AccessLine>(text).ok()) else {
        return false;
    };
    if v.event.as_deref() != Some(EVENT_REQUEST) {
        return false;
    }
    let time = v
        .timestamp
        .as_deref()
        .and_then(edge_observability::timestamp::parse_rfc3339)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(now_unix_nano);
    let l = begin(buf, 2);
    proto::fixed64(buf, 1, time);
    proto::fixed64(buf, 11, now_unix_nano);
    let (number, text) = severity(v.level.as_deref().unwrap_or("info"));
    proto::uint(buf, 2, number);
    proto::bytes(buf, 3, text.as_bytes());
    // A short human body, `GET /path 200`; everything else is an attribute.
    let b = begin(buf, 5);
    let s = begin(buf, 1);
    buf.extend_from_slice(v.method.as_deref().unwrap_or("-").as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(
        attributes::cut(v.path.as_deref().unwrap_or("-"), MAX_BODY_PATH_BYTES).as_bytes(),
    );
    buf.push(b' ');
    match v.status {
        Some(status) => {
            buf.extend_from_slice(edge_observability::json::small_u64(status).as_bytes())
        }
        None => buf.push(b'-'),
    }
    end(buf, s);
    end(buf, b);
    v.attributes.encode(buf, 6);
    if let (Some(t), Some(sp)) = (
        v.trace_id.as_deref().and_then(hex_id::<16>),
        v.span_id.as_deref().and_then(hex_id::<8>),
    ) {
        proto::fixed32(buf, 8, SAMPLED);
        proto::bytes(buf, 9, &t);
        proto::bytes(buf, 10, &sp);
    }
    proto::bytes(buf, 12, EVENT_REQUEST.as_bytes());
    end(buf, l);
    true
}

/// An access line as read: the fields the record is made of, and the other scalar fields as
/// attributes (at most [`attributes::MAX_ATTRIBUTES`]). Strings borrow from the line.
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
    attributes: Attributes<'a>,
}

/// The line's `event` is another one (`config.invalid`, ...): not a log record.
#[derive(Debug)]
struct NotAccess;

impl fmt::Display for NotAccess {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("not an access line")
    }
}

impl<'a> AccessLine<'a> {
    /// Takes in one member of the line (whichever reader read it).
    fn member(&mut self, name: Cow<'a, str>, value: Scalar<'a>) -> Result<(), NotAccess> {
        let text = || match &value {
            Scalar::Str(s) => Some(s.clone()),
            _ => None,
        };
        match &*name {
            fields::EVENT => {
                // Other events are not log records: stop reading as soon as that is known.
                if value.as_str() != Some(EVENT_REQUEST) {
                    return Err(NotAccess);
                }
                self.event = text();
            }
            fields::TIMESTAMP => self.timestamp = text(),
            fields::LEVEL => self.level = text(),
            fields::TRACE_ID => self.trace_id = text(),
            fields::SPAN_ID => self.span_id = text(),
            other => {
                match other {
                    fields::METHOD => self.method = text(),
                    fields::PATH => self.path = text(),
                    fields::STATUS_CODE => self.status = value.as_u64(),
                    _ => {}
                }
                self.attributes.push(name, value);
            }
        }
        Ok(())
    }

    /// The line read by [`plain_json`](crate::plain_json), when it is in the subset that
    /// reader knows (and an access line).
    fn read_plain(text: &'a str) -> Result<Self, NotPlain> {
        let mut line = AccessLine::default();
        let mut r = Reader::new(text)?;
        r.object(|name, r| {
            let value = Scalar::from_plain(r.value()?).ok_or(NotPlain)?;
            line.member(Cow::Borrowed(name), value)
                .map_err(|_| NotPlain)
        })?;
        r.finish()?;
        Ok(line)
    }
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
                let mut line = AccessLine::default();
                attributes::for_each_member(map, |name, map| {
                    let value = map.next_value::<Scalar<'de>>()?;
                    line.member(name, value).map_err(de::Error::custom)
                })?;
                Ok(line)
            }
        }
        d.deserialize_map(V)
    }
}

/// `SeverityNumber` and text of a level (unknown levels are info).
fn severity(level: &str) -> (u64, &'static str) {
    match level {
        "debug" => (5, "DEBUG"),
        "warn" => (13, "WARN"),
        "error" => (17, "ERROR"),
        _ => (9, "INFO"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs, SeverityNumber};

    const NOW: u64 = 1_795_000_000_000_000_000;

    fn parse(line: &[u8]) -> Option<LogRecord> {
        use prost::Message as _;
        let mut buf = Vec::new();
        if !encode(line, &mut buf, NOW) {
            assert!(buf.is_empty());
            return None;
        }
        let mut scope = ScopeLogs::decode(&buf[..]).unwrap();
        assert_eq!(scope.log_records.len(), 1);
        scope.log_records.pop()
    }

    fn body(r: &LogRecord) -> Option<Value> {
        r.body.as_ref()?.value.clone()
    }

    #[test]
    fn access_lines_become_records_with_trace_context() {
        let line = br#"{"timestamp":"2026-11-23T11:22:33.456Z","level":"error","event":"http.request","request_id":"r1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","http.request.method":"GET","url.path":"/x","http.response.status_code":503}"#;
        assert!(edge_observability::access_log::is_access_line(line));
        let r = parse(line).unwrap();
        assert_eq!(r.severity_number, SeverityNumber::Error as i32);
        assert_eq!(r.severity_text, "ERROR");
        assert_eq!(r.event_name, "http.request");
        assert_eq!(r.time_unix_nano, 1_795_432_953_456_000_000);
        assert_eq!(r.observed_time_unix_nano, NOW);
        assert_eq!(
            r.trace_id,
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(r.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(r.flags, 1);
        assert_eq!(body(&r), Some(Value::StringValue("GET /x 503".into())));
        assert!(r.attributes.iter().any(|kv| kv.key == "request_id"));
        assert!(
            r.attributes
                .iter()
                .any(|kv| kv.key == "http.response.status_code"
                    && kv.value.as_ref().and_then(|v| v.value.clone())
                        == Some(Value::IntValue(503)))
        );
        assert!(!r.attributes.iter().any(|kv| kv.key == "trace_id"));
        // Escaped strings, nested values and too many fields: kept bounded, nothing lost
        // that fits.
        let extra: String = (0..100).map(|i| format!(r#","x{i}":{i}"#)).collect();
        let hostile = format!(
            r#"{{"timestamp":"bad","event":"http.request","url.path":"/a\"b","nested":{{"k":[1]}},"http.request.method":"GET"{extra}}}"#
        );
        let r = parse(hostile.as_bytes()).unwrap();
        assert_eq!(body(&r), Some(Value::StringValue("GET /a\"b -".into())));
        assert_eq!(r.attributes.len(), attributes::MAX_ATTRIBUTES);
        assert!(!r.attributes.iter().any(|kv| kv.key == "nested"));
        assert!(r.trace_id.is_empty() && r.span_id.is_empty() && r.flags == 0);
        assert_eq!(
            r.time_unix_nano, NOW,
            "a bad timestamp is the observed time"
        );
        // Other lines are not log records, nor are lines that are not UTF-8.
        assert!(parse(br#"{"timestamp":"x","event":"config.invalid"}"#).is_none());
        let mut not_utf8 = line.to_vec();
        not_utf8[std::str::from_utf8(line).unwrap().find("/x").unwrap() + 1] = 0xff;
        assert!(parse(&not_utf8).is_none());
    }
}

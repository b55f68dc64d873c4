//! `edge_obs.span.v1` lines (docs/span-event.md) into OTLP `Span`s, keeping the middleware's
//! trace id, span id, parent and timestamps, so the exported span is exactly the one the app
//! saw as its parent.
//!
//! Guest output is untrusted: ids must be well-formed and non-zero, times ordered, and the
//! number and size of attributes are bounded. The span is written as protobuf straight from
//! the borrowed parse of the line, with the core crate's encoder (the one the component's own
//! export uses), so no SDK object is built per span.

use std::borrow::Cow;

use edge_observability::otlp::proto::{self, begin, end};
use edge_observability::span::{KIND_SERVER, SCHEMA, STATUS_ERROR};
use edge_observability::trace_context;
use serde::Deserialize;

use super::attributes::{SpanAttributes, cut};
use crate::plain_json::{NotPlain, Plain, Reader, Readers};

/// Every span line starts with exactly these bytes.
pub const SCHEMA_PREFIX: &[u8] = edge_observability::span::LINE_PREFIX.as_bytes();

/// Longest line looked at (the middleware writes at most 4 KB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Longest span name kept, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// `Span.SpanKind` `SPAN_KIND_SERVER`.
const SPAN_KIND_SERVER: u64 = 2;
/// `Status.StatusCode` `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u64 = 2;
/// `SpanFlags`: sampled (a span line is only written for a sampled trace), the parent's
/// remoteness is known, and whether it is remote.
const SAMPLED: u32 = 0x01;
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// Whether a line is a span event (by prefix, without parsing).
pub fn is_span_line(line: &[u8]) -> bool {
    line.starts_with(SCHEMA_PREFIX)
}

/// The wire form (docs/span-event.md); strings borrow from the line. Unknown fields are
/// ignored, as the schema allows fields to be added within v1.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    schema: Cow<'a, str>,
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(borrow)]
    span_id: Cow<'a, str>,
    #[serde(borrow, default)]
    parent_span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    attributes: SpanAttributes<'a>,
}

impl<'a> Line<'a> {
    /// The line read by [`plain_json`](crate::plain_json), when it is in the subset that
    /// reader knows. Members are taken as serde's derive above takes them: unknown ones are
    /// ignored; one given twice, a missing one or one of another type is left to serde_json
    /// (which says what is wrong).
    fn read_plain(text: &'a str) -> Result<Self, NotPlain> {
        fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), NotPlain> {
            match slot {
                Some(_) => Err(NotPlain),
                None => {
                    *slot = Some(value);
                    Ok(())
                }
            }
        }
        let (mut schema, mut trace_id, mut span_id, mut parent_span_id) = (None, None, None, None);
        let (mut name, mut kind, mut start, mut end, mut status) = (None, None, None, None, None);
        let mut attributes = None;
        let mut r = Reader::new(text)?;
        r.object(|field, r| match field {
            "schema" => set(&mut schema, Cow::Borrowed(r.str()?)),
            "trace_id" => set(&mut trace_id, Cow::Borrowed(r.str()?)),
            "span_id" => set(&mut span_id, Cow::Borrowed(r.str()?)),
            "parent_span_id" => set(&mut parent_span_id, r.optional_str()?.map(Cow::Borrowed)),
            "name" => set(&mut name, Cow::Borrowed(r.str()?)),
            "kind" => set(&mut kind, Cow::Borrowed(r.str()?)),
            "start_time_unix_nano" => set(&mut start, r.uint()?),
            "end_time_unix_nano" => set(&mut end, r.uint()?),
            "status" => set(&mut status, r.optional_str()?.map(Cow::Borrowed)),
            "attributes" => match r.value()? {
                Plain::Object => set(&mut attributes, SpanAttributes::read_plain(r)?),
                _ => Err(NotPlain),
            },
            _ => r.skip(),
        })?;
        r.finish()?;
        Ok(Line {
            schema: schema.ok_or(NotPlain)?,
            trace_id: trace_id.ok_or(NotPlain)?,
            span_id: span_id.ok_or(NotPlain)?,
            parent_span_id: parent_span_id.flatten(),
            name: name.ok_or(NotPlain)?,
            kind: kind.ok_or(NotPlain)?,
            start_time_unix_nano: start.ok_or(NotPlain)?,
            end_time_unix_nano: end.ok_or(NotPlain)?,
            status: status.flatten(),
            attributes: attributes.unwrap_or_default(),
        })
    }
}

/// Parses one span line and appends it to `buf` as a `Span` (field 2 of `ScopeSpans`); on an
/// error nothing is appended.
pub fn encode(line: &[u8], buf: &mut Vec<u8>) -> Result<(), String> {
    encode_with(line, buf, Readers::PlainFirst)
}

/// [`encode`], reading the line with `readers`.
pub(crate) fn encode_with(line: &[u8], buf: &mut Vec<u8>, readers: Readers) -> Result<(), String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("line of {} bytes is too long", line.len()));
    }
    // One check of the whole line is cheaper than serde_json's check of every string in it.
    let line = std::str::from_utf8(line).map_err(|_| "line is not UTF-8")?;
    // The plain reader first; serde_json for what it does not know (and for the error).
    let plain = match readers {
        Readers::PlainFirst => Line::read_plain(line).ok(),
        Readers::SerdeOnly => None,
    };
    let v = match plain {
        Some(v) => v,
        None => serde_json::from_str::<Line>(line).map_err(|e| e.to_string())?,
    };
    if v.schema != SCHEMA {
        return Err("not an edge_obs.span.v1 line".into());
    }
    let trace_id = hex_id::<16>(&v.trace_id).ok_or("invalid trace_id")?;
    let span_id = hex_id::<8>(&v.span_id).ok_or("invalid span_id")?;
    let parent = match &v.parent_span_id {
        None => None,
        Some(p) => Some(hex_id::<8>(p).ok_or("invalid parent_span_id")?),
    };
    if v.kind != KIND_SERVER {
        return Err("kind is not server".into());
    }
    let (start, end_time) = (v.start_time_unix_nano, v.end_time_unix_nano);
    if end_time < start {
        return Err("end before start".into());
    }
    if v.name.is_empty() {
        return Err("invalid name".into());
    }
    let s = begin(buf, 2);
    proto::bytes(buf, 1, &trace_id);
    proto::bytes(buf, 2, &span_id);
    if let Some(p) = &parent {
        proto::bytes(buf, 4, p);
    }
    proto::bytes(buf, 5, cut(&v.name, MAX_NAME_BYTES).as_bytes());
    proto::uint(buf, 6, SPAN_KIND_SERVER);
    proto::fixed64(buf, 7, start);
    proto::fixed64(buf, 8, end_time);
    v.attributes.list.encode(buf, 9);
    if v.status.as_deref() == Some(STATUS_ERROR) {
        let st = begin(buf, 15);
        let description = v.attributes.error_type.as_deref().unwrap_or("error");
        proto::bytes(buf, 2, description.as_bytes());
        proto::uint(buf, 3, STATUS_CODE_ERROR);
        end(buf, st);
    }
    let remote = if parent.is_some() { IS_REMOTE } else { 0 };
    proto::fixed32(buf, 16, SAMPLED | HAS_IS_REMOTE | remote);
    end(buf, s);
    Ok(())
}

/// `N` bytes from `2N` lowercase hex digits, not all zero.
pub fn hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    (trace_context::parse_lower_hex(s.as_bytes(), &mut out) && out != [0; N]).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::{
        ScopeSpans, Span, span::SpanKind, status::StatusCode,
    };

    const EXAMPLE: &str = r#"{"schema":"edge_obs.span.v1","trace_id":"4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b","span_id":"a1a1a1a1a1a1a1a1","parent_span_id":"00f067aa0ba902b7","name":"GET /users/{id}","kind":"server","start_time_unix_nano":1795000000123456789,"end_time_unix_nano":1795000000124690789,"status":"error","attributes":{"request_id":"r1","http.request.method":"GET","http.response.status_code":503,"error.type":"503"}}"#;

    /// Encodes one line and decodes it with the official definitions.
    fn parse(line: &[u8]) -> Result<Span, String> {
        use prost::Message as _;
        let mut buf = Vec::new();
        encode(line, &mut buf)?;
        let scope = ScopeSpans::decode(&buf[..]).unwrap();
        assert_eq!(scope.spans.len(), 1);
        Ok(scope.spans.into_iter().next().unwrap())
    }

    fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn keeps_ids_times_and_attributes() {
        assert!(is_span_line(EXAMPLE.as_bytes()));
        let s = parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(hex(&s.trace_id), "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b");
        assert_eq!(hex(&s.span_id), "a1a1a1a1a1a1a1a1");
        assert_eq!(hex(&s.parent_span_id), "00f067aa0ba902b7");
        // Sampled, with a remote parent.
        assert_eq!(s.flags, 0x301);
        assert_eq!(s.kind, SpanKind::Server as i32);
        assert_eq!(s.name, "GET /users/{id}");
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 1_234_000);
        let status = s.status.as_ref().unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "503");
        assert_eq!(
            attribute(&s, "http.response.status_code"),
            Some(&Value::IntValue(503))
        );
        assert_eq!(
            attribute(&s, "request_id"),
            Some(&Value::StringValue("r1".into()))
        );
        // A name that is too long is cut on a character boundary.
        let long = EXAMPLE.replace("GET /users/{id}", &"é".repeat(200));
        assert_eq!(parse(long.as_bytes()).unwrap().name.len(), MAX_NAME_BYTES);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            EXAMPLE.replace("4b4b4b4b", "4B4B4B4B"),
            EXAMPLE.replace("a1a1a1a1a1a1a1a1", "0000000000000000"),
            EXAMPLE.replace("\"server\"", "\"client\""),
            EXAMPLE.replace("1795000000124690789", "1"),
            EXAMPLE.replace("\"00f067aa0ba902b7\"", "\"xyz\""),
            EXAMPLE.replace("span.v1", "span.v2"),
            "{\"schema\":\"edge_obs.span.v1\"".to_owned(),
            EXAMPLE.replace("\"GET /users/{id}\"", "\"\""),
            EXAMPLE.replace("\"attributes\":{", "\"attributes\":[1],\"x\":{"),
            EXAMPLE.replace(
                "\"schema\":\"edge_obs.span.v1\"",
                "\"schema\":\"edge_obs.span.v1\",\"schema\":\"x\"",
            ),
        ] {
            let mut buf = vec![7];
            assert!(encode(bad.as_bytes(), &mut buf).is_err(), "{bad}");
            assert_eq!(buf, [7], "nothing appended for {bad}");
        }
        // Invalid UTF-8, even in an attribute nothing reads.
        let mut not_utf8 = EXAMPLE.as_bytes().to_vec();
        not_utf8[EXAMPLE.find("\"r1\"").unwrap() + 1] = 0xff;
        assert_eq!(parse(&not_utf8).unwrap_err(), "line is not UTF-8");
        let root = EXAMPLE.replace(",\"parent_span_id\":\"00f067aa0ba902b7\"", "");
        let s = parse(root.as_bytes()).unwrap();
        assert!(s.parent_span_id.is_empty());
        assert_eq!(s.flags, 0x101);
    }
}

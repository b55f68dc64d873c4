//! `edge_obs.span.v1` lines (docs/span-event.md) into OpenTelemetry `SpanData`, keeping the
//! middleware's trace id, span id, parent and timestamps, so the exported span is exactly the
//! one the app saw as its parent.
//!
//! Guest output is untrusted: ids must be well-formed and non-zero, times ordered, and the
//! number and size of attributes are bounded.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge_observability::span::{KIND_SERVER, SCHEMA, STATUS_ERROR};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::SpanData;
use serde::Deserialize;

use super::attributes::{self, SpanAttributes};

/// Every span line starts with exactly these bytes.
pub const SCHEMA_PREFIX: &[u8] = edge_observability::span::LINE_PREFIX.as_bytes();

/// Longest line looked at (the middleware writes at most 4 KB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

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
    #[serde(default)]
    attributes: SpanAttributes,
}

/// Parses one span line.
pub fn parse(line: &[u8], scope: &InstrumentationScope) -> Result<SpanData, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("line of {} bytes is too long", line.len()));
    }
    // One check of the whole line is cheaper than serde_json's check of every string in it.
    let line = std::str::from_utf8(line).map_err(|_| "line is not UTF-8")?;
    let v: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if v.schema != SCHEMA {
        return Err("not an edge_obs.span.v1 line".into());
    }
    let trace_id = hex_id::<16>(&v.trace_id)
        .map(TraceId::from_bytes)
        .ok_or("invalid trace_id")?;
    let span_id = hex_id::<8>(&v.span_id)
        .map(SpanId::from_bytes)
        .ok_or("invalid span_id")?;
    let parent = match &v.parent_span_id {
        None => None,
        Some(p) => Some(
            hex_id::<8>(p)
                .map(SpanId::from_bytes)
                .ok_or("invalid parent_span_id")?,
        ),
    };
    if v.kind != KIND_SERVER {
        return Err("kind is not server".into());
    }
    let (start, end) = (v.start_time_unix_nano, v.end_time_unix_nano);
    if end < start {
        return Err("end before start".into());
    }
    if v.name.is_empty() {
        return Err("invalid name".into());
    }
    let status = if v.status.as_deref() == Some(STATUS_ERROR) {
        let error = v.attributes.error_type.unwrap_or_else(|| "error".into());
        Status::Error {
            description: Cow::Owned(error),
        }
    } else {
        Status::Unset
    };
    Ok(SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: parent.unwrap_or(SpanId::INVALID),
        parent_span_is_remote: parent.is_some(),
        span_kind: SpanKind::Server,
        name: Cow::Owned(attributes::owned_cut(v.name, 256)),
        start_time: unix(start),
        end_time: unix(end),
        attributes: v.attributes.list,
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status,
        instrumentation_scope: scope.clone(),
    })
}

fn unix(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// `N` bytes from `2N` lowercase hex digits, not all zero.
pub fn hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    (out != [0; N]).then_some(out)
}

/// The span attributes as OpenTelemetry key-values (helper for tests and logs).
pub fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"schema":"edge_obs.span.v1","trace_id":"4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b","span_id":"a1a1a1a1a1a1a1a1","parent_span_id":"00f067aa0ba902b7","name":"GET /users/{id}","kind":"server","start_time_unix_nano":1795000000123456789,"end_time_unix_nano":1795000000124690789,"status":"error","attributes":{"request_id":"r1","http.request.method":"GET","http.response.status_code":503,"error.type":"503"}}"#;

    fn scope() -> InstrumentationScope {
        InstrumentationScope::builder("test").build()
    }

    #[test]
    fn keeps_ids_times_and_attributes() {
        assert!(is_span_line(EXAMPLE.as_bytes()));
        let s = parse(EXAMPLE.as_bytes(), &scope()).unwrap();
        assert_eq!(
            s.span_context.trace_id().to_string(),
            "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b"
        );
        assert_eq!(s.span_context.span_id().to_string(), "a1a1a1a1a1a1a1a1");
        assert_eq!(s.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(s.parent_span_is_remote);
        assert_eq!(s.span_kind, SpanKind::Server);
        assert_eq!(s.name, "GET /users/{id}");
        assert_eq!(
            s.end_time.duration_since(s.start_time).unwrap(),
            Duration::from_nanos(1_234_000)
        );
        assert_eq!(
            s.status,
            Status::Error {
                description: "503".into()
            }
        );
        assert_eq!(
            attribute(&s, "http.response.status_code"),
            Some(&opentelemetry::Value::I64(503))
        );
        assert_eq!(
            attribute(&s, "request_id"),
            Some(&opentelemetry::Value::from("r1"))
        );
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
            assert!(parse(bad.as_bytes(), &scope()).is_err(), "{bad}");
        }
        // Invalid UTF-8, even in an attribute nothing reads.
        let mut not_utf8 = EXAMPLE.as_bytes().to_vec();
        not_utf8[EXAMPLE.find("\"r1\"").unwrap() + 1] = 0xff;
        assert_eq!(parse(&not_utf8, &scope()).unwrap_err(), "line is not UTF-8");
        let root = EXAMPLE.replace(",\"parent_span_id\":\"00f067aa0ba902b7\"", "");
        let s = parse(root.as_bytes(), &scope()).unwrap();
        assert_eq!(s.parent_span_id, SpanId::INVALID);
        assert!(!s.parent_span_is_remote);
    }
}

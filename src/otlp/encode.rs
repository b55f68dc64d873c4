//! OTLP messages (`opentelemetry/proto`, v1) for the middleware's spans and log records, and
//! the pieces shared by all three export requests (resource, scope, attributes).
//!
//! Spans and log records are encoded once, when the exchange finishes, as the repeated field
//! of their scope message (`ScopeSpans.spans`, `ScopeLogs.log_records`): the buffer keeps the
//! bytes, and a batch is those bytes inside [`request`]'s envelope, copied once. Their
//! attributes are the access line's fields, written by the same code
//! ([`access_log::emit`]), so limits and redaction are those of the line.

use super::OtlpConfig;
use super::proto::{self, begin, end};
use crate::access_log::{self, Level, NOT_SPAN_ATTRIBUTES, Record, Sink, fields};
use crate::json::{self, TRUNCATION_MARKER, lossy_chars};
use crate::span::{self, SpanEvent};
use crate::trace_context::TraceIds;

/// `InstrumentationScope.name` of everything the middleware exports.
pub const SCOPE_NAME: &str = "edge-observability";
/// `InstrumentationScope.version`.
pub const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `Span.SpanKind` `SPAN_KIND_SERVER`.
const SPAN_KIND_SERVER: u64 = 2;
/// `Status.StatusCode` `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u64 = 2;
/// `SpanFlags`: the parent's remoteness is known, and it is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// Tags of `KeyValue.key` (1), `KeyValue.value` (2) and `AnyValue.string_value` (1), all
/// length-delimited.
const KEY_TAG: u8 = 1 << 3 | 2;
const VALUE_TAG: u8 = 2 << 3 | 2;
const STRING_VALUE_TAG: u8 = 1 << 3 | 2;

/// The head of a `KeyValue` as repeated field `field`: its tag and length, the key, and the
/// tag and length of the `AnyValue` whose `value_len` bytes of content the caller writes next.
///
/// Every size is known up front, so nothing is written twice: attributes are most of what an
/// exported span or log record is made of.
#[inline]
fn kv_head(buf: &mut Vec<u8>, field: u32, key: &str, value_len: usize) {
    // The usual attribute: every length fits one byte, so the head is two runs of known bytes.
    let short = key.len() + value_len + 4;
    if field < 16 && short < 0x80 {
        buf.reserve(2 + short);
        buf.extend_from_slice(&[
            (field << 3 | 2) as u8,
            short as u8,
            KEY_TAG,
            key.len() as u8,
        ]);
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(&[VALUE_TAG, value_len as u8]);
        return;
    }
    let len = proto::len_field_size(key.len()) + proto::len_field_size(value_len);
    proto::len_prefix(buf, field, len);
    proto::bytes(buf, 1, key.as_bytes());
    proto::len_prefix(buf, 2, value_len);
}

/// A `KeyValue` with a string value, as repeated field `field`.
#[inline(never)]
pub fn kv_str(buf: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    // As in `kv_head`, with the string's own tag and length too: most attributes take this path.
    let (k, v) = (key.len(), value.len());
    let short = k + v + 6;
    if field < 16 && short < 0x80 {
        buf.reserve(2 + short);
        buf.extend_from_slice(&[(field << 3 | 2) as u8, short as u8, KEY_TAG, k as u8]);
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(&[VALUE_TAG, (v + 2) as u8, STRING_VALUE_TAG, v as u8]);
        buf.extend_from_slice(value.as_bytes());
        return;
    }
    kv_head(buf, field, key, proto::len_field_size(value.len()));
    proto::bytes(buf, 1, value.as_bytes());
}

/// A `KeyValue` with an integer value.
pub fn kv_int(buf: &mut Vec<u8>, field: u32, key: &str, value: i64) {
    // `int64` is a varint of the two's complement: a negative value takes 10 bytes.
    kv_head(buf, field, key, 1 + proto::varint_len(value as u64));
    proto::uint(buf, 3, value as u64);
}

/// A `KeyValue` with a double value.
pub fn kv_double(buf: &mut Vec<u8>, field: u32, key: &str, value: f64) {
    kv_head(buf, field, key, 1 + 8);
    proto::double(buf, 4, value);
}

/// A `KeyValue` with a boolean value.
pub fn kv_bool(buf: &mut Vec<u8>, field: u32, key: &str, value: bool) {
    kv_head(buf, field, key, 1 + 1);
    proto::uint(buf, 2, u64::from(value));
}

/// The `Resource` (as field 1 of a `Resource*` message): `service.name`, the per-instance
/// `service.instance.id`, the SDK attributes and `OTEL_RESOURCE_ATTRIBUTES`.
pub fn resource(cfg: &OtlpConfig, instance_id: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    let r = begin(&mut buf, 1);
    kv_str(&mut buf, 1, fields::SERVICE_NAME, &cfg.service_name);
    kv_str(&mut buf, 1, "service.instance.id", instance_id);
    kv_str(&mut buf, 1, "telemetry.sdk.name", SCOPE_NAME);
    kv_str(&mut buf, 1, "telemetry.sdk.language", "rust");
    kv_str(&mut buf, 1, "telemetry.sdk.version", SCOPE_VERSION);
    for (k, v) in &cfg.resource {
        kv_str(&mut buf, 1, k, v);
    }
    end(&mut buf, r);
    buf
}

/// An export request body: `Export{Trace,Metrics,Logs}ServiceRequest` with one resource
/// (`resource`, from [`resource`]) and one scope holding `items`, the encoded repeated field 2
/// of the scope message (spans, metrics or log records). The three requests share this shape.
pub fn request(resource: &[u8], items: &[u8]) -> Vec<u8> {
    // Every length is known before anything is written, so the items are copied once: with
    // placeholders, each enclosing message longer than 127 bytes moved them again.
    let scope =
        proto::len_field_size(SCOPE_NAME.len()) + proto::len_field_size(SCOPE_VERSION.len());
    let scope_items = proto::len_field_size(scope) + items.len();
    let resource_items = resource.len() + proto::len_field_size(scope_items);
    let size = proto::len_field_size(resource_items);
    let mut buf = Vec::with_capacity(size);
    proto::len_prefix(&mut buf, 1, resource_items);
    buf.extend_from_slice(resource);
    proto::len_prefix(&mut buf, 2, scope_items);
    proto::len_prefix(&mut buf, 1, scope);
    proto::bytes(&mut buf, 1, SCOPE_NAME.as_bytes());
    proto::bytes(&mut buf, 2, SCOPE_VERSION.as_bytes());
    buf.extend_from_slice(items);
    debug_assert_eq!(buf.len(), size);
    buf
}

/// Writes the access line's fields as `KeyValue`s (field `field`), leaving out `skip`.
struct Attributes<'a> {
    buf: &'a mut Vec<u8>,
    field: u32,
    skip: &'a [&'a str],
}

impl Sink for Attributes<'_> {
    fn bytes(&mut self, key: &str, value: &[u8], max_chars: usize) {
        if self.skip.contains(&key) {
            return;
        }
        // The line's limits (characters, invalid UTF-8 as U+FFFD); no escaping in protobuf.
        // Written in place: no string of its own.
        let buf = &mut *self.buf;
        let text = std::str::from_utf8(value);
        // The common case, copied as it is: valid UTF-8 and within the limit (a value of no
        // more bytes than `max_chars` has no more characters either).
        if let Ok(text) = text
            && text.len() <= max_chars
        {
            kv_str(buf, self.field, key, text);
            return;
        }
        let kv = begin(buf, self.field);
        proto::bytes(buf, 1, key.as_bytes());
        let v = begin(buf, 2);
        let s = begin(buf, 1);
        match text {
            Ok(text) => {
                let cut = text.char_indices().nth(max_chars).map(|(at, _)| at);
                buf.extend_from_slice(&text.as_bytes()[..cut.unwrap_or(text.len())]);
                if cut.is_some() {
                    buf.extend_from_slice(TRUNCATION_MARKER.as_bytes());
                }
            }
            Err(_) => {
                let mut chars = lossy_chars(value);
                push_chars(buf, chars.by_ref().take(max_chars));
                if chars.next().is_some() {
                    buf.extend_from_slice(TRUNCATION_MARKER.as_bytes());
                }
            }
        }
        end(buf, s);
        end(buf, v);
        end(buf, kv);
    }
    fn plain(&mut self, key: &str, value: &str) {
        if !self.skip.contains(&key) {
            kv_str(self.buf, self.field, key, value);
        }
    }
    fn number(&mut self, key: &str, value: &str) {
        // `duration_ms` is written as a double by the caller; the others are integers.
        if self.skip.contains(&key) || key == fields::DURATION_MS {
            return;
        }
        match json::parse_u64(value.as_bytes()) {
            Some(n) => kv_int(self.buf, self.field, key, n as i64),
            None => kv_str(self.buf, self.field, key, value),
        }
    }
}

/// Appends `chars` as UTF-8.
fn push_chars(buf: &mut Vec<u8>, chars: impl Iterator<Item = char>) {
    for c in chars {
        buf.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
}

fn ids(buf: &mut Vec<u8>, t: &TraceIds, trace_field: u32, span_field: u32) {
    proto::bytes(buf, trace_field, &t.trace_id);
    proto::bytes(buf, span_field, &t.span_id);
}

/// Appends the server span of `ev` as field 2 of `ScopeSpans`: this hop's ids (the span id is
/// the parent the app saw in `traceparent`), the caller's span as remote parent, the name,
/// times and status of the span event line, and its attributes.
#[inline(never)]
pub fn span(buf: &mut Vec<u8>, ev: &SpanEvent<'_>) {
    let t = ev.trace;
    let s = begin(buf, 2);
    ids(buf, t, 1, 2);
    if let Some(p) = t.parent_span_id {
        proto::bytes(buf, 4, &p);
    }
    proto::bytes(buf, 5, span::name(ev.method, ev.record.route).as_bytes());
    proto::uint(buf, 6, SPAN_KIND_SERVER);
    let start = span::unix_nanos(ev.start);
    let nanos = u64::try_from(ev.duration.as_nanos()).unwrap_or(u64::MAX);
    proto::fixed64(buf, 7, start);
    proto::fixed64(buf, 8, start.saturating_add(nanos));
    access_log::emit(
        ev.record,
        &mut Attributes {
            buf,
            field: 9,
            skip: &NOT_SPAN_ATTRIBUTES,
        },
    );
    if span::status(ev.record.status, ev.record.error_type) == span::STATUS_ERROR {
        let st = begin(buf, 15);
        proto::uint(buf, 3, STATUS_CODE_ERROR);
        end(buf, st);
    }
    let remote = if t.parent_span_id.is_some() {
        IS_REMOTE
    } else {
        0
    };
    proto::fixed32(buf, 16, u32::from(t.flags) | HAS_IS_REMOTE | remote);
    end(buf, s);
}

/// `SeverityNumber` and text of a level.
fn severity(level: Level) -> (u64, &'static str) {
    match level {
        Level::Debug => (5, "DEBUG"),
        Level::Info => (9, "INFO"),
        Level::Warn => (13, "WARN"),
        Level::Error => (17, "ERROR"),
    }
}

/// Fields of the line that a log record carries in fields of its own.
const NOT_LOG_ATTRIBUTES: [&str; 3] = [fields::SERVICE_NAME, fields::TRACE_ID, fields::SPAN_ID];

/// Appends the access line `r` as a `LogRecord` (field 2 of `ScopeLogs`): time, severity
/// from the level, body `GET /path 200`, trace and span ids and flags, event name, and the
/// line's other fields as attributes (`duration_ms` a double).
#[inline(never)]
pub fn log_record(buf: &mut Vec<u8>, r: &Record<'_>, time_unix_nano: u64) {
    let l = begin(buf, 2);
    proto::fixed64(buf, 1, time_unix_nano);
    proto::fixed64(buf, 11, time_unix_nano);
    let (number, text) = severity(r.level);
    proto::uint(buf, 2, number);
    proto::bytes(buf, 3, text.as_bytes());
    // Body `GET /path 200`, written in place.
    let b = begin(buf, 5);
    let s = begin(buf, 1);
    push_chars(
        buf,
        lossy_chars(r.method.as_bytes()).take(access_log::METHOD_MAX_CHARS),
    );
    buf.push(b' ');
    push_chars(buf, r.path.chars().take(access_log::PATH_MAX_CHARS));
    buf.push(b' ');
    match (r.status, r.error_type) {
        (Some(s), _) => buf.extend_from_slice(json::small_u64(u64::from(s)).as_bytes()),
        (None, Some(e)) => buf.extend_from_slice(e.as_bytes()),
        (None, None) => buf.push(b'-'),
    }
    end(buf, s);
    end(buf, b);
    access_log::emit(
        r,
        &mut Attributes {
            buf,
            field: 6,
            skip: &NOT_LOG_ATTRIBUTES,
        },
    );
    if let Some(d) = r.duration {
        kv_double(buf, 6, fields::DURATION_MS, d.as_secs_f64() * 1000.0);
    }
    if let Some(t) = r.trace {
        proto::fixed32(buf, 8, u32::from(t.flags));
        ids(buf, t, 9, 10);
    }
    proto::bytes(buf, 12, r.event.as_bytes());
    end(buf, l);
}

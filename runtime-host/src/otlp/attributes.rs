//! JSON fields of guest lines into OpenTelemetry attributes, bounded in count and size.

use opentelemetry::KeyValue;
use opentelemetry::logs::AnyValue;
use serde_json::Value;

/// Attributes kept per span or log record at most (the middleware writes about 20).
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute value kept, in bytes (cut on a character boundary).
pub const MAX_VALUE_BYTES: usize = 4096;

/// `s` cut to at most `max` bytes on a character boundary: the core's rule.
pub use edge_observability::json::cut;

/// The scalar members of a JSON object as attributes (strings, integers, floats, booleans;
/// nested values are skipped), at most [`MAX_ATTRIBUTES`].
pub fn from_json(v: &Value) -> Vec<KeyValue> {
    let Some(map) = v.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| {
            let key = cut(k, 256).to_owned();
            Some(match v {
                Value::String(s) => KeyValue::new(key, cut(s, MAX_VALUE_BYTES).to_owned()),
                Value::Bool(b) => KeyValue::new(key, *b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => KeyValue::new(key, i),
                    None => KeyValue::new(key, n.as_f64()?),
                },
                _ => return None,
            })
        })
        .take(MAX_ATTRIBUTES)
        .collect()
}

/// An attribute value as a log record attribute value.
pub fn any_value(v: opentelemetry::Value) -> AnyValue {
    match v {
        opentelemetry::Value::Bool(b) => AnyValue::Boolean(b),
        opentelemetry::Value::I64(i) => AnyValue::Int(i),
        opentelemetry::Value::F64(f) => AnyValue::Double(f),
        opentelemetry::Value::String(s) => AnyValue::String(s),
        other => AnyValue::String(other.to_string().into()),
    }
}

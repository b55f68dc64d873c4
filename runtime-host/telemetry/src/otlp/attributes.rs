//! JSON fields of guest lines into OpenTelemetry attributes, bounded in count and size.
//!
//! Lines are read with typed serde visitors that borrow from the line, not through
//! `serde_json::Value`: building a `Value` tree and then walking it was most of what export
//! cost per request (bench/README.md).

use std::borrow::Cow;
use std::fmt;

use opentelemetry::logs::AnyValue;
use opentelemetry::{Key, KeyValue};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Attributes kept per span or log record at most (the middleware writes about 20).
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute value kept, in bytes (cut on a character boundary).
pub const MAX_VALUE_BYTES: usize = 4096;
/// Longest attribute name kept, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// `s` cut to at most `max` bytes on a character boundary: the core's rule.
pub use edge_observability::json::cut;
use edge_observability::metrics::MAX_ERROR_TYPE_LEN;

/// One JSON value of a line, kept only when it is a scalar (strings borrow from the line when
/// they have no escapes). Objects, arrays and `null` are skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// An integer that fits `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// `null`, an object or an array.
    Skipped,
}

impl<'a> Scalar<'a> {
    /// The string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Scalar::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }

    /// As a span attribute value (strings cut to [`MAX_VALUE_BYTES`]).
    pub fn into_value(self) -> Option<opentelemetry::Value> {
        Some(match self {
            Scalar::Str(s) => owned_cut(s, MAX_VALUE_BYTES).into(),
            Scalar::Int(i) => i.into(),
            Scalar::Float(f) => f.into(),
            Scalar::Bool(b) => b.into(),
            Scalar::Skipped => return None,
        })
    }

    /// As a log record attribute value (strings cut to [`MAX_VALUE_BYTES`]).
    pub fn into_any(self) -> Option<AnyValue> {
        Some(match self {
            Scalar::Str(s) => AnyValue::String(owned_cut(s, MAX_VALUE_BYTES).into()),
            Scalar::Int(i) => AnyValue::Int(i),
            Scalar::Float(f) => AnyValue::Double(f),
            Scalar::Bool(b) => AnyValue::Boolean(b),
            Scalar::Skipped => return None,
        })
    }
}

/// An owned copy of `s` cut to `max` bytes, without a second copy when it is already owned.
pub fn owned_cut(s: Cow<'_, str>, max: usize) -> String {
    match s {
        Cow::Borrowed(b) => cut(b, max).to_owned(),
        Cow::Owned(mut o) => {
            let len = cut(&o, max).len();
            o.truncate(len);
            o
        }
    }
}

/// An attribute key for a field name, cut to [`MAX_KEY_BYTES`].
pub fn key(name: Cow<'_, str>) -> Key {
    Key::from(owned_cut(name, MAX_KEY_BYTES))
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Skipped)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Skipped)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Skipped)
    }
}

/// Reads every member of a JSON object, handing each name and value to `each` (names borrow
/// from the line when they have no escapes).
pub fn for_each_member<'de, M, F>(mut map: M, mut each: F) -> Result<(), M::Error>
where
    M: MapAccess<'de>,
    F: FnMut(Cow<'de, str>, &mut M) -> Result<(), M::Error>,
{
    while let Some(name) = map.next_key::<Cow<'de, str>>()? {
        each(name, &mut map)?;
    }
    Ok(())
}

/// The scalar members of a span line's `attributes` object as span attributes, at most
/// [`MAX_ATTRIBUTES`] (the rest are read and dropped).
#[derive(Debug, Default)]
pub struct SpanAttributes {
    /// The attributes, in line order.
    pub list: Vec<KeyValue>,
    /// `error.type`, when present (the status description of an error span).
    pub error_type: Option<String>,
}

impl<'de> Deserialize<'de> for SpanAttributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SpanAttributes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                let mut out = SpanAttributes {
                    list: Vec::with_capacity(24),
                    error_type: None,
                };
                for_each_member(map, |name, map| {
                    let value = map.next_value::<Scalar<'de>>()?;
                    if name == edge_observability::access_log::fields::ERROR_TYPE
                        && let Some(e) = value.as_str()
                    {
                        out.error_type = Some(cut(e, MAX_ERROR_TYPE_LEN).to_owned());
                    }
                    if out.list.len() < MAX_ATTRIBUTES
                        && let Some(value) = value.into_value()
                    {
                        out.list.push(KeyValue::new(key(name), value));
                    }
                    Ok(())
                })?;
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_borrow_and_skip_nested_values() {
        let line = r#"{"a":"x","b":"e\"s","c":-3,"d":18446744073709551615,"e":1.5,"f":true,"g":null,"h":{"x":[1,{}]},"i":[1]}"#;
        let got: Vec<(String, Scalar)> =
            serde_json::from_str::<std::collections::BTreeMap<String, Scalar>>(line)
                .unwrap()
                .into_iter()
                .collect();
        assert!(matches!(got[0].1, Scalar::Str(Cow::Borrowed("x"))));
        assert_eq!(got[1].1, Scalar::Str(Cow::Owned("e\"s".into())));
        assert_eq!(got[2].1, Scalar::Int(-3));
        assert_eq!(got[3].1, Scalar::Float(u64::MAX as f64));
        assert_eq!(got[4].1, Scalar::Float(1.5));
        assert_eq!(got[5].1, Scalar::Bool(true));
        for (_, skipped) in &got[6..] {
            assert_eq!(*skipped, Scalar::Skipped);
        }
    }

    #[test]
    fn span_attributes_are_bounded_in_count_and_size() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let mut members: Vec<String> = (0..100).map(|i| format!(r#""k{i}":{i}"#)).collect();
        members.insert(0, format!(r#""long":"{long}""#));
        members.insert(1, r#""error.type":"timeout""#.to_owned());
        let attrs: SpanAttributes =
            serde_json::from_str(&format!("{{{}}}", members.join(","))).unwrap();
        assert_eq!(attrs.list.len(), MAX_ATTRIBUTES);
        assert_eq!(attrs.error_type.as_deref(), Some("timeout"));
        let opentelemetry::Value::String(v) = &attrs.list[0].value else {
            panic!("{:?}", attrs.list[0]);
        };
        assert_eq!(v.as_str().len(), MAX_VALUE_BYTES);
        assert!(serde_json::from_str::<SpanAttributes>("[1]").is_err());
    }
}

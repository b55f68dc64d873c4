//! JSON fields of guest lines into OTLP `KeyValue`s, bounded in count and size.
//!
//! Lines are read with typed serde visitors that borrow from the line, not through
//! `serde_json::Value`, and the attributes are written as protobuf straight from the borrowed
//! values: building a `Value` tree, and then the SDK's own objects, was most of what export
//! cost per request (bench/README.md).

use std::borrow::Cow;
use std::fmt;

use crate::plain_json::{NotPlain, Plain, Reader};
use crate::text::Text;
use edge_observability::otlp::encode::{kv_bool, kv_double, kv_int, kv_str};
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

    /// The value [`plain_json`](crate::plain_json) read, as serde_json would have read it;
    /// `None` for an object (which the plain reader leaves to serde_json).
    pub fn from_plain(value: Plain<'a>) -> Option<Self> {
        Some(match value {
            Plain::Str(s) => Scalar::Str(Cow::Borrowed(s)),
            Plain::Uint(n) => uint(n),
            Plain::Float(f) => Scalar::Float(f),
            Plain::Bool(b) => Scalar::Bool(b),
            Plain::Null => Scalar::Skipped,
            Plain::Object => return None,
        })
    }

    /// The number, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Scalar::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }
}

/// The scalar members of a line that become attributes, in line order, at most
/// [`MAX_ATTRIBUTES`] (the rest are read and dropped). Names and values borrow from the line.
#[derive(Debug)]
pub struct Attributes<'a>(Vec<(Cow<'a, str>, Scalar<'a>)>);

impl Default for Attributes<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Attributes<'a> {
    /// Room for the attributes the middleware writes.
    pub fn new() -> Self {
        Attributes(Vec::with_capacity(24))
    }

    /// Keeps `value` under `name` unless it is not a scalar or the list is full.
    pub fn push(&mut self, name: Cow<'a, str>, value: Scalar<'a>) {
        if self.0.len() < MAX_ATTRIBUTES && value != Scalar::Skipped {
            self.0.push((name, value));
        }
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes each as a `KeyValue` (repeated field `field`), names cut to [`MAX_KEY_BYTES`]
    /// and string values to [`MAX_VALUE_BYTES`].
    pub fn encode(&self, buf: &mut Vec<u8>, field: u32) {
        for (name, value) in &self.0 {
            let key = cut(name, MAX_KEY_BYTES);
            match value {
                Scalar::Str(s) => kv_str(buf, field, key, cut(s, MAX_VALUE_BYTES)),
                Scalar::Int(i) => kv_int(buf, field, key, *i),
                Scalar::Float(f) => kv_double(buf, field, key, *f),
                Scalar::Bool(b) => kv_bool(buf, field, key, *b),
                Scalar::Skipped => {}
            }
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// An integer: an attribute's value is an `i64`, so larger ones are kept as a double.
fn uint<'a>(v: u64) -> Scalar<'a> {
    i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int)
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
        Ok(uint(v))
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
    while let Some(name) = map.next_key::<Text<'de>>()? {
        each(name.0, &mut map)?;
    }
    Ok(())
}

/// A span line's `attributes` object: its scalar members as [`Attributes`], and `error.type`
/// (the status description of an error span).
#[derive(Debug, Default)]
pub struct SpanAttributes<'a> {
    /// The attributes, in line order.
    pub list: Attributes<'a>,
    /// `error.type`, when present, cut to the metric label's length.
    pub error_type: Option<Cow<'a, str>>,
}

impl<'a> SpanAttributes<'a> {
    /// Takes in one member of the object (whichever reader read it).
    pub fn member(&mut self, name: Cow<'a, str>, value: Scalar<'a>) {
        if name == edge_observability::access_log::fields::ERROR_TYPE
            && let Scalar::Str(e) = &value
        {
            self.error_type = Some(match e {
                Cow::Borrowed(b) => Cow::Borrowed(cut(b, MAX_ERROR_TYPE_LEN)),
                Cow::Owned(o) => Cow::Owned(cut(o, MAX_ERROR_TYPE_LEN).to_owned()),
            });
        }
        self.list.push(name, value);
    }

    /// The object at `r`'s position, read by [`plain_json`](crate::plain_json) (nothing
    /// outside its subset).
    pub fn read_plain(r: &mut Reader<'a>) -> Result<Self, NotPlain> {
        let mut out = SpanAttributes::default();
        r.object(|name, r| {
            let value = Scalar::from_plain(r.value()?).ok_or(NotPlain)?;
            out.member(Cow::Borrowed(name), value);
            Ok(())
        })?;
        Ok(out)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for SpanAttributes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SpanAttributes<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                let mut out = SpanAttributes::default();
                for_each_member(map, |name, map| {
                    out.member(name, map.next_value::<Scalar<'de>>()?);
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

    /// Decodes `KeyValue`s written as field 1, the attributes of a `Resource`.
    pub(crate) fn decode(buf: &[u8]) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
        use prost::Message as _;
        opentelemetry_proto::tonic::resource::v1::Resource::decode(buf)
            .unwrap()
            .attributes
    }

    #[test]
    fn span_attributes_are_bounded_in_count_and_size_and_keep_their_types() {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let long = "é".repeat(MAX_VALUE_BYTES);
        let mut members: Vec<String> = (0..100).map(|i| format!(r#""k{i}":{i}"#)).collect();
        members.insert(0, format!(r#""long":"{long}""#));
        members.insert(1, r#""error.type":"timeout""#.to_owned());
        members.insert(
            2,
            r#""b":true,"f":1.5,"n":null,"o":{"x":1},"s":"a\"b""#.to_owned(),
        );
        let line = format!("{{{}}}", members.join(","));
        let attrs: SpanAttributes = serde_json::from_str(&line).unwrap();
        assert_eq!(attrs.list.len(), MAX_ATTRIBUTES);
        assert_eq!(attrs.error_type.as_deref(), Some("timeout"));
        let mut buf = Vec::new();
        attrs.list.encode(&mut buf, 1);
        let kvs = decode(&buf);
        assert_eq!(kvs.len(), MAX_ATTRIBUTES);
        let value = |i: usize| kvs[i].value.as_ref().unwrap().value.clone().unwrap();
        let Value::StringValue(v) = value(0) else {
            panic!("{:?}", kvs[0]);
        };
        assert_eq!(v.len(), MAX_VALUE_BYTES);
        assert_eq!(value(1), Value::StringValue("timeout".into()));
        assert_eq!(
            (kvs[2].key.as_str(), value(2)),
            ("b", Value::BoolValue(true))
        );
        assert_eq!(
            (kvs[3].key.as_str(), value(3)),
            ("f", Value::DoubleValue(1.5))
        );
        // null and objects are left out.
        assert_eq!(
            (kvs[4].key.as_str(), value(4)),
            ("s", Value::StringValue("a\"b".into()))
        );
        assert_eq!((kvs[5].key.as_str(), value(5)), ("k0", Value::IntValue(0)));
        assert!(serde_json::from_str::<SpanAttributes>("[1]").is_err());
    }
}

//! The app metric line, schema `edge_obs.app_metric.v1` (see `docs/app-metric.md`): how an
//! application behind the middleware reports its own counters, gauges and histograms by
//! printing one JSON line to stdout, which a host (runtime-host) aggregates under an `app_`
//! prefix.
//!
//! The contract lives here once: the schema name, the limits and the validation rules are used
//! by [`write`] (for apps in Rust) and by the host's parser. The middleware component itself
//! never writes these lines.

use crate::json::ObjectLine;

/// Schema name.
pub const SCHEMA: &str = "edge_obs.app_metric.v1";

/// Every app metric line starts with exactly this, so consumers tell it from other lines by
/// prefix without parsing JSON.
pub const LINE_PREFIX: &str = "{\"schema\":\"edge_obs.app_metric.v1\"";

/// Longest metric name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest attribute key.
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
/// Longest attribute value, in characters.
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 128;
/// At most this many attributes per line.
pub const MAX_ATTRIBUTES: usize = 8;
/// At most this many histogram bucket bounds.
pub const MAX_BUCKETS: usize = 32;
/// Longest line accepted, `\n` included.
pub const MAX_LINE_BYTES: usize = 4096;

/// Name suffixes that would collide with the series a Prometheus exposition derives from
/// another metric (`x_total` of a counter, `x_bucket`/`x_sum`/`x_count` of a histogram).
/// Counters may end in `_total` (it is dropped, as it is added back).
pub const RESERVED_SUFFIXES: [&str; 5] = ["_total", "_bucket", "_sum", "_count", "_created"];

/// Metric kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Monotonic; each line adds `value` (>= 0).
    Counter,
    /// Each line sets the current `value`.
    Gauge,
    /// Each line observes one `value` into explicit `buckets`.
    Histogram,
}

impl Kind {
    /// The `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }

    /// Parses the `type` field.
    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Counter, Kind::Gauge, Kind::Histogram]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Why a line was rejected (also the `reason` label of the host's invalid-line counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON, a field missing or of the wrong type, unknown `type`, wrong schema, too long.
    Syntax,
    /// The name breaks [`valid_name`].
    Name,
    /// An attribute key or value breaks [`valid_attribute_key`] / [`valid_attribute_value`],
    /// or there are too many.
    Attributes,
    /// Not finite, or negative for a counter.
    Value,
    /// Buckets missing, empty, too many, not finite or not strictly increasing, or given for
    /// something that is not a histogram.
    Buckets,
    /// `trace_id` or `span_id` breaks [`valid_trace_id`] / [`valid_span_id`], or only one of
    /// them is given. [`write`] refuses such a sample; runtime-host instead keeps the sample
    /// without an exemplar (the ids only point at a trace, the value is what counts), so it never
    /// rejects a line for this reason.
    Trace,
}

impl Invalid {
    /// Every reason.
    pub const ALL: [Invalid; 6] = [
        Invalid::Syntax,
        Invalid::Name,
        Invalid::Attributes,
        Invalid::Value,
        Invalid::Buckets,
        Invalid::Trace,
    ];

    /// Short name, used as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Syntax => "syntax",
            Invalid::Name => "name",
            Invalid::Attributes => "attributes",
            Invalid::Value => "value",
            Invalid::Buckets => "buckets",
            Invalid::Trace => "trace",
        }
    }
}

fn identifier(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    (1..=max).contains(&b.len())
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
        && !s.starts_with("__")
}

/// A metric name: a letter or `_`, then letters, digits, `_` or `.` (dots become `_` in
/// Prometheus), at most [`MAX_NAME_LEN`], not starting with `__`, not ending in a
/// [`RESERVED_SUFFIXES`] entry (counters may end in `_total`).
pub fn valid_name(name: &str, kind: Kind) -> bool {
    identifier(name, MAX_NAME_LEN)
        && RESERVED_SUFFIXES
            .iter()
            .all(|s| !name.ends_with(s) || (kind == Kind::Counter && *s == "_total"))
}

/// An attribute key: like a name (at most [`MAX_ATTRIBUTE_KEY_LEN`]), and not `le` or
/// `quantile`, which Prometheus reserves.
pub fn valid_attribute_key(key: &str) -> bool {
    identifier(key, MAX_ATTRIBUTE_KEY_LEN) && key != "le" && key != "quantile"
}

/// An attribute value: at most [`MAX_ATTRIBUTE_VALUE_CHARS`] characters, no control
/// characters.
pub fn valid_attribute_value(value: &str) -> bool {
    value.chars().count() <= MAX_ATTRIBUTE_VALUE_CHARS && !value.chars().any(char::is_control)
}

/// Histogram bounds: 1 to [`MAX_BUCKETS`] finite numbers, strictly increasing.
pub fn valid_buckets(buckets: &[f64]) -> bool {
    (1..=MAX_BUCKETS).contains(&buckets.len())
        && buckets.iter().all(|b| b.is_finite())
        && buckets.windows(2).all(|w| w[0] < w[1])
}

/// `n` lowercase hex digits, not all zero: a W3C trace context id as the middleware writes it.
fn lower_hex_id(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s.bytes().any(|b| b != b'0')
}

/// A trace id: 32 lowercase hex digits, not all zero (all zero is invalid in trace context).
pub fn valid_trace_id(id: &str) -> bool {
    lower_hex_id(id, 32)
}

/// A span id: 16 lowercase hex digits, not all zero.
pub fn valid_span_id(id: &str) -> bool {
    lower_hex_id(id, 16)
}

/// The Prometheus name of an app metric: `app_` + the name with dots as `_` (and a counter's
/// `_total` dropped, as the exposition adds it back).
pub fn prometheus_name(name: &str, kind: Kind) -> String {
    let base = if kind == Kind::Counter {
        name.strip_suffix("_total").unwrap_or(name)
    } else {
        name
    };
    format!("app_{}", base.replace('.', "_"))
}

/// The sampled trace (and span in it) a sample was taken in: the `trace_id` and `span_id`
/// fields, which a host turns into an exemplar pointing at that trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace<'a> {
    /// The trace id ([`valid_trace_id`]).
    pub trace_id: &'a str,
    /// The id of the span the sample was taken in ([`valid_span_id`]).
    pub span_id: &'a str,
}

/// One app metric sample, to write.
#[derive(Clone, Copy, Debug)]
pub struct AppMetric<'a> {
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The metric name ([`valid_name`]).
    pub name: &'a str,
    /// The increment (counter), the current value (gauge) or the observation (histogram).
    pub value: f64,
    /// Histogram bucket upper bounds; empty for counters and gauges.
    pub buckets: &'a [f64],
    /// Attributes (become labels), keys by [`valid_attribute_key`].
    pub attributes: &'a [(&'a str, &'a str)],
    /// The sampled trace the sample was taken in, if any. Only set it for a sampled trace:
    /// an exemplar pointing at a trace no backend kept is a dead link. Gauges may carry it, but
    /// runtime-host ignores it there (OpenMetrics has no gauge exemplars).
    pub trace: Option<Trace<'a>>,
}

/// Checks a sample against the schema's rules.
pub fn validate(m: &AppMetric<'_>) -> Result<(), Invalid> {
    if !valid_name(m.name, m.kind) {
        return Err(Invalid::Name);
    }
    if !m.value.is_finite() || (m.kind == Kind::Counter && m.value < 0.0) {
        return Err(Invalid::Value);
    }
    let buckets_ok = match m.kind {
        Kind::Histogram => valid_buckets(m.buckets),
        _ => m.buckets.is_empty(),
    };
    if !buckets_ok {
        return Err(Invalid::Buckets);
    }
    let mut keys: Vec<String> = Vec::with_capacity(m.attributes.len());
    for (k, v) in m.attributes {
        let key = k.replace('.', "_");
        if !valid_attribute_key(k) || !valid_attribute_value(v) || keys.contains(&key) {
            return Err(Invalid::Attributes);
        }
        keys.push(key);
    }
    if m.attributes.len() > MAX_ATTRIBUTES {
        return Err(Invalid::Attributes);
    }
    // Last, so that for a host an `Invalid::Trace` means the sample itself is fine.
    if let Some(t) = m.trace
        && !(valid_trace_id(t.trace_id) && valid_span_id(t.span_id))
    {
        return Err(Invalid::Trace);
    }
    Ok(())
}

/// Appends the line of `m` (ending in `\n`) to `out`, after checking it with [`validate`]
/// (nothing is written for an invalid sample).
pub fn write(m: &AppMetric<'_>, out: &mut String) -> Result<(), Invalid> {
    validate(m)?;
    let mut line = ObjectLine::begin(out, MAX_LINE_BYTES);
    line.str("schema", SCHEMA, 32);
    line.plain("type", m.kind.as_str());
    line.plain("name", m.name);
    line.raw("value", &number(m.value));
    if m.kind == Kind::Histogram {
        let list: Vec<String> = m.buckets.iter().map(|b| number(*b)).collect();
        line.raw("buckets", &format!("[{}]", list.join(",")));
    }
    // Before the attributes: short and fixed, so they always fit the line.
    if let Some(t) = m.trace {
        line.plain("trace_id", t.trace_id);
        line.plain("span_id", t.span_id);
    }
    line.begin_object("attributes");
    for (k, v) in m.attributes {
        line.str(k, v, MAX_ATTRIBUTE_VALUE_CHARS);
    }
    line.end_object();
    line.finish();
    Ok(())
}

/// A finite number as JSON (Rust's shortest round-trip form, never an exponent).
fn number(v: f64) -> String {
    let mut s = format!("{v}");
    if s == "-0" {
        s = "0".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter<'a>(name: &'a str, attrs: &'a [(&'a str, &'a str)]) -> AppMetric<'a> {
        AppMetric {
            kind: Kind::Counter,
            name,
            value: 1.0,
            buckets: &[],
            attributes: attrs,
            trace: None,
        }
    }

    #[test]
    fn writes_the_documented_lines() {
        let mut out = String::new();
        write(
            &counter("orders.placed", &[("payment.method", "card")]),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            "{\"schema\":\"edge_obs.app_metric.v1\",\"type\":\"counter\",\"name\":\"orders.placed\",\"value\":1,\"attributes\":{\"payment.method\":\"card\"}}\n"
        );
        assert!(out.starts_with(LINE_PREFIX));
        out.clear();
        let h = AppMetric {
            kind: Kind::Histogram,
            name: "order_value",
            value: 42.5,
            buckets: &[10.0, 50.0, 100.0, 0.5e3],
            attributes: &[],
            trace: None,
        };
        write(&h, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["buckets"], serde_json::json!([10, 50, 100, 500]));
        assert_eq!(v["value"], 42.5);
        assert!(v["attributes"].as_object().unwrap().is_empty());
    }

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN_ID: &str = "00f067aa0ba902b7";

    #[test]
    fn writes_trace_ids_only_when_set() {
        let mut out = String::new();
        let mut m = counter("orders.placed", &[("payment.method", "card")]);
        m.trace = Some(Trace {
            trace_id: TRACE_ID,
            span_id: SPAN_ID,
        });
        write(&m, &mut out).unwrap();
        assert_eq!(
            out,
            "{\"schema\":\"edge_obs.app_metric.v1\",\"type\":\"counter\",\"name\":\"orders.placed\",\"value\":1,\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\",\"attributes\":{\"payment.method\":\"card\"}}\n"
        );
        assert!(out.starts_with(LINE_PREFIX));
        out.clear();
        write(&counter("x", &[]), &mut out).unwrap();
        assert!(
            !out.contains("trace_id") && !out.contains("span_id"),
            "{out}"
        );
    }

    #[test]
    fn malformed_trace_ids_are_refused() {
        assert!(valid_trace_id(TRACE_ID) && valid_span_id(SPAN_ID));
        let upper = TRACE_ID.to_uppercase();
        let zero_trace = "0".repeat(32);
        let zero_span = "0".repeat(16);
        let long_trace = format!("{TRACE_ID}0");
        let bad = [
            (upper.as_str(), SPAN_ID),
            (zero_trace.as_str(), SPAN_ID),
            (&TRACE_ID[1..], SPAN_ID),
            (long_trace.as_str(), SPAN_ID),
            ("4bf92f3577b34da6a3ce929d0e0e473g", SPAN_ID),
            (TRACE_ID, zero_span.as_str()),
            (TRACE_ID, "00F067AA0BA902B7"),
            (TRACE_ID, &SPAN_ID[1..]),
            // Swapped: each id has its own length.
            (SPAN_ID, TRACE_ID),
            ("", ""),
        ];
        let mut out = String::new();
        for (trace_id, span_id) in bad {
            let mut m = counter("x", &[]);
            m.trace = Some(Trace { trace_id, span_id });
            assert_eq!(validate(&m), Err(Invalid::Trace), "{trace_id} {span_id}");
            assert_eq!(write(&m, &mut out), Err(Invalid::Trace));
        }
        assert!(out.is_empty(), "nothing written for invalid ids");
        // Another fault of the sample is reported first: `Trace` means the rest is valid.
        let mut m = counter("bad-name", &[]);
        m.trace = Some(Trace {
            trace_id: "",
            span_id: "",
        });
        assert_eq!(validate(&m), Err(Invalid::Name));
    }

    #[test]
    fn escapes_attribute_values() {
        let mut out = String::new();
        write(&counter("x", &[("k", "a\"b\\c")]), &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["attributes"]["k"], "a\"b\\c");
    }

    #[test]
    fn names() {
        for ok in ["a", "orders_placed", "http.client.calls", "_x", "A1"] {
            assert!(valid_name(ok, Kind::Gauge), "{ok}");
        }
        for bad in [
            "", "1a", "a-b", "a b", "__x", "é", "x_bucket", "x_sum", "x_count", "x_total",
        ] {
            assert!(!valid_name(bad, Kind::Gauge), "{bad}");
        }
        assert!(valid_name("x_total", Kind::Counter));
        assert!(!valid_name(&"a".repeat(MAX_NAME_LEN + 1), Kind::Gauge));
        assert_eq!(
            prometheus_name("orders.placed_total", Kind::Counter),
            "app_orders_placed"
        );
        assert_eq!(
            prometheus_name("queue.depth", Kind::Gauge),
            "app_queue_depth"
        );
    }

    #[test]
    fn invalid_samples_are_refused() {
        let mut out = String::new();
        let mut m = counter("x", &[]);
        m.value = -1.0;
        assert_eq!(write(&m, &mut out), Err(Invalid::Value));
        m.value = f64::NAN;
        assert_eq!(write(&m, &mut out), Err(Invalid::Value));
        m.value = 1.0;
        m.buckets = &[1.0];
        assert_eq!(write(&m, &mut out), Err(Invalid::Buckets));
        m.kind = Kind::Histogram;
        m.buckets = &[2.0, 1.0];
        assert_eq!(write(&m, &mut out), Err(Invalid::Buckets));
        m.buckets = &[];
        assert_eq!(write(&m, &mut out), Err(Invalid::Buckets));
        let m = counter("x", &[("le", "1")]);
        assert_eq!(write(&m, &mut out), Err(Invalid::Attributes));
        let m = counter("x", &[("a.b", "1"), ("a_b", "2")]);
        assert_eq!(write(&m, &mut out), Err(Invalid::Attributes));
        let m = counter("x", &[("k", "line\nbreak")]);
        assert_eq!(write(&m, &mut out), Err(Invalid::Attributes));
        let long = "v".repeat(MAX_ATTRIBUTE_VALUE_CHARS + 1);
        let attrs = [("k", long.as_str())];
        assert_eq!(
            write(&counter("x", &attrs), &mut out),
            Err(Invalid::Attributes)
        );
        let many: Vec<(String, &str)> = (0..=MAX_ATTRIBUTES)
            .map(|i| (format!("k{i}"), "v"))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            write(&counter("x", &many), &mut out),
            Err(Invalid::Attributes)
        );
        assert!(out.is_empty(), "nothing written for invalid samples");
    }
}

//! The applications' own metrics: `edge_obs.app_metric.v1` lines (schema and rules in the core
//! crate's `app_metric` module, documented in `docs/app-metric.md`) aggregated into `/metrics`
//! under an `app_` prefix.
//!
//! Any guest may print these lines (they are business metrics, not HTTP request metrics, so
//! there is nothing to forge). A line is only ever counted or rejected: an invalid line bumps
//! `runtime_host_app_metric_invalid_total{reason}` and is dropped, never fatal. Cardinality is
//! bounded twice: at most [`MAX_METRICS`] metric names, and at most [`MAX_SERIES_PER_METRIC`]
//! label sets per metric (further label sets are dropped and counted in
//! `runtime_host_app_metric_label_overflow_total`).
//!
//! # Exemplars
//!
//! A counter or histogram line with `trace_id` and `span_id` (a sample taken in a sampled trace)
//! leaves an exemplar, with the rules of the HTTP request metrics ([`crate::metrics`]): labelled
//! by [`TraceRef`], valued the sample's value, time-stamped when the host recorded it; the
//! latest per counter series, and per bucket (the one the value fell into) of a histogram
//! series. Lines without ids leave the exemplars alone. Gauges take none: OpenMetrics has no
//! gauge exemplars. Like all exemplars they are only in OpenMetrics scrapes.
//!
//! Malformed ids cost the exemplar, not the sample: the ids only point at a trace, while the
//! value is what the metric is about, and an app that got its id formatting wrong should not
//! lose its business metrics over it. So such a line is recorded without an exemplar and counted
//! in `runtime_host_app_metric_invalid_trace_total`, not in
//! `runtime_host_app_metric_invalid_total`, which counts lines that were dropped.

use crate::metric_event::TraceRef;
use edge_observability::app_metric::{self, AppMetric, Invalid, Kind, Trace};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{Atomic, Counter};
use prometheus_client::metrics::exemplar::{CounterWithExemplar, HistogramWithExemplars};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// At most this many distinct app metrics; lines for further names are rejected.
pub const MAX_METRICS: usize = 200;
/// At most this many label sets per app metric.
pub const MAX_SERIES_PER_METRIC: usize = 100;

/// A label set: (Prometheus label name, value), sorted by name.
type Labels = Vec<(String, String)>;

/// One series. Counters and histograms are prometheus-client's exemplar-carrying metrics:
/// its `Exemplar` has no public constructor (0.24), so they are the only way to hand exemplars
/// to `encode_counter` / `encode_histogram`. Their own locks are uncontended (every access is
/// under [`AppMetrics`]' mutex).
#[derive(Debug)]
enum Series {
    Counter(CounterWithExemplar<TraceRef, f64, AtomicU64>),
    Gauge(f64),
    Histogram(HistogramWithExemplars<TraceRef>),
}

#[derive(Debug)]
struct Metric {
    kind: Kind,
    /// The app's name, for the help text.
    name: String,
    buckets: Vec<f64>,
    series: HashMap<Labels, Series>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The app metrics of one host, registered in its Prometheus registry.
#[derive(Debug)]
pub struct AppMetrics {
    /// By Prometheus name (`app_...`), so two app names that map to one series name are one
    /// metric (and must agree on kind and buckets).
    metrics: Mutex<BTreeMap<String, Metric>>,
    invalid: Family<ReasonLabels, Counter>,
    overflow: Counter,
    invalid_trace: Counter,
}

/// The wire form; unknown fields are ignored so fields can be added within v1.
#[derive(Deserialize)]
struct RawLine {
    schema: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    value: f64,
    #[serde(default)]
    buckets: Vec<f64>,
    #[serde(default)]
    attributes: BTreeMap<String, serde_json::Value>,
    /// Any JSON, so that a malformed id (a number, say) costs the exemplar, not the line.
    trace_id: Option<serde_json::Value>,
    span_id: Option<serde_json::Value>,
}

/// Whether a guest output line is an app metric line (by its prefix).
pub fn is_app_metric_line(line: &[u8]) -> bool {
    line.starts_with(app_metric::LINE_PREFIX.as_bytes())
}

impl AppMetrics {
    /// Creates the app metrics and registers them (and their invalid-line and overflow
    /// counters) in `registry`.
    pub fn register(registry: &mut Registry) -> Arc<AppMetrics> {
        let invalid = Family::<ReasonLabels, Counter>::default();
        // Malformed trace ids never drop a line (module docs): no `reason="trace"` series.
        for reason in Invalid::ALL.into_iter().filter(|r| *r != Invalid::Trace) {
            drop(invalid.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            }));
        }
        registry.register(
            "runtime_host_app_metric_invalid",
            "Number of edge_obs.app_metric.v1 lines rejected, by reason",
            invalid.clone(),
        );
        let overflow = Counter::default();
        registry.register(
            "runtime_host_app_metric_label_overflow",
            "Number of app metric samples dropped because their metric reached its label set cap",
            overflow.clone(),
        );
        let invalid_trace = Counter::default();
        registry.register(
            "runtime_host_app_metric_invalid_trace",
            "Number of app metric samples recorded without their exemplar because their trace or span id was malformed",
            invalid_trace.clone(),
        );
        let app = Arc::new(AppMetrics {
            metrics: Mutex::new(BTreeMap::new()),
            invalid,
            overflow,
            invalid_trace,
        });
        registry.register_collector(Box::new(app.clone()));
        app
    }

    fn reject(&self, why: Invalid) -> Result<(), Invalid> {
        self.invalid
            .get_or_create(&ReasonLabels {
                reason: why.as_str(),
            })
            .inc();
        Err(why)
    }

    /// Records one line (with or without its `\n`). An invalid line is counted and its reason
    /// returned; it never affects other metrics. A line whose only fault is a malformed
    /// `trace_id` or `span_id` is recorded without an exemplar (module docs) and is `Ok`.
    pub fn record_line(&self, line: &[u8]) -> Result<(), Invalid> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.len() >= app_metric::MAX_LINE_BYTES {
            return self.reject(Invalid::Syntax);
        }
        let Ok(raw) = serde_json::from_slice::<RawLine>(line) else {
            return self.reject(Invalid::Syntax);
        };
        let Some(kind) = Kind::parse(&raw.kind).filter(|_| raw.schema == app_metric::SCHEMA) else {
            return self.reject(Invalid::Syntax);
        };
        let mut values: Vec<(&str, String)> = Vec::with_capacity(raw.attributes.len());
        for (k, v) in &raw.attributes {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return self.reject(Invalid::Attributes),
            };
            values.push((k.as_str(), text));
        }
        let attributes: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Ids that are not two strings are as malformed as ill-formatted ones; `validate` says so.
        let trace = match (&raw.trace_id, &raw.span_id) {
            (None, None) => None,
            (
                Some(serde_json::Value::String(trace_id)),
                Some(serde_json::Value::String(span_id)),
            ) => Some(Trace { trace_id, span_id }),
            _ => Some(Trace {
                trace_id: "",
                span_id: "",
            }),
        };
        let mut sample = AppMetric {
            kind,
            name: &raw.name,
            value: raw.value,
            buckets: &raw.buckets,
            attributes: &attributes,
            trace,
        };
        let mut trace_dropped = false;
        match app_metric::validate(&sample) {
            Ok(()) => {}
            // `validate` checks the ids last: the sample itself is valid.
            Err(Invalid::Trace) => {
                sample.trace = None;
                trace_dropped = true;
            }
            Err(why) => return self.reject(why),
        }
        let mut labels: Labels = attributes
            .iter()
            .map(|(k, v)| (k.replace('.', "_"), escape_label_value(v)))
            .collect();
        labels.sort();
        // Validated, so `parse` (the same rules) accepts the ids.
        let exemplar = sample
            .trace
            .and_then(|t| TraceRef::parse(t.trace_id, t.span_id));
        self.record(&sample, labels, exemplar)?;
        if trace_dropped {
            self.invalid_trace.inc();
            tracing::warn!(
                metric = sample.name,
                "recorded an app metric line without its exemplar: its trace_id or span_id is malformed"
            );
        }
        Ok(())
    }

    fn record(
        &self,
        m: &AppMetric<'_>,
        labels: Labels,
        exemplar: Option<TraceRef>,
    ) -> Result<(), Invalid> {
        let prom_name = app_metric::prometheus_name(m.name, m.kind);
        let mut metrics = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        if !metrics.contains_key(&prom_name) && metrics.len() >= MAX_METRICS {
            drop(metrics);
            return self.reject(Invalid::Name);
        }
        let metric = metrics.entry(prom_name).or_insert_with(|| Metric {
            kind: m.kind,
            name: m.name.to_owned(),
            buckets: m.buckets.to_vec(),
            series: HashMap::new(),
        });
        // One name, one kind and one bucket layout: the first line decides.
        if metric.kind != m.kind {
            drop(metrics);
            return self.reject(Invalid::Syntax);
        }
        if metric.buckets != m.buckets {
            drop(metrics);
            return self.reject(Invalid::Buckets);
        }
        let series_count = metric.series.len();
        let series = match metric.series.entry(labels) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if series_count >= MAX_SERIES_PER_METRIC => {
                self.overflow.inc();
                return Ok(());
            }
            Entry::Vacant(e) => e.insert(match m.kind {
                Kind::Counter => Series::Counter(CounterWithExemplar::default()),
                Kind::Gauge => Series::Gauge(0.0),
                Kind::Histogram => {
                    Series::Histogram(HistogramWithExemplars::new(m.buckets.iter().copied()))
                }
            }),
        };
        // The clock is read only for an exemplar.
        let now = exemplar.map(|_| SystemTime::now());
        match series {
            Series::Counter(c) => match exemplar {
                Some(trace) => {
                    c.inc_by(m.value, Some(trace), now);
                }
                // `inc_by(v, None, _)` would clear the exemplar of the last line with ids.
                None => {
                    Atomic::<f64>::inc_by(&*c.inner(), m.value);
                }
            },
            Series::Gauge(current) => *current = m.value,
            // Without ids, `observe` leaves the bucket's exemplar as it is.
            Series::Histogram(h) => h.observe(m.value, exemplar, now),
        }
        Ok(())
    }
}

impl Collector for AppMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        for (prom_name, metric) in metrics.iter() {
            let metric_type = match metric.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            // The registry adds no prefix here; the name is ours to write in full.
            let help = format!(
                "Application metric {} ({})",
                metric.name,
                app_metric::SCHEMA
            );
            let mut family = encoder.encode_descriptor(prom_name, &help, None, metric_type)?;
            // No attributes: a plain sample, not an empty `{}` label set. That one is encoded
            // by the family's own encoder, which it consumes, so it goes last.
            let mut plain = None;
            for (labels, series) in &metric.series {
                if labels.is_empty() {
                    plain = Some(series);
                } else {
                    encode_series(family.encode_family(labels)?, series)?;
                }
            }
            if let Some(series) = plain {
                encode_series(family, series)?;
            }
        }
        Ok(())
    }
}

/// Encodes one series; counters and histograms with their exemplars (prometheus-client's
/// `encode` passes them to `encode_counter` / `encode_histogram`).
fn encode_series(mut encoder: MetricEncoder<'_>, series: &Series) -> Result<(), std::fmt::Error> {
    match series {
        Series::Counter(c) => c.encode(encoder),
        Series::Gauge(v) => encoder.encode_gauge(v),
        Series::Histogram(h) => h.encode(encoder),
    }
}

/// `v` escaped for a label value of the text formats (both Prometheus 0.0.4 and OpenMetrics
/// escape `\\`, `"` and line feed the same way). prometheus-client 0.24 writes label values
/// verbatim, so every value that comes from outside (an app's attributes) must pass through
/// here: one unescaped `"` makes Prometheus reject the whole scrape.
fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text;

    fn setup() -> (Registry, Arc<AppMetrics>) {
        let mut registry = Registry::default();
        let app = AppMetrics::register(&mut registry);
        (registry, app)
    }

    fn scrape(registry: &Registry) -> String {
        let mut s = String::new();
        text::encode(&mut s, registry).unwrap();
        s
    }

    fn line(kind: &str, name: &str, value: &str, rest: &str) -> Vec<u8> {
        format!(
            "{{\"schema\":\"edge_obs.app_metric.v1\",\"type\":\"{kind}\",\"name\":\"{name}\",\"value\":{value}{rest}}}\n"
        )
        .into_bytes()
    }

    #[test]
    fn counters_gauges_and_histograms_aggregate() {
        let (registry, app) = setup();
        let attrs = r#","attributes":{"payment.method":"card","retry":false}"#;
        app.record_line(&line("counter", "orders.placed", "1", attrs))
            .unwrap();
        app.record_line(&line("counter", "orders.placed", "2.5", attrs))
            .unwrap();
        app.record_line(&line("gauge", "queue_depth", "7", ""))
            .unwrap();
        app.record_line(&line("gauge", "queue_depth", "3", ""))
            .unwrap();
        let buckets = r#","buckets":[10,100]"#;
        for v in ["5", "50", "500"] {
            app.record_line(&line("histogram", "order_value", v, buckets))
                .unwrap();
        }
        let out = scrape(&registry);
        assert!(
            out.contains(r#"app_orders_placed_total{payment_method="card",retry="false"} 3.5"#),
            "{out}"
        );
        assert!(out.contains("app_queue_depth 3"), "{out}");
        assert!(
            out.contains(r#"app_order_value_bucket{le="10.0"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"app_order_value_bucket{le="100.0"} 2"#),
            "{out}"
        );
        assert!(
            out.contains(r#"app_order_value_bucket{le="+Inf"} 3"#),
            "{out}"
        );
        assert!(out.contains("app_order_value_sum 555.0"), "{out}");
        assert!(out.contains("app_order_value_count 3"), "{out}");
    }

    const TRACE_A: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const TRACE_B: &str = "0af7651916cd43dd8448eb211c80319c";
    const SPAN_A: &str = "00f067aa0ba902b7";
    const SPAN_B: &str = "b7ad6b7169203331";

    fn ids(trace_id: &str, span_id: &str) -> String {
        format!(r#","trace_id":"{trace_id}","span_id":"{span_id}""#)
    }

    /// The sample line of `series` (name and labels exactly as encoded).
    fn sample_line<'a>(out: &'a str, series: &str) -> &'a str {
        out.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{out}"))
    }

    /// What follows the sample value on `line`: ` # {labels} value timestamp`, checking the
    /// timestamp is a plausible now (seconds since the epoch).
    fn exemplar_of(line: &str) -> Option<String> {
        let (_, exemplar) = line.split_once(" # ")?;
        let (rest, ts) = exemplar.rsplit_once(' ').expect("exemplar has a timestamp");
        let ts: f64 = ts.parse().expect("a numeric timestamp");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - 60.0..=now + 1.0).contains(&ts), "{line}");
        Some(rest.to_owned())
    }

    #[test]
    fn counter_exemplar_is_the_latest_line_with_ids() {
        let (registry, app) = setup();
        let attrs = r#","attributes":{"payment.method":"card"}"#;
        let series = r#"app_orders_placed_total{payment_method="card"}"#;
        app.record_line(&line("counter", "orders.placed", "1", attrs))
            .unwrap();
        let out = scrape(&registry);
        assert_eq!(exemplar_of(sample_line(&out, series)), None, "{out}");

        let with_a = format!("{}{attrs}", ids(TRACE_A, SPAN_A));
        app.record_line(&line("counter", "orders.placed", "2", &with_a))
            .unwrap();
        let out = scrape(&registry);
        let l = sample_line(&out, series);
        assert!(l.starts_with(&format!("{series} 3.0 # ")), "{l}");
        assert_eq!(
            exemplar_of(l).as_deref(),
            Some(format!(r#"{{trace_id="{TRACE_A}",span_id="{SPAN_A}"}} 2.0"#).as_str())
        );

        // The latest line with ids wins.
        let with_b = format!("{}{attrs}", ids(TRACE_B, SPAN_B));
        app.record_line(&line("counter", "orders.placed", "0.5", &with_b))
            .unwrap();
        // A line without ids counts, and keeps the exemplar.
        app.record_line(&line("counter", "orders.placed", "4", attrs))
            .unwrap();
        let out = scrape(&registry);
        let l = sample_line(&out, series);
        assert!(l.starts_with(&format!("{series} 7.5 # ")), "{l}");
        assert_eq!(
            exemplar_of(l).as_deref(),
            Some(format!(r#"{{trace_id="{TRACE_B}",span_id="{SPAN_B}"}} 0.5"#).as_str())
        );
        // Per series: another label set has its own (none here).
        app.record_line(&line(
            "counter",
            "orders.placed",
            "1",
            r#","attributes":{"payment.method":"cash"}"#,
        ))
        .unwrap();
        let out = scrape(&registry);
        let cash = sample_line(&out, r#"app_orders_placed_total{payment_method="cash"}"#);
        assert_eq!(exemplar_of(cash), None, "{out}");
    }

    #[test]
    fn histogram_exemplars_are_the_latest_per_bucket() {
        let (registry, app) = setup();
        let buckets = r#","buckets":[10,100]"#;
        let record = |v: &str, extra: &str| {
            app.record_line(&line(
                "histogram",
                "order_value",
                v,
                &format!("{buckets}{extra}"),
            ))
            .unwrap()
        };
        record("5", &ids(TRACE_A, SPAN_A));
        record("7", &ids(TRACE_B, SPAN_B));
        record("50", &ids(TRACE_A, SPAN_B));
        record("500", "");
        // Without ids, into buckets that have exemplars: they stay.
        record("6", "");
        record("60", "");
        let out = scrape(&registry);
        let bucket =
            |le: &str| sample_line(&out, &format!(r#"app_order_value_bucket{{le="{le}"}}"#));
        assert!(bucket("10.0").starts_with(r#"app_order_value_bucket{le="10.0"} 3 # "#));
        assert_eq!(
            exemplar_of(bucket("10.0")).as_deref(),
            Some(format!(r#"{{trace_id="{TRACE_B}",span_id="{SPAN_B}"}} 7.0"#).as_str()),
            "{out}"
        );
        assert_eq!(
            exemplar_of(bucket("100.0")).as_deref(),
            Some(format!(r#"{{trace_id="{TRACE_A}",span_id="{SPAN_B}"}} 50.0"#).as_str()),
            "{out}"
        );
        // No line with ids fell into +Inf.
        assert_eq!(bucket("+Inf"), r#"app_order_value_bucket{le="+Inf"} 6"#);
        assert!(out.contains("app_order_value_sum 628.0\n"), "{out}");
        assert!(out.contains("app_order_value_count 6\n"), "{out}");
        assert_eq!(out.matches(" # {").count(), 2, "{out}");
    }

    #[test]
    fn gauges_take_no_exemplars() {
        let (registry, app) = setup();
        app.record_line(&line("gauge", "queue_depth", "7", &ids(TRACE_A, SPAN_A)))
            .unwrap();
        let out = scrape(&registry);
        assert_eq!(sample_line(&out, "app_queue_depth"), "app_queue_depth 7.0");
        assert!(!out.contains(TRACE_A), "{out}");
    }

    #[test]
    fn malformed_ids_keep_the_sample_without_exemplar() {
        let (registry, app) = setup();
        let upper = TRACE_A.to_uppercase();
        let zero = "0".repeat(32);
        let bad = [
            ids(&upper, SPAN_A),
            ids(&zero, SPAN_A),
            ids(TRACE_A, &SPAN_A[1..]),
            ids(SPAN_A, TRACE_A),
            format!(r#","trace_id":"{TRACE_A}""#),
            format!(r#","span_id":"{SPAN_A}""#),
            format!(r#","trace_id":1,"span_id":"{SPAN_A}""#),
        ];
        for extra in &bad {
            assert_eq!(
                app.record_line(&line("counter", "c", "1", extra)),
                Ok(()),
                "{extra}"
            );
            assert_eq!(
                app.record_line(&line(
                    "histogram",
                    "h",
                    "1",
                    &format!(r#","buckets":[10]{extra}"#)
                )),
                Ok(()),
                "{extra}"
            );
        }
        // A line that is invalid for another reason is still rejected, as that.
        assert_eq!(
            app.record_line(&line("counter", "c", "-1", &ids(&upper, SPAN_A))),
            Err(Invalid::Value)
        );
        let out = scrape(&registry);
        assert_eq!(sample_line(&out, "app_c_total"), "app_c_total 7.0", "{out}");
        assert_eq!(
            sample_line(&out, r#"app_h_bucket{le="10.0"}"#),
            r#"app_h_bucket{le="10.0"} 7"#
        );
        assert!(!out.contains(" # {"), "{out}");
        assert!(
            out.contains(&format!(
                "runtime_host_app_metric_invalid_trace_total {}\n",
                2 * bad.len()
            )),
            "{out}"
        );
        assert!(
            out.contains(r#"runtime_host_app_metric_invalid_total{reason="value"} 1"#),
            "{out}"
        );
        assert!(!out.contains(r#"reason="trace""#), "{out}");
        // A malformed line after a good one keeps the good one's exemplar.
        app.record_line(&line("counter", "c", "1", &ids(TRACE_A, SPAN_A)))
            .unwrap();
        app.record_line(&line("counter", "c", "1", &ids(&upper, SPAN_A)))
            .unwrap();
        let out = scrape(&registry);
        assert_eq!(
            exemplar_of(sample_line(&out, "app_c_total")).as_deref(),
            Some(format!(r#"{{trace_id="{TRACE_A}",span_id="{SPAN_A}"}} 1.0"#).as_str())
        );
    }

    #[test]
    fn label_values_are_escaped_for_the_text_formats() {
        let (registry, app) = setup();
        // The JSON value is `a"b\c`: unescaped, the quote would end the label value and
        // Prometheus would reject the whole scrape.
        let attrs = r#","attributes":{"k":"a\"b\\c"}"#;
        app.record_line(&line("counter", "x", "1", attrs)).unwrap();
        let out = scrape(&registry);
        assert!(out.contains(r#"app_x_total{k="a\"b\\c"} 1"#), "{out}");
    }

    #[test]
    fn invalid_lines_are_counted_not_fatal() {
        let (registry, app) = setup();
        let cases: Vec<(Vec<u8>, Invalid)> = vec![
            (b"{\"schema\":\"edge_obs.app_metric.v1\" garbage".to_vec(), Invalid::Syntax),
            (line("summary", "x", "1", ""), Invalid::Syntax),
            (line("counter", "bad-name", "1", ""), Invalid::Name),
            (line("counter", "x", "-1", ""), Invalid::Value),
            (line("counter", "x", "1", r#","attributes":{"le":"1"}"#), Invalid::Attributes),
            (line("counter", "x", "1", r#","attributes":{"k":{"nested":1}}"#), Invalid::Attributes),
            (line("counter", "x", "1", r#","attributes":{"k":"a\nb"}"#), Invalid::Attributes),
            (line("histogram", "h", "1", ""), Invalid::Buckets),
            (line("histogram", "h", "1", r#","buckets":[2,1]"#), Invalid::Buckets),
            (line("gauge", "g", "1", r#","buckets":[1]"#), Invalid::Buckets),
            (format!("{{\"schema\":\"edge_obs.app_metric.v1\",\"type\":\"counter\",\"name\":\"x\",\"value\":1,\"pad\":\"{}\"}}", "p".repeat(5000)).into_bytes(), Invalid::Syntax),
        ];
        for (l, why) in &cases {
            assert_eq!(
                app.record_line(l),
                Err(*why),
                "{}",
                String::from_utf8_lossy(l)
            );
        }
        // A name keeps its first kind and buckets.
        app.record_line(&line("counter", "c", "1", "")).unwrap();
        assert_eq!(
            app.record_line(&line("gauge", "c", "1", "")),
            Err(Invalid::Syntax)
        );
        app.record_line(&line("histogram", "h2", "1", r#","buckets":[1]"#))
            .unwrap();
        assert_eq!(
            app.record_line(&line("histogram", "h2", "1", r#","buckets":[2]"#)),
            Err(Invalid::Buckets)
        );
        let out = scrape(&registry);
        assert!(
            out.contains(r#"runtime_host_app_metric_invalid_total{reason="syntax"} 4"#),
            "{out}"
        );
        assert!(
            out.contains(r#"runtime_host_app_metric_invalid_total{reason="buckets"} 4"#),
            "{out}"
        );
        assert!(out.contains("app_c_total 1"), "{out}");
    }

    #[test]
    fn label_sets_and_names_are_capped() {
        let (registry, app) = setup();
        for i in 0..MAX_SERIES_PER_METRIC + 10 {
            let attrs = format!(r#","attributes":{{"user":"u{i}"}}"#);
            app.record_line(&line("counter", "logins", "1", &attrs))
                .unwrap();
        }
        for i in 0..MAX_METRICS + 5 {
            let _ = app.record_line(&line("gauge", &format!("g{i}"), "1", ""));
        }
        let out = scrape(&registry);
        assert_eq!(
            out.matches("app_logins_total{").count(),
            MAX_SERIES_PER_METRIC
        );
        assert!(
            out.contains("runtime_host_app_metric_label_overflow_total 10"),
            "{out}"
        );
        assert!(
            out.contains(r#"runtime_host_app_metric_invalid_total{reason="name"} 6"#),
            "{out}"
        );
    }
}

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

use edge_observability::app_metric::{self, AppMetric, Invalid, Kind};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// At most this many distinct app metrics; lines for further names are rejected.
pub const MAX_METRICS: usize = 200;
/// At most this many label sets per app metric.
pub const MAX_SERIES_PER_METRIC: usize = 100;

/// A label set: (Prometheus label name, value), sorted by name.
type Labels = Vec<(String, String)>;

#[derive(Debug)]
enum Series {
    Counter(f64),
    Gauge(f64),
    /// Per-bucket (not cumulative) counts, the last one for `+Inf`.
    Histogram {
        sum: f64,
        count: u64,
        counts: Vec<u64>,
    },
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
        for reason in Invalid::ALL {
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
        let app = Arc::new(AppMetrics {
            metrics: Mutex::new(BTreeMap::new()),
            invalid,
            overflow,
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
    /// returned; it never affects other metrics.
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
        let sample = AppMetric {
            kind,
            name: &raw.name,
            value: raw.value,
            buckets: &raw.buckets,
            attributes: &attributes,
            trace: None,
        };
        if let Err(why) = app_metric::validate(&sample) {
            return self.reject(why);
        }
        let mut labels: Labels = attributes
            .iter()
            .map(|(k, v)| (k.replace('.', "_"), escape_label_value(v)))
            .collect();
        labels.sort();
        self.record(&sample, labels)
    }

    fn record(&self, m: &AppMetric<'_>, labels: Labels) -> Result<(), Invalid> {
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
                Kind::Counter => Series::Counter(0.0),
                Kind::Gauge => Series::Gauge(0.0),
                Kind::Histogram => Series::Histogram {
                    sum: 0.0,
                    count: 0,
                    counts: vec![0; m.buckets.len() + 1],
                },
            }),
        };
        match series {
            Series::Counter(total) => *total += m.value,
            Series::Gauge(current) => *current = m.value,
            Series::Histogram { sum, count, counts } => {
                *sum += m.value;
                *count += 1;
                let at = m
                    .buckets
                    .iter()
                    .position(|b| m.value <= *b)
                    .unwrap_or(m.buckets.len());
                counts[at] += 1;
            }
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
            for (labels, series) in &metric.series {
                // No attributes: a plain sample, not an empty `{}` label set.
                if labels.is_empty() {
                    encode_series(&mut family, series, &metric.buckets)?;
                } else {
                    encode_series(&mut family.encode_family(labels)?, series, &metric.buckets)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_series(
    encoder: &mut MetricEncoder<'_>,
    series: &Series,
    bounds: &[f64],
) -> Result<(), std::fmt::Error> {
    match series {
        Series::Counter(v) => encoder.encode_counter::<NoLabelSet, _, f64>(v, None),
        Series::Gauge(v) => encoder.encode_gauge(v),
        Series::Histogram { sum, count, counts } => {
            let buckets: Vec<(f64, u64)> = bounds
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX))
                .zip(counts.iter().copied())
                .collect();
            encoder.encode_histogram::<NoLabelSet>(*sum, *count, &buckets, None)
        }
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

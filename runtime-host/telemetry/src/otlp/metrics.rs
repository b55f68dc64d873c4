//! The HTTP server metrics over OTLP, with the OpenTelemetry instrument names
//! (`http.server.request.duration`, `http.server.request.body.size`,
//! `http.server.response.body.size`) and the same attributes as `/metrics`.
//!
//! Aggregated by the core crate's [`http_metrics`], the code the component's own export uses,
//! so both send the same names, units and bucket bounds; here the temporality is cumulative,
//! as the OpenTelemetry SDK's default was. Recording a request is one map lookup under a mutex
//! and three bucket increments. At most [`MAX_SERIES`] attribute sets are kept; later new ones
//! are recorded in one overflow series marked `otel.metric.overflow=true`, as the SDK does.
//!
//! A task on the host's runtime exports every `OTEL_METRIC_EXPORT_INTERVAL`, each export
//! bounded by `OTEL_METRIC_EXPORT_TIMEOUT`, with the sender and retry policy of the other
//! signals ([`Sender`]). The series are copied under the lock and encoded outside it.
//!
//! The SDK's aggregation did this before; its recording cost about 5,000 instructions per
//! request on the request path (three `record` calls, each sorting, hashing and looking up the
//! attribute set), against one lookup here (bench/README.md has the figures).

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use edge_observability::otlp::encode::{self, kv_bool};
use edge_observability::otlp::http_metrics::{
    self, Attributes, ServerHistograms, Temporality, Window,
};
use hashbrown::hash_map::EntryRef;
use hashbrown::{Equivalent, HashMap};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::counters::OtlpCounters;
use super::sender::Sender;
use super::settings::Signal;
use super::unix_nanos;
use crate::metric_event::MetricEvent;

/// Most attribute sets kept (the same bound as the request families of `/metrics`,
/// [`crate::metric_event::MAX_REQUEST_LABEL_SETS`]); beyond it requests go to the overflow series.
pub const MAX_SERIES: usize = crate::metric_event::MAX_REQUEST_LABEL_SETS;

/// The attribute key of the overflow series (the OpenTelemetry SDKs' convention).
const OVERFLOW_KEY: &str = "otel.metric.overflow";

/// The attributes of a request, borrowed from its metric event (labels already normalised).
fn attributes(ev: &MetricEvent) -> Attributes<'_> {
    Attributes {
        method: ev.method(),
        route: ev.route(),
        status: ev.status_code(),
        scheme: ev.scheme(),
        error_type: ev.error_type(),
    }
}

/// [`Attributes`] owned, as the map's key; hashed and compared as its borrowed form, so a
/// lookup needs no allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    method: Box<str>,
    route: Option<Box<str>>,
    status: Option<u16>,
    scheme: Option<Box<str>>,
    error_type: Option<Box<str>>,
}

impl From<&Attributes<'_>> for Key {
    fn from(a: &Attributes<'_>) -> Self {
        Key {
            method: a.method.into(),
            route: a.route.map(Into::into),
            status: a.status,
            scheme: a.scheme.map(Into::into),
            error_type: a.error_type.map(Into::into),
        }
    }
}

impl Key {
    fn borrowed(&self) -> Attributes<'_> {
        Attributes {
            method: &self.method,
            route: self.route.as_deref(),
            status: self.status,
            scheme: self.scheme.as_deref(),
            error_type: self.error_type.as_deref(),
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.borrowed().hash(state);
    }
}

impl Equivalent<Key> for Attributes<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.borrowed()
    }
}

/// What is aggregated since the start.
#[derive(Default)]
struct Aggregate {
    series: HashMap<Key, ServerHistograms>,
    /// The requests of attribute sets beyond [`MAX_SERIES`], once there are any.
    overflow: Option<ServerHistograms>,
}

/// One series of an export: an attribute set (or the overflow) and its histograms.
struct Point {
    key: Option<Key>,
    histograms: ServerHistograms,
}

impl http_metrics::Series for Point {
    fn attributes(&self, buf: &mut Vec<u8>, field: u32) {
        match &self.key {
            Some(key) => key.borrowed().encode(buf, field),
            None => kv_bool(buf, field, OVERFLOW_KEY, true),
        }
    }

    fn histograms(&self) -> &ServerHistograms {
        &self.histograms
    }
}

/// What the export task and the request path share.
struct Shared {
    aggregate: Mutex<Aggregate>,
    sender: Sender,
    /// The encoded `Resource`.
    resource: Vec<u8>,
    /// When aggregation started (`start_time_unix_nano` of every point).
    start: u64,
    timeout: Duration,
    counters: OtlpCounters,
    stop: Notify,
}

impl Shared {
    /// The export request of everything aggregated so far; `None` before the first request.
    fn body(&self) -> Option<Vec<u8>> {
        let points: Vec<Point> = {
            let aggregate = self
                .aggregate
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let overflow = aggregate.overflow.clone().map(|histograms| Point {
                key: None,
                histograms,
            });
            aggregate
                .series
                .iter()
                .map(|(key, histograms)| Point {
                    key: Some(key.clone()),
                    histograms: histograms.clone(),
                })
                .chain(overflow)
                .collect()
        };
        if points.is_empty() {
            return None;
        }
        let window = Window {
            start: self.start,
            now: unix_nanos(SystemTime::now()),
        };
        let mut metrics = Vec::with_capacity(points.len() * 512);
        http_metrics::encode(&mut metrics, &points, window, Temporality::Cumulative);
        Some(encode::request(&self.resource, &metrics))
    }

    /// One export, bounded by the export timeout; the outcome is counted and a failure logged.
    async fn export(&self) {
        let Some(body) = self.body() else {
            return;
        };
        let error = match tokio::time::timeout(self.timeout, self.sender.send(body)).await {
            Ok(Ok(())) => {
                self.counters.exported(Signal::Metrics, 1);
                return;
            }
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        self.counters.export_error(Signal::Metrics);
        tracing::warn!(signal = "metrics", %error, "OTLP export failed");
    }
}

/// The aggregation and the task that exports it.
pub struct OtlpMetrics {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OtlpMetrics {
    /// Starts exporting to `sender` every `interval` (on the current tokio runtime), each
    /// export bounded by `timeout`; `resource` is the encoded `Resource`.
    pub fn start(
        sender: Sender,
        resource: Vec<u8>,
        interval: Duration,
        timeout: Duration,
        counters: OtlpCounters,
    ) -> Self {
        let shared = Arc::new(Shared {
            aggregate: Mutex::default(),
            sender,
            resource,
            start: unix_nanos(SystemTime::now()),
            timeout,
            counters,
            stop: Notify::new(),
        });
        let task = tokio::spawn(run(shared.clone(), interval));
        OtlpMetrics {
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    /// Records one request (a metric event, its labels already normalised).
    pub fn observe(&self, ev: &MetricEvent) {
        let attributes = attributes(ev);
        let mut aggregate = self
            .shared
            .aggregate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let aggregate = &mut *aggregate;
        let full = aggregate.series.len() >= MAX_SERIES;
        let histograms = match aggregate.series.entry_ref(&attributes) {
            EntryRef::Occupied(series) => series.into_mut(),
            EntryRef::Vacant(_) if full => aggregate.overflow.get_or_insert_default(),
            EntryRef::Vacant(series) => series.insert(ServerHistograms::default()),
        };
        histograms.record(
            ev.duration_s(),
            ev.request_body_bytes(),
            ev.response_body_bytes(),
        );
    }

    /// Stops the periodic export and exports once more, giving up at `deadline`.
    pub async fn shutdown(&self, deadline: Instant) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else {
            return;
        };
        self.shared.stop.notify_one();
        // An export in flight finishes first (it is bounded by the export timeout), unless the
        // deadline comes first.
        let stopped = tokio::time::timeout_at(deadline, &mut task).await.is_ok();
        if !stopped {
            task.abort();
        }
        if !stopped
            || tokio::time::timeout_at(deadline, self.shared.export())
                .await
                .is_err()
        {
            tracing::warn!(
                signal = "metrics",
                "OTLP flush did not finish within the shutdown grace period"
            );
        }
    }
}

/// Exports every `interval` until told to stop.
async fn run(shared: Arc<Shared>, interval: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    // A slow export delays the next one instead of sending a burst after it.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => shared.export().await,
            () = shared.stop.notified() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric_event;
    use edge_observability::metrics::{BODY_SIZE_BUCKETS_BYTES, DURATION_BUCKETS};
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, HistogramDataPoint, metric::Data,
    };
    use prost::Message as _;

    fn metrics() -> OtlpMetrics {
        let sender = Sender::new(
            "http://127.0.0.1:9/v1/metrics",
            Default::default(),
            Duration::from_secs(1),
        )
        .unwrap();
        OtlpMetrics {
            shared: Arc::new(Shared {
                aggregate: Mutex::default(),
                sender,
                resource: Vec::new(),
                start: 1_000,
                timeout: Duration::from_secs(1),
                counters: OtlpCounters::default(),
                stop: Notify::new(),
            }),
            task: Mutex::new(None),
        }
    }

    fn event(route: &str, status: u16, duration_s: f64, response_bytes: u64) -> MetricEvent {
        let line = format!(
            r#"{{"schema":"edge_obs.metric.v1","time":"2026-12-07T14:43:02.192Z","duration_s":{duration_s},"response_body_bytes":{response_bytes},"attributes":{{"http.request.method":"GET","http.route":"{route}","http.response.status_code":{status},"url.scheme":"http"}}}}"#
        );
        metric_event::parse(line.as_bytes()).unwrap()
    }

    fn decode(m: &OtlpMetrics) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest::decode(&m.shared.body().unwrap()[..]).unwrap()
    }

    /// The points of the histogram `name`, with its temporality.
    fn points(r: &ExportMetricsServiceRequest, name: &str) -> (i32, Vec<HistogramDataPoint>) {
        let metric = r.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name}"));
        match metric.data.as_ref().unwrap() {
            Data::Histogram(h) => (h.aggregation_temporality, h.data_points.clone()),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn nothing_is_exported_before_the_first_request() {
        assert!(metrics().shared.body().is_none());
    }

    #[test]
    fn requests_are_aggregated_per_attribute_set_and_exported_cumulatively() {
        let m = metrics();
        m.observe(&event("/users/{id}", 200, 0.004, 100));
        m.observe(&event("/users/{id}", 200, 0.2, 5000));
        m.observe(&event("/", 404, 0.001, 0));
        let first = decode(&m);
        let (temporality, duration) = points(&first, "http.server.request.duration");
        assert_eq!(temporality, AggregationTemporality::Cumulative as i32);
        assert_eq!(duration.len(), 2);
        let users = duration
            .iter()
            .find(|p| {
                attr(&p.attributes, "http.route") == Some(&Value::StringValue("/users/{id}".into()))
            })
            .unwrap();
        assert_eq!(users.count, 2);
        assert!((users.sum.unwrap() - 0.204).abs() < 1e-9);
        assert_eq!(users.explicit_bounds, DURATION_BUCKETS);
        assert_eq!(users.bucket_counts.iter().sum::<u64>(), 2);
        assert_eq!(users.start_time_unix_nano, 1_000);
        assert_eq!(
            attr(&users.attributes, "http.response.status_code"),
            Some(&Value::IntValue(200))
        );
        assert_eq!(
            attr(&users.attributes, "http.request.method"),
            Some(&Value::StringValue("GET".into()))
        );
        assert_eq!(
            attr(&users.attributes, "url.scheme"),
            Some(&Value::StringValue("http".into()))
        );
        let (_, sizes) = points(&first, "http.server.response.body.size");
        assert_eq!(sizes[0].explicit_bounds, BODY_SIZE_BUCKETS_BYTES);
        assert_eq!(sizes.iter().map(|p| p.count).sum::<u64>(), 3);
        // No event carried a request body size.
        assert!(
            first.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .all(|m| m.name != "http.server.request.body.size")
        );
        // Cumulative: the next export still counts the first requests.
        m.observe(&event("/", 404, 0.001, 0));
        let (_, duration) = points(&decode(&m), "http.server.request.duration");
        assert_eq!(duration.iter().map(|p| p.count).sum::<u64>(), 4);
    }

    #[test]
    fn attribute_sets_beyond_the_bound_go_to_one_overflow_series() {
        let m = metrics();
        for i in 0..MAX_SERIES + 10 {
            m.observe(&event(&format!("/r{i}"), 200, 0.01, 1));
        }
        // A known set still gets its own series once the bound is reached.
        m.observe(&event("/r0", 200, 0.01, 1));
        let (_, duration) = points(&decode(&m), "http.server.request.duration");
        assert_eq!(duration.len(), MAX_SERIES + 1);
        let overflow: Vec<_> = duration
            .iter()
            .filter(|p| attr(&p.attributes, OVERFLOW_KEY) == Some(&Value::BoolValue(true)))
            .collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(overflow[0].count, 10);
        assert_eq!(overflow[0].attributes.len(), 1);
        let r0 = duration
            .iter()
            .find(|p| attr(&p.attributes, "http.route") == Some(&Value::StringValue("/r0".into())))
            .unwrap();
        assert_eq!(r0.count, 2);
    }

    /// A collector on loopback that answers 200 and keeps each request's body.
    async fn collector() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut chunk = [0; 65536];
                // The head, then as much body as it announces.
                let body = loop {
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the request ended early");
                    request.extend_from_slice(&chunk[..n]);
                    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if request.len() >= end + 4 + len {
                        break request[end + 4..end + 4 + len].to_vec();
                    }
                };
                kept.lock().unwrap().push(body);
                let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                s.write_all(ok.as_bytes()).await.unwrap();
                s.shutdown().await.ok();
            }
        });
        (url, bodies)
    }

    fn started(url: &str, interval: Duration) -> OtlpMetrics {
        let sender = Sender::new(url, Default::default(), Duration::from_secs(5)).unwrap();
        OtlpMetrics::start(
            sender,
            Vec::new(),
            interval,
            Duration::from_secs(5),
            OtlpCounters::default(),
        )
    }

    fn count(body: &[u8]) -> u64 {
        let r = ExportMetricsServiceRequest::decode(body).unwrap();
        points(&r, "http.server.request.duration")
            .1
            .iter()
            .map(|p| p.count)
            .sum()
    }

    #[tokio::test]
    async fn the_task_exports_every_interval_and_once_more_on_shutdown() {
        let (url, bodies) = collector().await;
        let m = started(&url, Duration::from_millis(50));
        m.observe(&event("/", 200, 0.01, 1));
        let deadline = Instant::now() + Duration::from_secs(10);
        while bodies.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no periodic export");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        m.observe(&event("/", 200, 0.01, 1));
        m.shutdown(Instant::now() + Duration::from_secs(10)).await;
        let bodies = bodies.lock().unwrap();
        assert_eq!(count(&bodies[0]), 1);
        // The last export, sent on shutdown, counts both requests.
        assert_eq!(count(bodies.last().unwrap()), 2);
        assert_eq!(m.shared.counters.export_errors_by_signal()["metrics"], 0);
    }

    #[tokio::test]
    async fn shutdown_flushes_what_the_interval_has_not_sent_yet() {
        let (url, bodies) = collector().await;
        let m = started(&url, Duration::from_secs(3600));
        m.observe(&event("/", 500, 0.2, 10));
        m.shutdown(Instant::now() + Duration::from_secs(10)).await;
        let bodies = bodies.lock().unwrap();
        assert_eq!(bodies.len(), 1);
        assert_eq!(count(&bodies[0]), 1);
    }
}

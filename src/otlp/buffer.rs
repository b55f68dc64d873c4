//! The per-instance export buffer: spans and log records encoded as they finish, metrics
//! aggregated (delta temporality), and the exporter's own health counters.
//!
//! Bounded in items and bytes (the batch being sent counts too): over either bound a new
//! span or log record is dropped and counted, never an old one, so adding is cheap and the
//! oldest data, about to be sent, survives. Metrics are aggregated per attribute set, at most
//! [`MAX_SERIES`] sets per export window.

use std::time::{Duration, Instant};

use super::encode::{self, kv_str};
use super::http_metrics::{self, ServerHistograms, Temporality, metric_head};
use super::proto::{self, begin, end};
use super::{OtlpConfig, Signal};
use crate::access_log::Record;
use crate::json;
use crate::metrics::{MAX_ERROR_TYPE_LEN, MetricEvent, keys, normalize_scheme, standard_method};
use crate::span::SpanEvent;

/// Most metric attribute sets (method, route, status, scheme, error) per export window; a
/// request of another set is dropped from the metrics and counted.
pub const MAX_SERIES: usize = 256;

/// `AggregationTemporality` `AGGREGATION_TEMPORALITY_DELTA`.
const DELTA: u64 = Temporality::Delta.value();

/// Queue of encoded items of one signal: the bytes, and where each item ends.
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Queue {
    /// Takes the first `n` items (all when fewer): their bytes and count.
    fn take(&mut self, n: usize) -> (Vec<u8>, usize) {
        let k = n.min(self.ends.len());
        if k == self.ends.len() {
            self.ends.clear();
            return (std::mem::take(&mut self.bytes), k);
        }
        let cut = self.ends[k - 1];
        let rest = self.bytes.split_off(cut);
        self.ends.drain(..k);
        for e in &mut self.ends {
            *e -= cut;
        }
        (std::mem::replace(&mut self.bytes, rest), k)
    }
}

/// The metric attributes of one request and its three histograms.
struct Series {
    method: &'static str,
    route: Option<String>,
    status: Option<u16>,
    scheme: &'static str,
    error_type: Option<String>,
    histograms: ServerHistograms,
}

impl Series {
    fn is(&self, ev: &MetricEvent<'_>) -> bool {
        self.method == standard_method(ev.method)
            && self.route.as_deref() == ev.route
            && self.status == ev.status
            && self.scheme == ev.scheme
            && self.error_type.as_deref() == ev.error_type.map(error_type)
    }
}

impl http_metrics::Series for Series {
    fn attributes(&self, buf: &mut Vec<u8>, field: u32) {
        let attributes = http_metrics::Attributes {
            method: self.method,
            route: self.route.as_deref(),
            status: self.status,
            scheme: Some(self.scheme),
            error_type: self.error_type.as_deref(),
        };
        attributes.encode(buf, field);
    }

    fn histograms(&self) -> &ServerHistograms {
        &self.histograms
    }
}

/// `error.type` as the metric event line carries it (at most [`MAX_ERROR_TYPE_LEN`] bytes).
fn error_type(e: &str) -> &str {
    json::cut(e, MAX_ERROR_TYPE_LEN)
}

/// One export request of a batch.
#[derive(Debug)]
pub struct Export {
    /// Its signal (the endpoint it goes to).
    pub signal: Signal,
    /// The protobuf body.
    pub body: Vec<u8>,
    /// Spans or log records in it (0 for metrics).
    pub items: usize,
    /// Bytes of those items while they were buffered.
    pub item_bytes: usize,
}

/// The buffer of one instance.
pub struct Buffer {
    wanted: [bool; 3],
    batch_items: usize,
    batch_age: Duration,
    max_items: usize,
    max_bytes: usize,
    /// The encoded `Resource`, the same for every batch of the instance.
    resource: Vec<u8>,
    spans: Queue,
    logs: Queue,
    series: Vec<Series>,
    /// Change of `http.server.active_requests` per (method, scheme) since the last batch.
    active: Vec<(&'static str, &'static str, i64)>,
    /// Export requests sent and failed per signal since the last batch.
    exports: [[u64; 2]; 3],
    /// Items dropped per signal since the last batch.
    dropped: [u64; 3],
    /// Items dropped since the glue last asked ([`Buffer::take_unreported_drops`]).
    unreported_drops: u64,
    /// When the oldest item not yet taken arrived.
    oldest: Option<Instant>,
    /// Start of the current delta window (Unix ns).
    window_start: u64,
    in_flight_items: usize,
    in_flight_bytes: usize,
}

impl Buffer {
    /// An empty buffer for the export settings `cfg`; `instance_id` is the instance's
    /// `service.instance.id`, `now_unix_nano` the start of the first delta window.
    pub fn new(cfg: &OtlpConfig, instance_id: &str, now_unix_nano: u64) -> Buffer {
        Buffer {
            wanted: Signal::ALL.map(|s| cfg.exports(s)),
            batch_items: cfg.batch_items.max(1),
            batch_age: cfg.batch_age,
            max_items: cfg.max_items,
            max_bytes: cfg.max_bytes,
            resource: encode::resource(cfg, instance_id),
            spans: Queue::default(),
            logs: Queue::default(),
            series: Vec::new(),
            active: Vec::new(),
            exports: [[0; 2]; 3],
            dropped: [0; 3],
            unreported_drops: 0,
            oldest: None,
            window_start: now_unix_nano,
            in_flight_items: 0,
            in_flight_bytes: 0,
        }
    }

    /// Whether `signal` is exported (it may be turned off for the instance, [`Buffer::disable`]).
    pub fn wants(&self, signal: Signal) -> bool {
        self.wanted[signal.index()]
    }

    /// Stops exporting `signal` for this instance (its endpoint refuses us for good).
    pub fn disable(&mut self, signal: Signal) {
        self.wanted[signal.index()] = false;
        let q = match signal {
            Signal::Traces => &mut self.spans,
            Signal::Logs => &mut self.logs,
            Signal::Metrics => {
                self.series.clear();
                self.active.clear();
                return;
            }
        };
        let (_, n) = q.take(usize::MAX);
        self.count_drop(signal, n as u64);
    }

    fn count_drop(&mut self, signal: Signal, n: u64) {
        self.dropped[signal.index()] += n;
        self.unreported_drops += n;
    }

    /// Spans and log records buffered (not in flight).
    pub fn items(&self) -> usize {
        self.spans.ends.len() + self.logs.ends.len()
    }

    /// Encoded bytes buffered (not in flight).
    pub fn bytes(&self) -> usize {
        self.spans.bytes.len() + self.logs.bytes.len()
    }

    /// Adds one encoded item when the bounds allow; false when it was dropped.
    #[inline(never)]
    fn push(&mut self, signal: Signal, now: Instant, write: &mut dyn FnMut(&mut Vec<u8>)) -> bool {
        let full = self.items() + self.in_flight_items >= self.max_items;
        let used = self.bytes() + self.in_flight_bytes;
        let max_bytes = self.max_bytes;
        let q = if signal == Signal::Traces {
            &mut self.spans
        } else {
            &mut self.logs
        };
        let before = q.bytes.len();
        if !full {
            write(&mut q.bytes);
            if used + q.bytes.len() - before <= max_bytes {
                q.ends.push(q.bytes.len());
                self.oldest.get_or_insert(now);
                return true;
            }
            q.bytes.truncate(before);
        }
        self.count_drop(signal, 1);
        false
    }

    /// Buffers the server span of a finished exchange; false when it was dropped (bounds).
    pub fn push_span(&mut self, now: Instant, ev: &SpanEvent<'_>) -> bool {
        self.wants(Signal::Traces) && self.push(Signal::Traces, now, &mut |b| encode::span(b, ev))
    }

    /// Buffers an access line as a log record; false when it was dropped (bounds).
    pub fn push_log(&mut self, now: Instant, r: &Record<'_>, time_unix_nano: u64) -> bool {
        self.wants(Signal::Logs)
            && self.push(Signal::Logs, now, &mut |b| {
                encode::log_record(b, r, time_unix_nano)
            })
    }

    /// A request arrived: `http.server.active_requests` goes up.
    pub fn started(&mut self, method: &http::Method, scheme: Option<&str>) {
        self.active_add(standard_method(method), normalize_scheme(scheme), 1);
    }

    fn active_add(&mut self, method: &'static str, scheme: &'static str, n: i64) {
        if !self.wants(Signal::Metrics) {
            return;
        }
        match self
            .active
            .iter_mut()
            .find(|(m, s, _)| *m == method && *s == scheme)
        {
            Some(a) => a.2 += n,
            // At most 10 methods times 3 schemes.
            None => self.active.push((method, scheme, n)),
        }
    }

    /// A request finished: records its duration and body sizes and lowers
    /// `http.server.active_requests`.
    pub fn observe(&mut self, now: Instant, ev: &MetricEvent<'_>) {
        if !self.wants(Signal::Metrics) {
            return;
        }
        self.active_add(standard_method(ev.method), ev.scheme, -1);
        let i = match self.series.iter().position(|s| s.is(ev)) {
            Some(i) => i,
            None if self.series.len() >= MAX_SERIES => {
                self.count_drop(Signal::Metrics, 1);
                return;
            }
            None => {
                self.series.push(Series {
                    method: standard_method(ev.method),
                    route: ev.route.map(str::to_owned),
                    status: ev.status,
                    scheme: ev.scheme,
                    error_type: ev.error_type.map(|e| error_type(e).to_owned()),
                    histograms: ServerHistograms::default(),
                });
                self.series.len() - 1
            }
        };
        self.series[i].histograms.record(
            ev.duration.as_secs_f64(),
            ev.request_body_bytes,
            ev.response_body_bytes,
        );
        self.oldest.get_or_insert(now);
    }

    /// Whether a batch is due: [`OtlpConfig::batch_items`] items, or the oldest
    /// [`OtlpConfig::batch_age`] old.
    pub fn due(&self, now: Instant) -> bool {
        self.items() >= self.batch_items
            || self
                .oldest
                .is_some_and(|t| now.saturating_duration_since(t) >= self.batch_age)
    }

    /// How long until the buffered data is due by age; `None` when nothing is buffered.
    pub fn due_in(&self, now: Instant) -> Option<Duration> {
        let t = self.oldest?;
        Some(
            self.batch_age
                .saturating_sub(now.saturating_duration_since(t)),
        )
    }

    /// Takes a batch: at most [`OtlpConfig::batch_items`] spans and as many log records, and
    /// the metrics of the window that ends now. Report each export's outcome with
    /// [`Buffer::done`].
    pub fn take(&mut self, now: Instant, now_unix_nano: u64) -> Vec<Export> {
        let mut out = Vec::with_capacity(3);
        for (signal, items) in [
            (Signal::Traces, self.spans.take(self.batch_items)),
            (Signal::Logs, self.logs.take(self.batch_items)),
        ] {
            let (bytes, n) = items;
            if n > 0 {
                self.in_flight_items += n;
                self.in_flight_bytes += bytes.len();
                out.push(Export {
                    signal,
                    body: encode::request(&self.resource, &bytes),
                    items: n,
                    item_bytes: bytes.len(),
                });
            }
        }
        if self.wants(Signal::Metrics) {
            let metrics = self.metrics(now_unix_nano);
            if !metrics.is_empty() {
                out.insert(
                    1.min(out.len()),
                    Export {
                        signal: Signal::Metrics,
                        body: encode::request(&self.resource, &metrics),
                        items: 0,
                        item_bytes: 0,
                    },
                );
            }
        }
        self.window_start = now_unix_nano;
        // What is left (over the batch size) waits at most one more batch age.
        self.oldest = (self.items() > 0).then_some(now);
        out
    }

    /// The outcome of one export of a batch: frees its share of the bounds and counts it
    /// (its items dropped when it failed).
    pub fn done(&mut self, export: &Export, sent: bool) {
        self.in_flight_items -= export.items.min(self.in_flight_items);
        self.in_flight_bytes -= export.item_bytes.min(self.in_flight_bytes);
        self.exports[export.signal.index()][usize::from(!sent)] += 1;
        if !sent {
            self.count_drop(export.signal, export.items as u64);
        }
    }

    /// Items dropped since the last call (for the warning line).
    pub fn take_unreported_drops(&mut self) -> u64 {
        std::mem::take(&mut self.unreported_drops)
    }

    /// The metrics of the window (repeated `ScopeMetrics.metrics`), then a new window.
    #[inline(never)]
    fn metrics(&mut self, now: u64) -> Vec<u8> {
        let start = self.window_start;
        let mut buf = Vec::new();
        let series = std::mem::take(&mut self.series);
        let window = http_metrics::Window { start, now };
        http_metrics::encode(&mut buf, &series, window, Temporality::Delta);
        let active = std::mem::take(&mut self.active);
        if !active.is_empty() {
            let m = metric_head(
                &mut buf,
                "http.server.active_requests",
                "{request}",
                "Number of active HTTP server requests.",
            );
            let s = begin(&mut buf, 7);
            for (method, scheme, n) in active {
                let p = sum_point(&mut buf, start, now, n);
                kv_str(&mut buf, 7, keys::METHOD, method);
                kv_str(&mut buf, 7, keys::SCHEME, scheme);
                end(&mut buf, p);
            }
            proto::uint(&mut buf, 2, DELTA);
            end(&mut buf, s);
            end(&mut buf, m);
        }
        // The exporter's own health, as counted up to this batch.
        let exports = std::mem::take(&mut self.exports);
        let dropped = std::mem::take(&mut self.dropped);
        if exports.iter().flatten().any(|n| *n > 0) {
            let m = metric_head(
                &mut buf,
                "edge_obs.otlp.exports",
                "{request}",
                "OTLP export requests the middleware sent, by outcome.",
            );
            let s = begin(&mut buf, 7);
            for signal in Signal::ALL {
                for (outcome, n) in ["sent", "failed"].iter().zip(exports[signal.index()]) {
                    if n > 0 {
                        let p = sum_point(&mut buf, start, now, n as i64);
                        kv_str(&mut buf, 7, "signal", signal.as_str());
                        kv_str(&mut buf, 7, "outcome", outcome);
                        end(&mut buf, p);
                    }
                }
            }
            monotonic_delta(&mut buf, s, m);
        }
        if dropped.iter().any(|n| *n > 0) {
            let m = metric_head(
                &mut buf,
                "edge_obs.otlp.dropped",
                "{item}",
                "Spans, log records and metric observations the middleware dropped (buffer full or export failed).",
            );
            let s = begin(&mut buf, 7);
            for signal in Signal::ALL {
                let n = dropped[signal.index()];
                if n > 0 {
                    let p = sum_point(&mut buf, start, now, n as i64);
                    kv_str(&mut buf, 7, "signal", signal.as_str());
                    end(&mut buf, p);
                }
            }
            monotonic_delta(&mut buf, s, m);
        }
        buf
    }
}

/// Starts a `NumberDataPoint` of a `Sum` with an integer value; attributes follow.
fn sum_point(buf: &mut Vec<u8>, start: u64, now: u64, value: i64) -> usize {
    let p = begin(buf, 1);
    proto::fixed64(buf, 2, start);
    proto::fixed64(buf, 3, now);
    // `as_int` is an sfixed64.
    proto::fixed64(buf, 6, value as u64);
    p
}

/// Ends a monotonic delta `Sum` started at `sum` and its metric `metric`.
fn monotonic_delta(buf: &mut Vec<u8>, sum: usize, metric: usize) {
    proto::uint(buf, 2, DELTA);
    proto::uint(buf, 3, 1);
    end(buf, sum);
    end(buf, metric);
}

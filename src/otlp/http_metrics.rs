//! The HTTP server histograms of OpenTelemetry's semantic conventions
//! (`http.server.request.duration`, `http.server.request.body.size`,
//! `http.server.response.body.size`), aggregated per attribute set and encoded as OTLP
//! `Metric`s.
//!
//! One definition for both exports: the component's own ([`super::buffer`], delta windows) and
//! runtime-host's (cumulative, from the metric event lines), so the two send the same names,
//! units, descriptions and bucket bounds.

use super::encode::{kv_int, kv_str};
use super::proto::{self, begin, end};
use crate::metrics::{BODY_SIZE_BUCKETS_BYTES, DURATION_BUCKETS, keys};

/// `AggregationTemporality` of the data points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temporality {
    /// Each export holds what happened since the one before (the component's windows).
    Delta,
    /// Each export holds everything since the start (what Prometheus-style backends expect).
    Cumulative,
}

impl Temporality {
    /// The `AggregationTemporality` enum value.
    pub const fn value(self) -> u64 {
        match self {
            Temporality::Delta => 1,
            Temporality::Cumulative => 2,
        }
    }
}

/// One explicit-bucket histogram (OpenTelemetry bounds: a bucket holds values up to and
/// including its bound).
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Histogram {
    // Out of line, as `record`: one copy for the three histograms of a series.
    #[inline(never)]
    fn new(bounds: &[f64]) -> Self {
        Histogram {
            counts: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    #[inline(never)]
    fn record(&mut self, bounds: &[f64], v: f64) {
        self.counts[bounds.partition_point(|b| *b < v)] += 1;
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// The three histograms of one attribute set.
#[derive(Clone, Debug)]
pub struct ServerHistograms {
    duration: Histogram,
    request_size: Histogram,
    response_size: Histogram,
}

impl Default for ServerHistograms {
    fn default() -> Self {
        ServerHistograms {
            duration: Histogram::new(&DURATION_BUCKETS),
            request_size: Histogram::new(&BODY_SIZE_BUCKETS_BYTES),
            response_size: Histogram::new(&BODY_SIZE_BUCKETS_BYTES),
        }
    }
}

impl ServerHistograms {
    /// Records one request: its duration in seconds, and the body sizes that are known.
    pub fn record(
        &mut self,
        duration_s: f64,
        request_bytes: Option<u64>,
        response_bytes: Option<u64>,
    ) {
        self.duration.record(&DURATION_BUCKETS, duration_s);
        if let Some(n) = request_bytes {
            self.request_size.record(&BODY_SIZE_BUCKETS_BYTES, n as f64);
        }
        if let Some(n) = response_bytes {
            self.response_size
                .record(&BODY_SIZE_BUCKETS_BYTES, n as f64);
        }
    }
}

/// The attributes of a series: those of `/metrics` and of the metric event line, each left
/// out when the request had none.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// `http.request.method`.
    pub method: &'a str,
    /// `http.route`.
    pub route: Option<&'a str>,
    /// `http.response.status_code`.
    pub status: Option<u16>,
    /// `url.scheme`.
    pub scheme: Option<&'a str>,
    /// `error.type`.
    pub error_type: Option<&'a str>,
}

impl Attributes<'_> {
    /// Writes them as repeated `KeyValue` field `field`.
    pub fn encode(&self, buf: &mut Vec<u8>, field: u32) {
        kv_str(buf, field, keys::METHOD, self.method);
        if let Some(route) = self.route {
            kv_str(buf, field, keys::ROUTE, route);
        }
        if let Some(s) = self.status {
            kv_int(buf, field, keys::STATUS_CODE, i64::from(s));
        }
        if let Some(s) = self.scheme {
            kv_str(buf, field, keys::SCHEME, s);
        }
        if let Some(e) = self.error_type {
            kv_str(buf, field, keys::ERROR_TYPE, e);
        }
    }
}

/// An attribute set and its histograms, as [`encode`] reads them.
pub trait Series {
    /// Writes the attribute set as repeated `KeyValue` field `field`.
    fn attributes(&self, buf: &mut Vec<u8>, field: u32);
    /// The histograms recorded under it.
    fn histograms(&self) -> &ServerHistograms;
}

/// The window (or, cumulative, the whole time) the data points cover, in Unix nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// `start_time_unix_nano`.
    pub start: u64,
    /// `time_unix_nano`.
    pub now: u64,
}

/// Appends the three histograms as repeated `ScopeMetrics.metrics` (field 2); a histogram
/// without any value recorded is left out.
pub fn encode<S: Series>(
    buf: &mut Vec<u8>,
    series: &[S],
    window: Window,
    temporality: Temporality,
) {
    type Pick = fn(&ServerHistograms) -> &Histogram;
    let histograms: [(&str, &str, &str, &[f64], Pick); 3] = [
        (
            "http.server.request.duration",
            "s",
            "Duration of HTTP server requests.",
            &DURATION_BUCKETS,
            |h| &h.duration,
        ),
        (
            "http.server.request.body.size",
            "By",
            "Size of HTTP server request bodies.",
            &BODY_SIZE_BUCKETS_BYTES,
            |h| &h.request_size,
        ),
        (
            "http.server.response.body.size",
            "By",
            "Size of HTTP server response bodies.",
            &BODY_SIZE_BUCKETS_BYTES,
            |h| &h.response_size,
        ),
    ];
    for (name, unit, description, bounds, pick) in histograms {
        let recorded = || series.iter().filter(|s| pick(s.histograms()).count > 0);
        if recorded().next().is_none() {
            continue;
        }
        let m = metric_head(buf, name, unit, description);
        let h = begin(buf, 9);
        for s in recorded() {
            let hist = pick(s.histograms());
            let p = begin(buf, 1);
            s.attributes(buf, 9);
            proto::fixed64(buf, 2, window.start);
            proto::fixed64(buf, 3, window.now);
            proto::fixed64(buf, 4, hist.count);
            proto::double(buf, 5, hist.sum);
            let packed = begin(buf, 6);
            for c in &hist.counts {
                buf.extend_from_slice(&c.to_le_bytes());
            }
            end(buf, packed);
            let packed = begin(buf, 7);
            for b in bounds {
                buf.extend_from_slice(&b.to_le_bytes());
            }
            end(buf, packed);
            proto::double(buf, 11, hist.min);
            proto::double(buf, 12, hist.max);
            end(buf, p);
        }
        proto::uint(buf, 2, temporality.value());
        end(buf, h);
        end(buf, m);
    }
}

/// Starts a `Metric` (field 2 of `ScopeMetrics`) with its name, description and unit; pass
/// the result to [`proto::end`] after its data.
pub fn metric_head(buf: &mut Vec<u8>, name: &str, unit: &str, description: &str) -> usize {
    let m = begin(buf, 2);
    proto::bytes(buf, 1, name.as_bytes());
    proto::bytes(buf, 2, description.as_bytes());
    proto::bytes(buf, 3, unit.as_bytes());
    m
}

//! Prometheus metrics of the host: the OpenTelemetry HTTP server metrics built from the guest's
//! `edge_obs.metric.v1` events, plus the host's own counters.
//!
//! Names follow OpenTelemetry's Prometheus translation (`http.server.request.duration` becomes
//! `http_server_request_duration_seconds`, label `http.route` becomes `http_route`, and so on).
//!
//! # Exposition formats
//!
//! `/metrics` serves two formats, chosen by the scraper's `Accept` header ([`Format::negotiate`]):
//!
//! - OpenMetrics 1.0 ([`Format::OpenMetrics`]), straight from prometheus-client, to scrapers that
//!   ask for it (Prometheus does). It carries the exemplars below.
//! - Prometheus text format 0.0.4 ([`Format::Text`]) to everyone else, byte for byte what the
//!   host has always served. prometheus-client 0.24 writes only OpenMetrics, and `promtool check
//!   metrics` (Prometheus 2.42 as in Debian 12) rejects OpenMetrics served as text: counter
//!   samples `x_total` do not belong to the OpenMetrics family `x`. The OpenMetrics output is
//!   therefore rewritten (counter HELP/TYPE renamed to `x_total`, `# UNIT`, `# EOF` and
//!   exemplars dropped; sample lines are otherwise identical in both formats). prometheus-client
//!   0.26 has a 0.0.4 encoder of its own, but it writes bucket bounds the way Go does
//!   (`le="5"`, `le="5e-05"` where this host has always served `le="5.0"`, `le="0.00005"`),
//!   which would rename every bucket series of every existing Prometheus 2.x setup.
//!
//! # Exemplars
//!
//! A request whose span is reported (its trace is sampled; the metric event then carries
//! `trace_id` and `span_id`) leaves an exemplar labelled `trace_id` and `span_id` on the bucket
//! of `http_server_request_duration_seconds` it fell into and on `http_server_requests_total`,
//! time-stamped when the host recorded it. One exemplar per bucket per series (and per counter
//! series): the latest wins. Unsampled requests never set or clear one, since an exemplar
//! pointing at a trace no backend has is worse than none.
//! App metric lines that name their trace get exemplars by the same rules
//! ([`crate::app_metrics`]).
//!
//! # Cardinality
//!
//! Label values come from [`crate::metric_event`], which bounds each one. On top of that the
//! request families additionally admit at most [`MAX_REQUEST_LABEL_SETS`] distinct label sets;
//! later new label sets are recorded with `http_route="_OTHER"` (and `error_type="_OTHER"` when
//! an error type is set), and once [`OVERFLOW_LABEL_SETS`] of those exist too, under a single
//! catch-all label set. Such events are counted in `runtime_host_metric_label_overflow_total`.

use crate::app_metrics::AppMetrics;
use crate::metric_event::TraceRef;
use crate::metric_event::{self, MetricEvent, OTHER};
use crate::otlp::counters::OtlpCounters;
use crate::window::{Counts, RedTotals};
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder, text};
use prometheus_client::metrics::counter::{Atomic, Counter};
use prometheus_client::metrics::exemplar::{CounterWithExemplar, HistogramWithExemplars};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Content type of [`HostMetrics::encode`]'s output: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Content type of the OpenMetrics 1.0 text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The media type of OpenMetrics text, as a scraper names it in `Accept`.
const OPENMETRICS_MEDIA_TYPE: &str = "application/openmetrics-text";

/// A scrape's exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
    /// Prometheus text format 0.0.4, without exemplars.
    Text,
}

impl Format {
    /// The format for a scrape with this `Accept` header: OpenMetrics when the scraper accepts
    /// `application/openmetrics-text` (version 1.0.0 or unversioned) at least as much as the
    /// text format, otherwise text 0.0.4 (also for no header, `*/*` or an unparsable one, as
    /// before OpenMetrics was served).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or_default();
            let (mut q, mut version) = (1.0_f32, None);
            for param in parts {
                let (name, value) = param.split_once('=').unwrap_or((param, ""));
                let value = value.trim().trim_matches('"');
                if name.trim().eq_ignore_ascii_case("q") {
                    q = value
                        .parse()
                        .ok()
                        .filter(|q: &f32| (0.0..=1.0).contains(q))
                        .unwrap_or(0.0);
                } else if name.trim().eq_ignore_ascii_case("version") {
                    version = Some(value);
                }
            }
            if media_type.eq_ignore_ascii_case(OPENMETRICS_MEDIA_TYPE)
                && version.is_none_or(|v| v == "1.0.0")
            {
                openmetrics = openmetrics.max(q);
            } else if media_type.eq_ignore_ascii_case("text/plain") {
                text = text.max(q);
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of a scrape in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => CONTENT_TYPE,
        }
    }
}

/// Where an exemplar starts in an OpenMetrics sample line, after its label set
/// ([`exemplar_start`]). [`TraceRef`]'s label set starts with `trace_id`.
const EXEMPLAR_MARKER: &str = " # {trace_id=\"";

/// The byte offset of the exemplar in an OpenMetrics sample line, if it has one. The marker is
/// looked for only after the sample's label set: an app's attribute value may well end in
/// ` # {trace_id=`, and followed by its closing quote it would look like one.
fn exemplar_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut at = line.find([' ', '{'])?;
    if bytes[at] == b'{' {
        // Label values are quoted, with `\\` and `\"` escaped: the set ends at the first `}`
        // outside quotes.
        let (mut quoted, mut escaped) = (false, false);
        loop {
            at += 1;
            match bytes.get(at)? {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b'}' if !quoted => break,
                _ => {}
            }
        }
    }
    line[at..].find(EXEMPLAR_MARKER).map(|i| at + i)
}

/// The exemplar labels: `trace_id` first ([`EXEMPLAR_MARKER`]), then `span_id`; 63 characters,
/// within OpenMetrics' 128.
impl EncodeLabelSet for TraceRef {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        prometheus_client::encoding::EncodeLabel::encode(
            &("trace_id", self.trace_id()),
            encoder.encode_label(),
        )?;
        prometheus_client::encoding::EncodeLabel::encode(
            &("span_id", self.span_id()),
            encoder.encode_label(),
        )
    }
}

/// Bucket bounds of `http_server_request_duration_seconds`, in seconds (the core crate's, so
/// the component, this registry, OTLP export, the admin page and the SLO rules agree).
pub use edge_observability::metrics::DURATION_BUCKETS;

/// Bucket bounds of `runtime_host_instantiation_duration_seconds`, in seconds. Instantiating a
/// pre-linked component from the pooling allocator takes microseconds, a cold one milliseconds,
/// so the buckets start at 10 µs and end at 1 s.
pub const INSTANTIATION_BUCKETS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The body size histograms use 11 exponential buckets, factor 4, from 64 B to 64 MiB:
/// 64, 256, 1 Ki, 4 Ki, 16 Ki, 64 Ki, 256 Ki, 1 Mi, 4 Mi, 16 Mi, 64 Mi (bytes). Factor 4 keeps
/// the bucket count (and so the series count per label set) low while still separating tiny API
/// responses from pages and from downloads.
fn body_size_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(64.0, 4.0, 11)
}

pub use crate::metric_event::MAX_REQUEST_LABEL_SETS;

/// Beyond [`MAX_REQUEST_LABEL_SETS`], at most this many more label sets (with route `_OTHER`) are
/// admitted; after that everything new goes to one catch-all label set.
pub const OVERFLOW_LABEL_SETS: usize = 500;

/// Why the host rejected a request before it reached the guest: the `reason` label of
/// `runtime_host_rejected_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// More requests than `--max-concurrent-requests`.
    Overload,
    /// Over the rate limit.
    RateLimited,
    /// Arrived while draining.
    Draining,
    /// Header section over the limit.
    HeaderTooLarge,
    /// Body over the limit.
    BodyTooLarge,
    /// Not a valid HTTP request.
    BadRequest,
}

impl RejectReason {
    /// Every reason; each series exists from the start at 0, so that `rate()` and alerts work
    /// before the first rejection.
    pub const ALL: [RejectReason; 6] = [
        RejectReason::Overload,
        RejectReason::RateLimited,
        RejectReason::Draining,
        RejectReason::HeaderTooLarge,
        RejectReason::BodyTooLarge,
        RejectReason::BadRequest,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Overload => "overload",
            RejectReason::RateLimited => "rate_limited",
            RejectReason::Draining => "draining",
            RejectReason::HeaderTooLarge => "header_too_large",
            RejectReason::BodyTooLarge => "body_too_large",
            RejectReason::BadRequest => "bad_request",
        }
    }
}

/// How a guest's outgoing request failed: the `kind` label of
/// `runtime_host_upstream_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// The connection was not established within the connect timeout.
    ConnectTimeout,
    /// Nothing accepts connections there.
    ConnectionRefused,
    /// Any other connection failure (DNS, unreachable, ...).
    Connect,
    /// The origin broke the HTTP exchange.
    Protocol,
}

impl UpstreamErrorKind {
    /// Every kind, in the order the admin page lists them.
    pub const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::ConnectTimeout,
        UpstreamErrorKind::ConnectionRefused,
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Protocol,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::ConnectTimeout => "connect_timeout",
            UpstreamErrorKind::ConnectionRefused => "connection_refused",
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Protocol => "protocol",
        }
    }
}

/// Labels of the per-request families; field names are the Prometheus label names.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    http_request_method: &'static str,
    /// Empty when the request matched no route template.
    http_route: String,
    /// Empty when no response was sent.
    http_response_status_code: Option<u16>,
    /// Empty when the event did not say.
    url_scheme: &'static str,
    /// Empty unless the request failed.
    error_type: String,
}

impl RequestLabels {
    /// The single label set everything lands in once even the overflow sets are exhausted.
    fn catch_all() -> Self {
        Self {
            http_request_method: OTHER,
            http_route: OTHER.to_owned(),
            http_response_status_code: None,
            url_scheme: OTHER,
            error_type: OTHER.to_owned(),
        }
    }
}

/// A request label set and its hash, computed once per request: each request looks its set
/// up in up to five families, and the families' SipHash over the label strings cost about 600
/// instructions per lookup. The families now hash only the `u64`.
#[derive(Clone, Debug)]
struct RequestKey {
    hash: u64,
    labels: RequestLabels,
}

impl std::hash::Hash for RequestKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for RequestKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.labels == other.labels
    }
}

impl Eq for RequestKey {}

impl EncodeLabelSet for RequestKey {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.labels.encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActiveLabels {
    http_request_method: &'static str,
    url_scheme: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    wasmtime_version: String,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;
type ExemplarHistogramFamily<S> =
    Family<S, HistogramWithExemplars<TraceRef>, fn() -> HistogramWithExemplars<TraceRef>>;
type ExemplarCounter = CounterWithExemplar<TraceRef>;

/// All metrics of the host and the registry that exposes them.
///
/// `Send + Sync`; share it in an `Arc`. Every recording method takes `&self` and only touches
/// atomics and the families' internal read locks (a write lock only the first time a label set
/// is seen), so it is cheap to call from many tokio tasks.
#[derive(Debug)]
pub struct HostMetrics {
    registry: Registry,
    request_duration: ExemplarHistogramFamily<RequestKey>,
    request_body_size: HistogramFamily<RequestKey>,
    response_body_size: HistogramFamily<RequestKey>,
    requests: Family<RequestKey, ExemplarCounter>,
    active_requests: Family<ActiveLabels, Gauge>,
    /// Number of label sets admitted to the request families. Only touched when a label set is
    /// seen for the first time; the mutex makes the cap exact.
    admitted_label_sets: Mutex<usize>,
    /// Hashes request label sets into [`RequestKey`]s (seeded at random, per process).
    label_hasher: hashbrown::DefaultHashBuilder,
    max_label_sets: usize,
    overflow_label_sets: usize,
    label_overflow: Counter,
    instantiations: Counter,
    instantiation_duration: Histogram,
    guest_traps: Counter,
    request_timeouts: Counter,
    rejected_requests: Family<ReasonLabels, Counter>,
    upstream_errors: Family<KindLabels, Counter>,
    invalid_metric_events: Counter,
    rate_limit_key_overflow: Counter,
    app: std::sync::Arc<AppMetrics>,
    /// Host-wide totals of the request families, for the admin page's windowed figures
    /// (the families themselves cannot be summed without encoding them).
    red: RedTotals,
    /// All active requests, whatever their labels (not exported; the admin page shows it).
    active_total: Gauge,
    /// The OTLP exporters' counters (registered here so they are served on `/metrics`).
    otlp: OtlpCounters,
}

/// The host's own counters, as the admin page shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostCounters {
    /// `runtime_host_rejected_requests_total` by reason.
    pub rejected_requests: BTreeMap<&'static str, u64>,
    /// `runtime_host_guest_traps_total`.
    pub guest_traps: u64,
    /// `runtime_host_request_timeouts_total`.
    pub request_timeouts: u64,
    /// `runtime_host_instantiations_total`.
    pub instantiations: u64,
    /// `runtime_host_upstream_errors_total` by kind.
    pub upstream_errors: BTreeMap<&'static str, u64>,
    /// `runtime_host_invalid_metric_events_total`.
    pub invalid_metric_events: u64,
    /// `runtime_host_metric_label_overflow_total`.
    pub metric_label_overflow: u64,
    /// `runtime_host_otlp_dropped_total` by signal (spans, metrics or log records not
    /// delivered over OTLP).
    pub otlp_dropped: BTreeMap<&'static str, u64>,
    /// `runtime_host_otlp_export_errors_total` by signal.
    pub otlp_export_errors: BTreeMap<&'static str, u64>,
}

/// Keeps `http_server_active_requests` incremented for as long as it lives; returned by
/// [`HostMetrics::active_request`]. Holding it in the request's task makes the decrement happen
/// on every exit path, including errors, timeouts and cancellation.
#[derive(Debug)]
#[must_use = "the active request is counted only while the guard is alive"]
pub struct ActiveRequestGuard {
    gauge: Gauge,
    total: Gauge,
}

impl Drop for ActiveRequestGuard {
    fn drop(&mut self) {
        self.gauge.dec();
        self.total.dec();
    }
}

impl HostMetrics {
    /// Creates the registry with every family registered and `runtime_host_build_info` set.
    ///
    /// `version` and `wasmtime_version` become label values of `runtime_host_build_info`
    /// (characters that would need escaping are replaced by `_`).
    pub fn new(version: &str, wasmtime_version: &str) -> Self {
        Self::with_limits(
            version,
            wasmtime_version,
            MAX_REQUEST_LABEL_SETS,
            OVERFLOW_LABEL_SETS,
        )
    }

    fn with_limits(
        version: &str,
        wasmtime_version: &str,
        max_label_sets: usize,
        overflow_label_sets: usize,
    ) -> Self {
        let mut registry = Registry::default();
        // Help texts carry no final `.`: prometheus-client appends one when encoding.

        let request_duration: ExemplarHistogramFamily<RequestKey> =
            Family::new_with_constructor(|| {
                HistogramWithExemplars::new(DURATION_BUCKETS.into_iter())
            });
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP server requests",
            Unit::Seconds,
            request_duration.clone(),
        );
        let request_body_size: HistogramFamily<RequestKey> =
            Family::new_with_constructor(|| Histogram::new(body_size_buckets()));
        registry.register_with_unit(
            "http_server_request_body_size",
            "Size of HTTP server request bodies",
            Unit::Bytes,
            request_body_size.clone(),
        );
        let response_body_size: HistogramFamily<RequestKey> =
            Family::new_with_constructor(|| Histogram::new(body_size_buckets()));
        registry.register_with_unit(
            "http_server_response_body_size",
            "Size of HTTP server response bodies",
            Unit::Bytes,
            response_body_size.clone(),
        );
        // Counters get `_total` appended by prometheus-client.
        let requests = Family::<RequestKey, ExemplarCounter>::default();
        registry.register(
            "http_server_requests",
            "Number of HTTP server requests",
            requests.clone(),
        );
        let active_requests = Family::<ActiveLabels, Gauge>::default();
        registry.register(
            "http_server_active_requests",
            "Number of active HTTP server requests",
            active_requests.clone(),
        );

        let label_overflow = Counter::default();
        registry.register(
            "runtime_host_metric_label_overflow",
            "Metric events recorded under an _OTHER label set because the label set cap was reached",
            label_overflow.clone(),
        );
        let instantiations = Counter::default();
        registry.register(
            "runtime_host_instantiations",
            "Number of guest component instantiations",
            instantiations.clone(),
        );
        let instantiation_duration = Histogram::new(INSTANTIATION_BUCKETS);
        registry.register_with_unit(
            "runtime_host_instantiation_duration",
            "Time taken to instantiate a guest component",
            Unit::Seconds,
            instantiation_duration.clone(),
        );
        let guest_traps = Counter::default();
        registry.register(
            "runtime_host_guest_traps",
            "Number of guest traps",
            guest_traps.clone(),
        );
        let request_timeouts = Counter::default();
        registry.register(
            "runtime_host_request_timeouts",
            "Number of requests aborted by the host's request timeout",
            request_timeouts.clone(),
        );
        let rejected_requests = Family::<ReasonLabels, Counter>::default();
        for reason in RejectReason::ALL {
            drop(rejected_requests.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            }));
        }
        registry.register(
            "runtime_host_rejected_requests",
            "Number of requests the host rejected before they reached the guest, by reason",
            rejected_requests.clone(),
        );
        let upstream_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "runtime_host_upstream_errors",
            "Number of failed outgoing requests of guests, by kind",
            upstream_errors.clone(),
        );
        let invalid_metric_events = Counter::default();
        registry.register(
            "runtime_host_invalid_metric_events",
            "Number of guest output lines with the metric event prefix that were rejected",
            invalid_metric_events.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: sanitize_label_value(version),
                wasmtime_version: sanitize_label_value(wasmtime_version),
            })
            .set(1);
        registry.register(
            "runtime_host_build_info",
            "Build information of the host; always 1",
            build_info,
        );

        let rate_limit_key_overflow = Counter::default();
        registry.register(
            "runtime_host_rate_limit_key_overflow",
            "Requests counted in the shared overflow bucket because the rate limiter tracked its maximum number of keys",
            rate_limit_key_overflow.clone(),
        );
        let app = AppMetrics::register(&mut registry);

        let otlp = OtlpCounters::register(&mut registry);
        Self {
            registry,
            request_duration,
            request_body_size,
            response_body_size,
            requests,
            active_requests,
            admitted_label_sets: Mutex::new(0),
            label_hasher: hashbrown::DefaultHashBuilder::default(),
            max_label_sets,
            overflow_label_sets,
            label_overflow,
            instantiations,
            instantiation_duration,
            guest_traps,
            request_timeouts,
            rejected_requests,
            upstream_errors,
            invalid_metric_events,
            rate_limit_key_overflow,
            app,
            red: RedTotals::default(),
            active_total: Gauge::default(),
            otlp,
        }
    }

    /// The OTLP exporters' counters.
    pub fn otlp(&self) -> &OtlpCounters {
        &self.otlp
    }

    /// Counts a request put into the rate limiter's overflow bucket (key cap reached).
    pub fn rate_limit_key_overflow(&self) {
        self.rate_limit_key_overflow.inc();
    }

    /// The applications' own metrics (`edge_obs.app_metric.v1` lines).
    pub fn app(&self) -> &AppMetrics {
        &self.app
    }

    /// Records one request from a metric event: duration histogram, request counter, and
    /// the body size histograms for the sizes that are known. The event's labels are already
    /// normalised ([`MetricEvent::new`]).
    pub fn observe(&self, ev: &MetricEvent) {
        let labels = self.admit(RequestLabels {
            http_request_method: ev.method(),
            http_route: ev.route().unwrap_or_default().to_owned(),
            http_response_status_code: ev.status_code(),
            url_scheme: ev.scheme().unwrap_or(""),
            error_type: ev.error_type().unwrap_or_default().to_owned(),
        });
        let trace = ev.trace().copied();
        // The clock is read only for an exemplar.
        let now = trace.map(|_| SystemTime::now());
        self.request_duration
            .get_or_create(&labels)
            .observe(ev.duration_s(), trace, now);
        let requests = self.requests.get_or_create(&labels);
        match trace {
            Some(trace) => {
                requests.inc_by(1, Some(trace), now);
            }
            // `inc_by(1, None, _)` would clear the exemplar of the last sampled request.
            None => {
                Atomic::<u64>::inc(&*requests.inner());
            }
        }
        // From the event, not the labels: a collapsed label set has lost the status.
        self.red
            .record(ev.status_code(), ev.error_type().is_some(), ev.duration_s());
        if let Some(n) = ev.request_body_bytes() {
            self.request_body_size
                .get_or_create(&labels)
                .observe(n as f64);
        }
        if let Some(n) = ev.response_body_bytes() {
            self.response_body_size
                .get_or_create(&labels)
                .observe(n as f64);
        }
    }

    /// Returns the label set to record under, applying the label set cap.
    ///
    /// The duration family is the reference: every admitted event is recorded there, so its keys
    /// are exactly the admitted label sets (the other request families hold subsets of them).
    fn admit(&self, labels: RequestLabels) -> RequestKey {
        let keyed = |labels: RequestLabels| RequestKey {
            hash: std::hash::BuildHasher::hash_one(&self.label_hasher, &labels),
            labels,
        };
        let key = keyed(labels);
        // Fast path: a known label set needs only the family's read lock.
        if self.request_duration.get(&key).is_some() {
            return key;
        }
        let mut admitted = self
            .admitted_label_sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Creating the (empty) histogram while holding the mutex reserves the label set, so that
        // concurrent first-time events cannot push the count past the cap.
        let reserve = |key: RequestKey, admitted: &mut usize| {
            if self.request_duration.get(&key).is_none() {
                drop(self.request_duration.get_or_create(&key));
                *admitted += 1;
            }
            key
        };
        if self.request_duration.get(&key).is_some() || *admitted < self.max_label_sets {
            return reserve(key, &mut admitted);
        }
        self.label_overflow.inc();
        let collapsed = keyed(RequestLabels {
            http_route: OTHER.to_owned(),
            error_type: if key.labels.error_type.is_empty() {
                String::new()
            } else {
                OTHER.to_owned()
            },
            ..key.labels
        });
        if self.request_duration.get(&collapsed).is_some()
            || *admitted < self.max_label_sets + self.overflow_label_sets
        {
            return reserve(collapsed, &mut admitted);
        }
        reserve(keyed(RequestLabels::catch_all()), &mut admitted)
    }

    /// Counts a request as active until the returned guard is dropped; call it when a request
    /// arrives. `scheme` is normalised to `http`, `https` or `_OTHER`.
    pub fn active_request(&self, method: &http::Method, scheme: &str) -> ActiveRequestGuard {
        let gauge = self.active_requests.get_or_create_owned(&ActiveLabels {
            http_request_method: metric_event::normalize_method(method.as_str()),
            url_scheme: metric_event::normalize_scheme(scheme),
        });
        gauge.inc();
        self.active_total.inc();
        ActiveRequestGuard {
            gauge,
            total: self.active_total.clone(),
        }
    }

    /// Running totals of every recorded request (count, errors, status classes, duration
    /// buckets), for windowed figures.
    pub fn red_totals(&self) -> Counts {
        self.red.snapshot()
    }

    /// Requests in progress, all labels together.
    pub fn active_requests_total(&self) -> i64 {
        self.active_total.get()
    }

    /// The host's own counters.
    pub fn counters(&self) -> HostCounters {
        let by_label = |family: &Family<ReasonLabels, Counter>, reason: &'static str| {
            family
                .get(&ReasonLabels { reason })
                .map_or(0, |counter| counter.get())
        };
        HostCounters {
            rejected_requests: RejectReason::ALL
                .iter()
                .map(|reason| {
                    let reason = reason.as_str();
                    (reason, by_label(&self.rejected_requests, reason))
                })
                .collect(),
            guest_traps: self.guest_traps.get(),
            request_timeouts: self.request_timeouts.get(),
            instantiations: self.instantiations.get(),
            upstream_errors: UpstreamErrorKind::ALL
                .iter()
                .map(|kind| {
                    let kind = kind.as_str();
                    let n = self
                        .upstream_errors
                        .get(&KindLabels { kind })
                        .map_or(0, |counter| counter.get());
                    (kind, n)
                })
                .collect(),
            invalid_metric_events: self.invalid_metric_events.get(),
            metric_label_overflow: self.label_overflow.get(),
            otlp_dropped: self.otlp.dropped_by_signal(),
            otlp_export_errors: self.otlp.export_errors_by_signal(),
        }
    }

    /// Records one guest instantiation and how long it took.
    pub fn instantiated(&self, d: Duration) {
        self.instantiations.inc();
        self.instantiation_duration.observe(d.as_secs_f64());
    }

    /// Counts a guest trap.
    pub fn trap(&self) {
        self.guest_traps.inc();
    }

    /// Counts a request aborted by the host's request timeout.
    pub fn timeout(&self) {
        self.request_timeouts.inc();
    }

    /// Counts a request the host rejected before it reached the guest.
    pub fn rejected(&self, reason: RejectReason) {
        self.rejected_requests
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Counts a failed outgoing request of a guest.
    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        self.upstream_errors
            .get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Counts a guest output line that had the metric event prefix but was rejected by
    /// [`metric_event::parse`].
    pub fn invalid_event(&self) {
        self.invalid_metric_events.inc();
    }

    /// Encodes all metrics for a scrape in Prometheus text format 0.0.4: `(body, content
    /// type)`. The same as [`HostMetrics::encode_as`] with [`Format::Text`].
    pub fn encode(&self) -> (String, &'static str) {
        (self.encode_as(Format::Text), CONTENT_TYPE)
    }

    /// Encodes all metrics for a scrape in `format` (see the module docs); the content type is
    /// [`Format::content_type`].
    pub fn encode_as(&self, format: Format) -> String {
        let mut openmetrics = String::with_capacity(16 * 1024);
        if let Err(e) = text::encode(&mut openmetrics, &self.registry) {
            // Writing to a String cannot fail and our label values cannot make the encoder fail;
            // serve what was written rather than panicking in the scrape handler.
            tracing::error!(error = %e, "encoding metrics failed");
        }
        match format {
            Format::OpenMetrics => openmetrics,
            Format::Text => openmetrics_to_prometheus_text(&openmetrics),
        }
    }
}

/// Rewrites prometheus-client's OpenMetrics text into Prometheus text format 0.0.4.
///
/// Differences that matter for what we register: OpenMetrics names a counter family `x` with
/// samples `x_total`, the classic format names the family `x_total`; `# UNIT`, `# EOF` and
/// exemplars do not exist in the classic format; OpenMetrics' `unknown` type is the classic `untyped`. Sample
/// lines are the same in both. HELP escaping differs only for `"`, which our help texts do not
/// contain.
fn openmetrics_to_prometheus_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + 256);
    // prometheus-client writes HELP then TYPE; the HELP line is held back until the TYPE says
    // whether the name needs `_total`.
    let mut help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = help.take() {
                push_help(&mut out, name, "", text);
            }
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, ty) = match ty {
                "counter" => ("_total", "counter"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            if let Some((help_name, text)) = help.take() {
                debug_assert_eq!(help_name, name);
                push_help(&mut out, name, suffix, text);
            }
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(ty);
            out.push('\n');
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            // Not part of the classic format.
        } else if let Some(at) = exemplar_start(line) {
            // Nor are exemplars.
            out.push_str(&line[..at]);
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some((name, text)) = help {
        push_help(&mut out, name, "", text);
    }
    out
}

fn push_help(out: &mut String, name: &str, suffix: &str, text: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push_str(suffix);
    out.push(' ');
    out.push_str(text);
    out.push('\n');
}

/// Replaces characters that would need escaping in a label value (prometheus-client writes label
/// values verbatim) by `_`, for the host-supplied build info labels.
fn sanitize_label_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_control() || c == '"' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric_event::EventFields;
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    const _: () = {
        const fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HostMetrics>();
        assert_send_sync::<ActiveRequestGuard>();
    };

    fn event(duration_s: f64) -> EventFields<'static> {
        EventFields {
            duration_s,
            request_body_bytes: None,
            response_body_bytes: None,
            method: "GET".into(),
            route: Some("/users/{id}".into()),
            status_code: Some(200),
            scheme: Some("http".into()),
            error_type: None,
            trace: None,
        }
    }

    const TRACE_A: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const TRACE_B: &str = "0af7651916cd43dd8448eb211c80319c";
    const SPAN: &str = "00f067aa0ba902b7";

    fn traced(duration_s: f64, trace_id: &str) -> MetricEvent {
        MetricEvent::new(EventFields {
            trace: Some(TraceRef::parse(trace_id, SPAN).unwrap()),
            ..event(duration_s)
        })
    }

    /// The OpenMetrics sample line of `series` (name and labels exactly as encoded).
    fn om_line<'a>(om: &'a str, series: &str) -> &'a str {
        om.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{om}"))
    }

    /// Parses `name{k="v",...} value` lines into (name, labels) -> value. Good enough for our
    /// own output: label values never contain `"`.
    fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
        let mut out = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("numeric value"),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let mut labels = BTreeMap::new();
                    let mut s = body;
                    while !s.is_empty() {
                        let (k, r) = s.split_once("=\"").expect("label key");
                        let (v, r) = r.split_once('"').expect("label value");
                        labels.insert(k.to_owned(), v.to_owned());
                        s = r.strip_prefix(',').unwrap_or(r);
                    }
                    (name.to_owned(), labels)
                }
            };
            assert!(
                out.insert((name, labels), value).is_none(),
                "duplicate series: {line}"
            );
        }
        out
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn get(
        s: &BTreeMap<(String, BTreeMap<String, String>), f64>,
        name: &str,
        l: &[(&str, &str)],
    ) -> f64 {
        *s.get(&(name.to_owned(), labels(l)))
            .unwrap_or_else(|| panic!("no sample {name} {l:?}"))
    }

    const GET_USERS_200: &[(&str, &str)] = &[
        ("http_request_method", "GET"),
        ("http_route", "/users/{id}"),
        ("http_response_status_code", "200"),
        ("url_scheme", "http"),
        ("error_type", ""),
    ];

    fn with_le<'a>(base: &[(&'a str, &'a str)], le: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut v = base.to_vec();
        v.push(("le", le));
        v
    }

    #[test]
    fn request_values_and_buckets() {
        let m = HostMetrics::new("0.1.0", "48.0.8");
        let durations = [0.001, 0.02, 0.3, 4.0, 20.0];
        for (i, d) in durations.iter().enumerate() {
            let mut ev = event(*d);
            if i % 2 == 0 {
                ev.request_body_bytes = Some(100);
            }
            ev.response_body_bytes = Some(70_000);
            m.observe(&MetricEvent::new(ev));
        }
        let (body, ct) = m.encode();
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        let s = samples(&body);

        let n = durations.len() as f64;
        assert_eq!(get(&s, "http_server_requests_total", GET_USERS_200), n);
        assert_eq!(
            get(
                &s,
                "http_server_request_duration_seconds_count",
                GET_USERS_200
            ),
            n
        );
        let sum = get(
            &s,
            "http_server_request_duration_seconds_sum",
            GET_USERS_200,
        );
        assert!((sum - durations.iter().sum::<f64>()).abs() < 1e-9);
        for (le, want) in [
            ("0.005", 1.0),
            ("0.01", 1.0),
            ("0.025", 2.0),
            ("0.25", 2.0),
            ("0.5", 3.0),
            ("2.5", 3.0),
            ("5.0", 4.0),
            ("10.0", 4.0),
            ("+Inf", 5.0),
        ] {
            assert_eq!(
                get(
                    &s,
                    "http_server_request_duration_seconds_bucket",
                    &with_le(GET_USERS_200, le)
                ),
                want,
                "le={le}"
            );
        }
        let buckets: Vec<_> = s
            .keys()
            .filter(|(n, l)| {
                n == "http_server_request_duration_seconds_bucket"
                    && l.get("http_route").map(String::as_str) == Some("/users/{id}")
            })
            .collect();
        assert_eq!(buckets.len(), DURATION_BUCKETS.len() + 1);

        // Request body size known for 3 of 5 events, response body size for all.
        assert_eq!(
            get(
                &s,
                "http_server_request_body_size_bytes_count",
                GET_USERS_200
            ),
            3.0
        );
        assert_eq!(
            get(&s, "http_server_request_body_size_bytes_sum", GET_USERS_200),
            300.0
        );
        assert_eq!(
            get(
                &s,
                "http_server_request_body_size_bytes_bucket",
                &with_le(GET_USERS_200, "64.0")
            ),
            0.0
        );
        assert_eq!(
            get(
                &s,
                "http_server_request_body_size_bytes_bucket",
                &with_le(GET_USERS_200, "256.0")
            ),
            3.0
        );
        assert_eq!(
            get(
                &s,
                "http_server_response_body_size_bytes_bucket",
                &with_le(GET_USERS_200, "65536.0")
            ),
            0.0
        );
        assert_eq!(
            get(
                &s,
                "http_server_response_body_size_bytes_bucket",
                &with_le(GET_USERS_200, "262144.0")
            ),
            5.0
        );
        assert_eq!(
            get(
                &s,
                "http_server_response_body_size_bytes_bucket",
                &with_le(GET_USERS_200, "67108864.0")
            ),
            5.0
        );
    }

    #[test]
    fn absent_values_are_empty_labels_and_unknown_sizes_not_observed() {
        let m = HostMetrics::new("0.1.0", "48.0.8");
        m.observe(&MetricEvent::new(EventFields {
            duration_s: 0.2,
            request_body_bytes: None,
            response_body_bytes: None,
            method: "BREW".into(),
            route: None,
            status_code: None,
            scheme: None,
            error_type: Some("timeout".into()),
            trace: None,
        }));
        let (body, _) = m.encode();
        let s = samples(&body);
        let l = &[
            ("http_request_method", "_OTHER"),
            ("http_route", ""),
            ("http_response_status_code", ""),
            ("url_scheme", ""),
            ("error_type", "timeout"),
        ];
        assert_eq!(get(&s, "http_server_requests_total", l), 1.0);
        assert_eq!(
            get(&s, "http_server_request_duration_seconds_count", l),
            1.0
        );
        assert!(
            !body.contains("http_server_request_body_size_bytes_count"),
            "no size, no observation"
        );
        assert!(!body.contains("http_server_response_body_size_bytes_count"));
    }

    #[test]
    fn event_fields_are_normalised_again() {
        let m = HostMetrics::new("0.1.0", "48.0.8");
        m.observe(&MetricEvent::new(EventFields {
            duration_s: 0.2,
            request_body_bytes: None,
            response_body_bytes: None,
            method: "get".into(),
            route: Some("/a\"b".into()),
            status_code: Some(999),
            scheme: Some("gopher".into()),
            error_type: Some("bad type!".into()),
            trace: None,
        }));
        let s = samples(&m.encode().0);
        let l = &[
            ("http_request_method", "_OTHER"),
            ("http_route", ""),
            ("http_response_status_code", ""),
            ("url_scheme", "_OTHER"),
            ("error_type", "_OTHER"),
        ];
        assert_eq!(get(&s, "http_server_requests_total", l), 1.0);
    }

    #[test]
    fn host_metrics() {
        let m = HostMetrics::new("0.1.0", "48.0.8");
        m.instantiated(Duration::from_micros(30));
        m.instantiated(Duration::from_millis(3));
        m.trap();
        m.timeout();
        m.timeout();
        m.rejected(RejectReason::Overload);
        m.rejected(RejectReason::Overload);
        m.rejected(RejectReason::BodyTooLarge);
        m.upstream_error(UpstreamErrorKind::ConnectionRefused);
        m.invalid_event();
        let s = samples(&m.encode().0);
        assert_eq!(get(&s, "runtime_host_instantiations_total", &[]), 2.0);
        assert_eq!(
            get(&s, "runtime_host_instantiation_duration_seconds_count", &[]),
            2.0
        );
        assert_eq!(
            get(
                &s,
                "runtime_host_instantiation_duration_seconds_bucket",
                &[("le", "0.00005")]
            ),
            1.0
        );
        assert_eq!(get(&s, "runtime_host_guest_traps_total", &[]), 1.0);
        assert_eq!(get(&s, "runtime_host_request_timeouts_total", &[]), 2.0);
        assert_eq!(
            get(
                &s,
                "runtime_host_rejected_requests_total",
                &[("reason", "overload")]
            ),
            2.0
        );
        assert_eq!(
            get(
                &s,
                "runtime_host_rejected_requests_total",
                &[("reason", "body_too_large")]
            ),
            1.0
        );
        // Pre-created at zero.
        assert_eq!(
            get(
                &s,
                "runtime_host_rejected_requests_total",
                &[("reason", "draining")]
            ),
            0.0
        );
        assert_eq!(
            get(
                &s,
                "runtime_host_rejected_requests_total",
                &[("reason", "header_too_large")]
            ),
            0.0
        );
        assert_eq!(
            get(
                &s,
                "runtime_host_upstream_errors_total",
                &[("kind", "connection_refused")]
            ),
            1.0
        );
        assert_eq!(
            get(&s, "runtime_host_invalid_metric_events_total", &[]),
            1.0
        );
        assert_eq!(
            get(&s, "runtime_host_metric_label_overflow_total", &[]),
            0.0
        );
        assert_eq!(
            get(
                &s,
                "runtime_host_build_info",
                &[("version", "0.1.0"), ("wasmtime_version", "48.0.8")]
            ),
            1.0
        );
    }

    #[test]
    fn build_info_labels_are_sanitised() {
        let m = HostMetrics::new("1\"2\\3\n", "48");
        let s = samples(&m.encode().0);
        assert_eq!(
            get(
                &s,
                "runtime_host_build_info",
                &[("version", "1_2_3_"), ("wasmtime_version", "48")]
            ),
            1.0
        );
    }

    #[test]
    fn active_requests_guard() {
        let m = HostMetrics::new("0.1.0", "48.0.8");
        let active = |m: &HostMetrics, method: &str, scheme: &str| {
            let s = samples(&m.encode().0);
            s.get(&(
                "http_server_active_requests".to_owned(),
                labels(&[("http_request_method", method), ("url_scheme", scheme)]),
            ))
            .copied()
        };
        let g1 = m.active_request(&http::Method::GET, "http");
        let g2 = m.active_request(&http::Method::GET, "http");
        let g3 = m.active_request(&http::Method::from_bytes(b"BREW").unwrap(), "ftp");
        assert_eq!(active(&m, "GET", "http"), Some(2.0));
        assert_eq!(active(&m, "_OTHER", "_OTHER"), Some(1.0));
        drop(g1);
        assert_eq!(active(&m, "GET", "http"), Some(1.0));
        drop((g2, g3));
        assert_eq!(active(&m, "GET", "http"), Some(0.0));
        assert_eq!(active(&m, "_OTHER", "_OTHER"), Some(0.0));
    }

    #[test]
    fn label_set_cap() {
        let m = HostMetrics::with_limits("0.1.0", "48.0.8", 3, 2);
        let ev = |route: &str, method: &str, err: Option<&str>| {
            MetricEvent::new(EventFields {
                route: Some(route.into()),
                method: method.into(),
                error_type: err.map(Into::into),
                ..event(0.1)
            })
        };
        for r in ["/a", "/b", "/c"] {
            m.observe(&ev(r, "GET", None));
        }
        // Admitted sets are still recorded as themselves.
        m.observe(&ev("/a", "GET", None));
        // Over the cap: route collapsed.
        m.observe(&ev("/d", "GET", None));
        m.observe(&ev("/e", "GET", None));
        m.observe(&ev("/f", "GET", Some("timeout")));
        // Overflow sets exhausted (GET/_OTHER/"" and GET/_OTHER/_OTHER exist): catch-all.
        m.observe(&ev("/g", "POST", None));
        m.observe(&ev("/h", "PUT", None));
        // An existing overflow set is still used.
        m.observe(&ev("/i", "GET", None));

        let s = samples(&m.encode().0);
        let req = |route: &str, method: &str, err: &str| {
            get(
                &s,
                "http_server_requests_total",
                &[
                    ("http_request_method", method),
                    ("http_route", route),
                    ("http_response_status_code", "200"),
                    ("url_scheme", "http"),
                    ("error_type", err),
                ],
            )
        };
        assert_eq!(req("/a", "GET", ""), 2.0);
        assert_eq!(req("/b", "GET", ""), 1.0);
        assert_eq!(req("_OTHER", "GET", ""), 3.0);
        assert_eq!(req("_OTHER", "GET", "_OTHER"), 1.0);
        let catch_all = &[
            ("http_request_method", "_OTHER"),
            ("http_route", "_OTHER"),
            ("http_response_status_code", ""),
            ("url_scheme", "_OTHER"),
            ("error_type", "_OTHER"),
        ];
        assert_eq!(get(&s, "http_server_requests_total", catch_all), 2.0);
        assert_eq!(
            get(&s, "http_server_request_duration_seconds_count", catch_all),
            2.0
        );
        let series = s
            .keys()
            .filter(|(n, _)| n == "http_server_requests_total")
            .count();
        assert_eq!(series, 3 + 2 + 1);
        assert_eq!(
            get(&s, "runtime_host_metric_label_overflow_total", &[]),
            6.0
        );
        // Every event is counted somewhere.
        let total: f64 = s
            .iter()
            .filter(|((n, _), _)| n == "http_server_requests_total")
            .map(|(_, v)| v)
            .sum();
        assert_eq!(total, 10.0);
    }

    #[test]
    fn concurrent_observations_add_up() {
        let m = Arc::new(HostMetrics::with_limits("0.1.0", "48.0.8", 50, 10));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let _g = m.active_request(&http::Method::POST, "https");
                        m.observe(&MetricEvent::new(EventFields {
                            route: Some(format!("/r{}", (i * 7 + t) % 100).into()),
                            ..event(0.01)
                        }));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = samples(&m.encode().0);
        let (mut total, mut series) = (0.0, 0);
        for ((n, _), v) in &s {
            if n == "http_server_requests_total" {
                total += v;
                series += 1;
            }
        }
        assert_eq!(total, 4000.0);
        assert!(series <= 50 + 10 + 1, "{series} series");
        assert_eq!(
            get(
                &s,
                "http_server_active_requests",
                &[("http_request_method", "POST"), ("url_scheme", "https")]
            ),
            0.0
        );
    }

    const USERS: &str = "http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"200\",url_scheme=\"http\",error_type=\"\"";

    #[test]
    fn exemplars_of_sampled_requests_latest_per_bucket() {
        let m = HostMetrics::new("0.1.0", "48.0.8");
        m.observe(&traced(0.003, TRACE_A));
        m.observe(&traced(0.004, TRACE_B));
        m.observe(&traced(0.3, TRACE_A));
        // Unsampled requests afterwards neither replace nor clear an exemplar.
        m.observe(&MetricEvent::new(event(0.002)));
        m.observe(&MetricEvent::new(event(0.4)));
        let om = m.encode_as(Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"), "{om}");
        let bucket = |le: &str| {
            om_line(
                &om,
                &format!("http_server_request_duration_seconds_bucket{{le=\"{le}\",{USERS}}}"),
            )
        };
        assert!(
            bucket("0.005").ends_with(&format!(
                " 3 # {{trace_id=\"{TRACE_B}\",span_id=\"{SPAN}\"}} 0.004 {}",
                exemplar_ts(bucket("0.005"))
            )),
            "{om}"
        );
        assert!(
            bucket("0.5").contains(&format!(
                "# {{trace_id=\"{TRACE_A}\",span_id=\"{SPAN}\"}} 0.3 "
            )),
            "{om}"
        );
        // Buckets no sampled request fell into have none.
        assert!(!bucket("0.25").contains('#'), "{om}");
        assert!(!bucket("+Inf").contains('#'), "{om}");
        let counter = om_line(&om, &format!("http_server_requests_total{{{USERS}}}"));
        assert!(
            counter.starts_with(&format!(
                "http_server_requests_total{{{USERS}}} 5 # {{trace_id=\"{TRACE_A}\",span_id=\"{SPAN}\"}} 1.0 "
            )),
            "{counter}"
        );
        // Only the request families carry exemplars.
        assert_eq!(om.matches(" # {").count(), 3, "{om}");
    }

    /// The exemplar's timestamp (seconds since the epoch, the last field of the line).
    fn exemplar_ts(line: &str) -> &str {
        let ts = line.rsplit(' ').next().unwrap();
        let secs: f64 = ts.parse().expect("a timestamp");
        assert!(secs > 1.7e9, "{line}");
        ts
    }

    #[test]
    fn without_sampled_requests_there_are_no_exemplars() {
        let m = HostMetrics::new("0.1.0", "48.0.8");
        m.observe(&MetricEvent::new(event(0.003)));
        assert!(!m.encode_as(Format::OpenMetrics).contains(" # {"));
    }

    /// Old scrapers get exactly what they got before exemplars: the text output of sampled
    /// requests is that of the same requests without trace ids.
    #[test]
    fn text_output_is_unchanged_by_exemplars() {
        let (with, without) = (
            HostMetrics::new("0.1.0", "48.0.8"),
            HostMetrics::new("0.1.0", "48.0.8"),
        );
        for (d, trace) in [(0.003, TRACE_A), (0.3, TRACE_B), (20.0, TRACE_A)] {
            with.observe(&traced(d, trace));
            without.observe(&MetricEvent::new(event(d)));
        }
        let text = with.encode();
        // Families keep their series in hash maps: compare the lines, not their order.
        let sorted = |s: &str| {
            let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(&text.0), sorted(&without.encode().0));
        assert!(!text.0.contains("trace_id"), "{}", text.0);
        assert_eq!(text.1, CONTENT_TYPE);
        // And the sample lines are the OpenMetrics ones without their exemplars.
        let om = with.encode_as(Format::OpenMetrics);
        let samples_of = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.split(" # ").next().unwrap().to_owned())
                .collect()
        };
        let (mut om_samples, mut text_samples) = (samples_of(&om), samples_of(&text.0));
        om_samples.sort();
        text_samples.sort();
        assert_eq!(om_samples, text_samples);
    }

    /// The same for app metric lines with trace ids: the exemplars they leave are stripped
    /// from the text format like those of the request families, whatever the attribute values.
    #[test]
    fn app_metric_text_output_is_unchanged_by_exemplars() {
        let (with, without) = (
            HostMetrics::new("0.1.0", "48.0.8"),
            HostMetrics::new("0.1.0", "48.0.8"),
        );
        let ids = format!(r#","trace_id":"{TRACE_A}","span_id":"{SPAN}""#);
        // The last value looks like the start of an exemplar once its closing quote follows.
        for rest in [
            r#","attributes":{"k":"v"}"#,
            r#","buckets":[1,10],"attributes":{"k":"v"}"#,
            r#","attributes":{"k":"a # {trace_id="}"#,
        ] {
            for kind in ["counter", "histogram"] {
                if kind == "counter" && rest.contains("buckets") {
                    continue;
                }
                let name = if rest.contains("buckets") { "h" } else { "c" };
                let line = |ids: &str| {
                    format!(
                        r#"{{"schema":"edge_obs.app_metric.v1","type":"{kind}","name":"{name}","value":2{ids}{rest}}}"#
                    )
                };
                if kind == "histogram" && !rest.contains("buckets") {
                    continue;
                }
                with.app().record_line(line(&ids).as_bytes()).unwrap();
                without.app().record_line(line("").as_bytes()).unwrap();
            }
        }
        let om = with.encode_as(Format::OpenMetrics);
        assert_eq!(
            om.matches(&format!("# {{trace_id=\"{TRACE_A}\"")).count(),
            3,
            "{om}"
        );
        let sorted = |s: &str| {
            let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        let text = with.encode().0;
        assert_eq!(sorted(&text), sorted(&without.encode().0));
        assert!(!text.contains(TRACE_A), "{text}");
        assert!(
            text.contains("app_c_total{k=\"a # {trace_id=\"} 2.0\n"),
            "{text}"
        );
    }

    #[test]
    fn negotiation() {
        // What Prometheus 2.42 sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        for (accept, want) in [
            (None, Format::Text),
            (Some(""), Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain"), Format::Text),
            (
                Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                Format::Text,
            ),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; Version=1.0.0"),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text; version=\"1.0.0\""),
                Format::OpenMetrics,
            ),
            // A version we do not write, or refused, or preferred less than text.
            (
                Some("application/openmetrics-text;version=0.0.1"),
                Format::Text,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Text),
            (
                Some("application/openmetrics-text;q=0.4,text/plain;q=0.5"),
                Format::Text,
            ),
            (Some("application/openmetrics-text;q=banana"), Format::Text),
            (Some("application/openmetrics-text;q=2"), Format::Text),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(Format::Text.content_type(), CONTENT_TYPE);
    }

    #[test]
    fn conversion_from_openmetrics() {
        let om = "# HELP a_total_x Foo bar.\n# TYPE a_total_x counter\na_total_x_total 1\n\
                  # HELP h_seconds H.\n# TYPE h_seconds histogram\n# UNIT h_seconds seconds\n\
                  h_seconds_bucket{le=\"+Inf\"} 1 # {trace_id=\"ab\",span_id=\"cd\"} 0.5 1.5\n\
                  h_seconds_sum 0.0\n# HELP u U.\n# TYPE u unknown\nu 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(om),
            "# HELP a_total_x_total Foo bar.\n# TYPE a_total_x_total counter\na_total_x_total 1\n\
             # HELP h_seconds H.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"+Inf\"} 1\n\
             h_seconds_sum 0.0\n\
             # HELP u U.\n# TYPE u untyped\nu 1\n"
        );
    }

    /// Output of a registry with every family populated must pass `promtool check metrics`
    /// (parse and lint). Skipped, with a note, when promtool is not installed.
    #[test]
    fn promtool_check_metrics() {
        let m = HostMetrics::new("0.1.0", "48.0.8");
        m.observe(&MetricEvent::new(EventFields {
            request_body_bytes: Some(10),
            response_body_bytes: Some(1 << 20),
            ..event(0.003)
        }));
        m.observe(&MetricEvent::new(EventFields {
            method: "POST".into(),
            route: None,
            status_code: Some(502),
            scheme: Some("https".into()),
            error_type: Some("connection_refused".into()),
            ..event(1.5)
        }));
        let _active = m.active_request(&http::Method::GET, "http");
        m.instantiated(Duration::from_micros(120));
        m.trap();
        m.timeout();
        m.rejected(RejectReason::Draining);
        m.upstream_error(UpstreamErrorKind::ConnectTimeout);
        m.invalid_event();
        // With exemplars recorded: they must not leak into the text format.
        m.observe(&traced(0.02, TRACE_A));
        // promtool (2.42) parses only the text format: it stops at the first exemplar of
        // OpenMetrics. That format is checked by a real Prometheus scraping it
        // (tests/prometheus_scrape.rs).
        run_promtool(&m.encode_as(Format::Text));
    }

    /// Runs `promtool check metrics` on `body`; skipped, with a note, without promtool.
    fn run_promtool(body: &str) {
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("NOTE: promtool not on PATH, skipping `promtool check metrics`");
                return;
            }
            Err(e) => panic!("running promtool: {e}"),
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed ({}):\nstdout: {}\nstderr: {}\ninput:\n{body}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}

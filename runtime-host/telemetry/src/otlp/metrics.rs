//! The HTTP server metrics over OTLP, with the OpenTelemetry instrument names
//! (`http.server.request.duration`, `http.server.request.body.size`,
//! `http.server.response.body.size`) and the same attributes as `/metrics`.
//!
//! Recording goes into the SDK's aggregation (cumulative, bounded by the SDK's cardinality
//! limit and by the label normalisation of `metric_event`); the SDK's periodic reader exports
//! on its own thread every `OTEL_METRIC_EXPORT_INTERVAL`. The OTLP HTTP client needs tokio, so
//! each export runs on the host's runtime through a handle.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use super::counters::OtlpCounters;
use super::settings::Signal;
use crate::metric_event::MetricEvent;
use edge_observability::metrics::{DURATION_BUCKETS, keys};

/// Runs the OTLP exporter's future on the tokio runtime, bounded by the export timeout, and
/// counts the outcome.
struct OnRuntime<E> {
    inner: E,
    handle: tokio::runtime::Handle,
    timeout: Duration,
    counters: OtlpCounters,
}

impl<E: PushMetricExporter> PushMetricExporter for OnRuntime<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        // Called on the SDK's reader thread, outside the runtime, so blocking here is fine.
        let result = self.handle.block_on(async {
            tokio::time::timeout(self.timeout, self.inner.export(metrics))
                .await
                .unwrap_or(Err(OTelSdkError::Timeout(self.timeout)))
        });
        match &result {
            Ok(()) => self.counters.exported(Signal::Metrics, 1),
            Err(error) => {
                self.counters.export_error(Signal::Metrics);
                tracing::warn!(signal = "metrics", %error, "OTLP export failed");
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// The instruments and the provider that exports them.
pub struct OtlpMetrics {
    provider: SdkMeterProvider,
    duration: Histogram<f64>,
    request_size: Histogram<u64>,
    response_size: Histogram<u64>,
}

impl OtlpMetrics {
    /// Starts periodic export to `endpoint`.
    pub fn start(
        endpoint: &str,
        resource: Resource,
        interval: Duration,
        timeout: Duration,
        counters: OtlpCounters,
    ) -> anyhow::Result<Self> {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| anyhow::anyhow!("building the OTLP metric exporter: {e}"))?;
        let reader = PeriodicReader::builder(OnRuntime {
            inner: exporter,
            handle: tokio::runtime::Handle::current(),
            timeout,
            counters,
        })
        .with_interval(interval)
        .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build();
        let meter = provider.meter("runtime-host");
        let duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let request_size = meter
            .u64_histogram("http.server.request.body.size")
            .with_unit("By")
            .with_description("Size of HTTP server request bodies")
            .build();
        let response_size = meter
            .u64_histogram("http.server.response.body.size")
            .with_unit("By")
            .with_description("Size of HTTP server response bodies")
            .build();
        Ok(OtlpMetrics {
            provider,
            duration,
            request_size,
            response_size,
        })
    }

    /// Records one request (a metric event, its labels already normalised).
    pub fn observe(&self, ev: &MetricEvent) {
        let mut attrs = Vec::with_capacity(5);
        attrs.push(KeyValue::new(keys::METHOD, ev.method()));
        if let Some(route) = ev.route() {
            attrs.push(KeyValue::new(keys::ROUTE, route.to_owned()));
        }
        if let Some(s) = ev.status_code() {
            attrs.push(KeyValue::new(keys::STATUS_CODE, i64::from(s)));
        }
        if let Some(s) = ev.scheme() {
            attrs.push(KeyValue::new(keys::SCHEME, s));
        }
        if let Some(e) = ev.error_type() {
            attrs.push(KeyValue::new(keys::ERROR_TYPE, e.to_owned()));
        }
        self.duration.record(ev.duration_s(), &attrs);
        if let Some(n) = ev.request_body_bytes() {
            self.request_size.record(n, &attrs);
        }
        if let Some(n) = ev.response_body_bytes() {
            self.response_size.record(n, &attrs);
        }
    }

    /// Exports once more and stops; runs the SDK's blocking shutdown off the runtime.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) {
        let provider = self.provider.clone();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(left));
        if let Ok(Ok(Err(error))) = tokio::time::timeout_at(deadline, done).await {
            tracing::warn!(signal = "metrics", %error, "final OTLP metric export failed");
        }
    }
}

//! OTLP export of spans, metrics and log records (http/protobuf, `opentelemetry-otlp`).
//!
//! Fed from the guests' stdout lines (through [`crate::pipeline::Pipeline`]): span event lines become
//! spans with the middleware's ids and times, metric events feed the OpenTelemetry HTTP server
//! instruments, JSON access-log lines become log records carrying trace and span ids. On the
//! request path a span or access line is only copied into a bounded queue (a non-blocking
//! push); it is parsed into a span or log record by the export task, so a guest's stdout write
//! never waits for that work (parsing is most of what export costs).

pub mod attributes;
pub mod counters;
pub mod log_line;
pub mod metrics;
pub mod queue;
pub mod settings;
pub mod span_line;

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter as _, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::time::Instant;

use crate::metric_event::MetricEvent;
use counters::OtlpCounters;
use queue::{BatchQueue, Export};
use settings::{OtlpSettings, Signal};

/// The running exporters (only those configured).
pub struct Otlp {
    /// Span event lines, parsed by the export task.
    spans: Option<BatchQueue<Vec<u8>>>,
    /// Access-log lines, parsed by the export task.
    logs: Option<BatchQueue<Vec<u8>>>,
    metrics: Option<metrics::OtlpMetrics>,
}

struct Spans {
    exporter: opentelemetry_otlp::SpanExporter,
    scope: InstrumentationScope,
    counters: OtlpCounters,
}

impl Export<Vec<u8>> for Spans {
    async fn export(&self, batch: Vec<Vec<u8>>) -> Result<(), String> {
        let mut spans: Vec<SpanData> = Vec::with_capacity(batch.len());
        for line in &batch {
            match span_line::parse(line, &self.scope) {
                Ok(span) => spans.push(span),
                Err(error) => {
                    self.counters.dropped(Signal::Traces, 1);
                    tracing::warn!(%error, "ignoring an invalid span event from a guest");
                }
            }
        }
        if spans.is_empty() {
            return Ok(());
        }
        self.exporter.export(spans).await.map_err(|e| e.to_string())
    }
}

struct Logs {
    exporter: opentelemetry_otlp::LogExporter,
    logger: SdkLogger,
    scope: InstrumentationScope,
}

impl Export<Vec<u8>> for Logs {
    async fn export(&self, batch: Vec<Vec<u8>>) -> Result<(), String> {
        let records: Vec<SdkLogRecord> = batch
            .iter()
            .filter_map(|line| log_line::parse(line, &self.logger))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            records.iter().map(|r| (r, &self.scope)).collect();
        self.exporter
            .export(LogBatch::new(&refs))
            .await
            .map_err(|e| e.to_string())
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("edge-observability")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl Otlp {
    /// Starts the exporters the settings ask for (on the current tokio runtime); `None` when
    /// nothing is exported. The resource comes from `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES` (the SDK's detectors).
    pub fn start(settings: &OtlpSettings, counters: OtlpCounters) -> anyhow::Result<Option<Self>> {
        for issue in &settings.issues {
            tracing::warn!("{issue}");
        }
        if !settings.any() {
            return Ok(None);
        }
        let mut resource = Resource::builder();
        if let Some(name) = &settings.service_name {
            resource = resource.with_service_name(name.clone());
        }
        let resource = resource.build();
        let scope = scope();
        let spans = match settings.endpoint(Signal::Traces) {
            None => None,
            Some(url) => {
                let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(url)
                    .build()
                    .map_err(|e| anyhow::anyhow!("building the OTLP span exporter: {e}"))?;
                exporter.set_resource(&resource);
                Some(BatchQueue::start(
                    Spans {
                        exporter,
                        scope: scope.clone(),
                        counters: counters.clone(),
                    },
                    settings.spans,
                    Signal::Traces,
                    counters.clone(),
                ))
            }
        };
        let logs = match settings.endpoint(Signal::Logs) {
            None => None,
            Some(url) => {
                let mut exporter = opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_endpoint(url)
                    .build()
                    .map_err(|e| anyhow::anyhow!("building the OTLP log exporter: {e}"))?;
                exporter.set_resource(&resource);
                // The provider only makes records; batching and export are ours.
                let logger = SdkLoggerProvider::builder()
                    .build()
                    .logger_with_scope(scope.clone());
                Some(BatchQueue::start(
                    Logs {
                        exporter,
                        logger,
                        scope: scope.clone(),
                    },
                    settings.logs,
                    Signal::Logs,
                    counters.clone(),
                ))
            }
        };
        let metrics = match settings.endpoint(Signal::Metrics) {
            None => None,
            Some(url) => Some(metrics::OtlpMetrics::start(
                url,
                resource.clone(),
                settings.metric_interval,
                settings.metric_timeout,
                counters.clone(),
            )?),
        };
        for s in Signal::ALL {
            if let Some(url) = settings.endpoint(s) {
                // Each export attempt series is bounded by `OTEL_EXPORTER_OTLP[_<SIGNAL>]_TIMEOUT`
                // (read by the exporter, 10 s by default), the whole export by the batch timeout.
                // The URL only: header values (tokens) are never logged.
                tracing::info!(signal = s.as_str(), endpoint = url, "OTLP export on");
            }
        }
        Ok(Some(Otlp {
            spans,
            logs,
            metrics,
        }))
    }

    /// Whether span lines are wanted.
    pub fn wants_spans(&self) -> bool {
        self.spans.is_some()
    }

    /// A span event line from a guest: queued as it is, parsed by the export task (an
    /// invalid one is counted as dropped there).
    pub fn span_line(&self, line: &[u8]) {
        if let Some(spans) = &self.spans {
            queue_line(spans, line);
        }
    }

    /// An access line of the middleware ([`edge_observability::access_log::is_access_line`]):
    /// queued as it is, made into a log record by the export task.
    pub fn access_line(&self, line: &[u8]) {
        if let Some(queue) = &self.logs {
            queue_line(queue, line);
        }
    }

    /// A validated metric event.
    pub fn metric_event(&self, ev: &MetricEvent) {
        if let Some(m) = &self.metrics {
            m.observe(ev);
        }
    }

    /// Flushes everything queued, within `deadline`. The signals flush side by side: a
    /// collector that hangs on one of them must not use up the others' time.
    pub async fn shutdown(&self, deadline: Instant) {
        let spans = async {
            if let Some(q) = &self.spans {
                q.shutdown(deadline).await;
            }
        };
        let logs = async {
            if let Some(q) = &self.logs {
                q.shutdown(deadline).await;
            }
        };
        let metrics = async {
            if let Some(m) = &self.metrics {
                m.shutdown(deadline).await;
            }
        };
        tokio::join!(spans, logs, metrics);
    }
}

/// Queues a guest's line, unless it is longer than the middleware writes its lines
/// ([`edge_observability::access_log::MAX_LINE_BYTES`]): the queue's memory is then bounded by
/// its length times that, whatever a guest prints; a longer line is counted as dropped.
fn queue_line(queue: &queue::BatchQueue<Vec<u8>>, line: &[u8]) {
    if line.len() > edge_observability::access_log::MAX_LINE_BYTES {
        queue.drop_one();
    } else {
        queue.push(line.to_vec());
    }
}

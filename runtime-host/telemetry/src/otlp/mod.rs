//! OTLP export of spans, metrics and log records (http/protobuf).
//!
//! Fed from the guests' stdout lines (through [`crate::pipeline::Pipeline`]): span event lines become
//! spans with the middleware's ids and times, metric events feed the OpenTelemetry HTTP server
//! instruments, JSON access-log lines become log records carrying trace and span ids. On the
//! request path a span or access line is only copied into a bounded queue (a non-blocking
//! push); the export task reads each line and writes it as protobuf straight away, with the
//! core crate's encoder (the component's own export uses it too), and sends the batch
//! ([`sender`]). Metric events are aggregated as they come ([`metrics`], the core crate's
//! histograms) and exported periodically by a task of their own.
//!
//! All three signals used to go through the OpenTelemetry SDK: building its `SpanData` and log
//! records from the line and encoding those cost about as much as reading the line, and its
//! metric recording about seven times what the aggregation here costs (bench/README.md has the
//! figures).

pub mod attributes;
pub mod counters;
pub mod log_line;
pub mod metrics;
pub mod queue;
pub mod sender;
pub mod settings;
pub mod span_line;

use std::time::SystemTime;

use edge_observability::otlp::encode::{self, kv_bool, kv_double, kv_int, kv_str};
use edge_observability::otlp::proto::{begin, end};
use opentelemetry_sdk::Resource;
use tokio::time::Instant;

use crate::metric_event::MetricEvent;
use counters::OtlpCounters;
use queue::{BatchQueue, Export};
use sender::Sender;
use settings::{OtlpSettings, Signal};

/// The running exporters (only those configured).
pub struct Otlp {
    /// Span event lines, read by the export task.
    spans: Option<BatchQueue<Vec<u8>>>,
    /// Access-log lines, read by the export task.
    logs: Option<BatchQueue<Vec<u8>>>,
    metrics: Option<metrics::OtlpMetrics>,
}

/// Sends batches of span lines or access lines as spans or log records.
struct Lines {
    signal: Signal,
    sender: Sender,
    /// The encoded `Resource`, the same for every batch.
    resource: Vec<u8>,
    counters: OtlpCounters,
}

impl Export<Vec<u8>> for Lines {
    async fn export(&self, batch: Vec<Vec<u8>>) -> Result<(), String> {
        let mut items = Vec::with_capacity(batch.iter().map(Vec::len).sum());
        let now = unix_nanos(SystemTime::now());
        let mut kept = 0usize;
        for line in &batch {
            let ok = match self.signal {
                Signal::Traces => match span_line::encode(line, &mut items) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "ignoring an invalid span event from a guest");
                        false
                    }
                },
                // Only access lines are queued, so another line is only a malformed one.
                _ => log_line::encode(line, &mut items, now),
            };
            if ok {
                kept += 1;
            } else {
                self.counters.dropped(self.signal, 1);
            }
        }
        if kept == 0 {
            return Ok(());
        }
        self.sender
            .send(encode::request(&self.resource, &items))
            .await
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `resource` as field 1 of a `Resource*` message, for [`encode::request`].
fn encode_resource(resource: &Resource) -> Vec<u8> {
    use opentelemetry::Value;
    let mut buf = Vec::with_capacity(256);
    let r = begin(&mut buf, 1);
    for (key, value) in resource.iter() {
        let key = key.as_str();
        match value {
            Value::String(s) => kv_str(&mut buf, 1, key, s.as_str()),
            Value::I64(i) => kv_int(&mut buf, 1, key, *i),
            Value::F64(f) => kv_double(&mut buf, 1, key, *f),
            Value::Bool(b) => kv_bool(&mut buf, 1, key, *b),
            // Arrays come from no resource variable or detector the host uses.
            _ => {}
        }
    }
    end(&mut buf, r);
    buf
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
        let encoded = encode_resource(&resource);
        let sender = |signal: Signal, url: &str| {
            Sender::new(
                url,
                settings.headers[signal.index()].clone(),
                settings.request_timeouts[signal.index()],
            )
        };
        let lines = |signal: Signal, batching| -> anyhow::Result<_> {
            let Some(url) = settings.endpoint(signal) else {
                return Ok(None);
            };
            let export = Lines {
                signal,
                sender: sender(signal, url)?,
                resource: encoded.clone(),
                counters: counters.clone(),
            };
            Ok(Some(BatchQueue::start(
                export,
                batching,
                signal,
                counters.clone(),
            )))
        };
        let spans = lines(Signal::Traces, settings.spans)?;
        let logs = lines(Signal::Logs, settings.logs)?;
        let metrics = match settings.endpoint(Signal::Metrics) {
            None => None,
            Some(url) => Some(metrics::OtlpMetrics::start(
                sender(Signal::Metrics, url)?,
                encoded.clone(),
                settings.metric_interval,
                settings.metric_timeout,
                counters.clone(),
            )),
        };
        for s in Signal::ALL {
            if let Some(url) = settings.endpoint(s) {
                // Each export request is bounded by `OTEL_EXPORTER_OTLP[_<SIGNAL>]_TIMEOUT`
                // (10 s by default), the whole export, retries included, by the batch timeout.
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

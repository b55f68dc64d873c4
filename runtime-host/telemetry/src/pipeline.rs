//! The one path from guest output lines to numbers: serve mode and collect mode both start a
//! [`Pipeline`], hand it every line and shut it down the same way.

use std::sync::Arc;

use anyhow::Result;
use tokio::time::Instant;

use crate::lines::LineKind;
use crate::metric_event;
use crate::metrics::HostMetrics;
use crate::otlp::Otlp;
use crate::otlp::settings::OtlpSettings;
use crate::recent::RecentRequests;

/// Who wrote a line: only middleware components (and the host, answering itself) feed the
/// HTTP metrics, spans and access logs. An app cannot count requests that did not happen,
/// nor forge spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A middleware component of the chain, or the host.
    Middleware,
    /// The app component.
    App,
}

/// What the pipeline does with the lines.
#[derive(Clone, Debug, Default)]
pub struct PipelineSettings {
    /// The host's version (`runtime_host_build_info`).
    pub version: String,
    /// The wasmtime version the host embeds (`runtime_host_build_info`).
    pub wasmtime_version: String,
    /// Also print the middleware's metric event lines (and app metric lines).
    pub print_metric_events: bool,
    /// Also print the middleware's span event lines.
    pub print_span_events: bool,
    /// Access lines kept for the admin page's request list; 0 keeps none.
    pub recent_requests: usize,
    /// OTLP export, when any signal has an endpoint.
    pub otlp: Option<OtlpSettings>,
}

/// Guest output lines in, Prometheus metrics, OTLP export and the recent-request ring out.
pub struct Pipeline {
    metrics: Arc<HostMetrics>,
    otlp: Option<Otlp>,
    recent: Option<Arc<RecentRequests>>,
    print_metric_events: bool,
    print_span_events: bool,
}

impl Pipeline {
    /// Creates the registry and the ring and starts the OTLP exporters the settings ask for
    /// (on the current tokio runtime).
    pub fn start(settings: PipelineSettings) -> Result<Arc<Pipeline>> {
        let metrics = Arc::new(HostMetrics::new(
            &settings.version,
            &settings.wasmtime_version,
        ));
        let otlp = match &settings.otlp {
            Some(otlp) => Otlp::start(otlp, metrics.otlp().clone())?,
            None => None,
        };
        Ok(Arc::new(Pipeline {
            metrics,
            otlp,
            recent: (settings.recent_requests > 0)
                .then(|| Arc::new(RecentRequests::new(settings.recent_requests))),
            print_metric_events: settings.print_metric_events,
            print_span_events: settings.print_span_events,
        }))
    }

    /// The Prometheus registry and the host's counters.
    pub fn metrics(&self) -> &Arc<HostMetrics> {
        &self.metrics
    }

    /// The newest access lines, when the ring is on.
    pub fn recent(&self) -> Option<&Arc<RecentRequests>> {
        self.recent.as_ref()
    }

    /// Consumes one stdout line (ending in `\n`) written by `role`; returns whether it should
    /// also be printed. A printed line is offered to the recent-request ring.
    pub fn stdout_line(&self, role: Role, line: &[u8]) -> bool {
        let print = self.consume(role, line);
        // The page shows the middleware's requests: an app's lines (which could forge an
        // access line with a secret in it) never reach it.
        if print
            && role == Role::Middleware
            && let Some(recent) = &self.recent
        {
            recent.offer(line);
        }
        print
    }

    /// Consumes a line read from a log file in collect mode, as a middleware's stdout line.
    /// Under Spin the middleware is composed into the app, so roles cannot be told apart.
    pub fn collect_line(&self, line: &[u8]) {
        self.consume(Role::Middleware, line);
    }

    fn consume(&self, role: Role, line: &[u8]) -> bool {
        let kind = LineKind::of(line);
        // Any guest may feed app metrics; they never touch the HTTP request metrics.
        if kind == LineKind::AppMetric {
            if let Err(reason) = self.metrics.app().record_line(line) {
                tracing::warn!(
                    reason = reason.as_str(),
                    "ignoring an invalid app metric line from a guest"
                );
            }
            return self.print_metric_events;
        }
        if role != Role::Middleware {
            return true;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        match kind {
            LineKind::Span => {
                if let Some(otlp) = &self.otlp {
                    otlp.span_line(content);
                }
                self.print_span_events
            }
            LineKind::Metric => {
                match metric_event::parse(content) {
                    Ok(event) => {
                        self.metrics.observe(&event);
                        if let Some(otlp) = &self.otlp {
                            otlp.metric_event(&event);
                        }
                    }
                    Err(error) => {
                        self.metrics.invalid_event();
                        tracing::warn!(%error, "ignoring an invalid metric event from a guest");
                    }
                }
                self.print_metric_events
            }
            LineKind::Access => {
                if let Some(otlp) = &self.otlp {
                    otlp.access_line(content);
                }
                true
            }
            LineKind::AppMetric | LineKind::Other => true,
        }
    }

    /// Sends what the exporters hold, within `deadline`.
    pub async fn shutdown(&self, deadline: Instant) {
        if let Some(otlp) = &self.otlp {
            otlp.shutdown(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRIC: &[u8] = b"{\"schema\":\"edge_obs.metric.v1\",\"duration_s\":0.01,\"attributes\":{\"http.request.method\":\"GET\",\"http.response.status_code\":200}}\n";
    const ACCESS: &[u8] = b"{\"timestamp\":\"2026-11-23T11:22:33.456Z\",\"level\":\"info\",\"event\":\"http.request\",\"request_id\":\"r1\"}\n";

    fn pipeline(print_metric_events: bool) -> Arc<Pipeline> {
        Pipeline::start(PipelineSettings {
            version: "0.1.0".into(),
            wasmtime_version: "48.0.8".into(),
            print_metric_events,
            recent_requests: 4,
            ..PipelineSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn only_the_middleware_counts_requests() {
        let p = pipeline(false);
        assert!(!p.stdout_line(Role::Middleware, METRIC));
        assert!(
            p.stdout_line(Role::App, METRIC),
            "an app's event is printed"
        );
        assert_eq!(p.metrics().red_totals().requests, 1);
        p.collect_line(METRIC);
        assert_eq!(p.metrics().red_totals().requests, 2);
        assert!(pipeline(true).stdout_line(Role::Middleware, METRIC));
    }

    /// Collect mode reads Spin's log files through the same path: a sampled request's metric
    /// line there leaves its exemplar too.
    #[test]
    fn collected_metric_lines_leave_exemplars() {
        let p = pipeline(false);
        p.collect_line(b"{\"schema\":\"edge_obs.metric.v1\",\"duration_s\":0.01,\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\",\"attributes\":{\"http.request.method\":\"GET\",\"http.response.status_code\":200}}\n");
        p.collect_line(METRIC);
        let om = p.metrics().encode_as(crate::metrics::Format::OpenMetrics);
        let exemplar =
            "# {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"}";
        assert_eq!(om.matches(exemplar).count(), 2, "{om}");
        assert_eq!(p.metrics().red_totals().requests, 2);
    }

    #[test]
    fn printed_access_lines_reach_the_ring() {
        let p = pipeline(false);
        assert!(p.stdout_line(Role::Middleware, ACCESS));
        assert!(p.stdout_line(Role::Middleware, b"hello\n"));
        let ring = p.recent().unwrap();
        let listed = ring.list(&crate::recent::Filter::default(), 10);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].request_id.as_deref(), Some("r1"));
    }
}

//! The guests' stdout and stderr.
//!
//! Each store gets its own line buffer, so a line is always passed on whole, in one write,
//! and lines of concurrent requests never interleave. Metric event lines
//! (`edge_obs.metric.v1`) of middleware components, and of the host's own answers, feed the
//! Prometheus metrics instead of being printed (unless asked). The app's metric event lines
//! are printed as they are: an app cannot count requests that did not happen. Span event
//! lines (`edge_obs.span.v1`) and access lines of the middleware feed OTLP export when it is
//! on, under the same rule. App metric lines (`edge_obs.app_metric.v1`) of any component feed
//! the `app_` series.

use crate::dashboard::recent::RecentRequests;
use crate::metrics::HostMetrics;
use crate::otlp::{Otlp, span_line};
use crate::{app_metrics, metric_event};
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A partial line longer than this is passed on as it is, so a guest that never writes a
/// newline cannot make the host buffer without bound.
const MAX_LINE: usize = 64 * 1024;

/// What an [`OutputSink`] does besides feeding the Prometheus metrics.
#[derive(Default)]
pub struct SinkOptions {
    /// Also print the middleware's metric event lines.
    pub print_metric_events: bool,
    /// Also print the middleware's span event lines.
    pub print_span_events: bool,
    /// The admin page's list of recent access lines, when it is on.
    pub recent: Option<Arc<RecentRequests>>,
    /// OTLP export, when it is on: fed with the middleware's span events, metric events and
    /// access lines.
    pub otlp: Option<Arc<Otlp>>,
}

/// Where complete guest lines go; shared by all stores.
pub struct OutputSink {
    metrics: Arc<HostMetrics>,
    options: SinkOptions,
}

impl OutputSink {
    /// A sink that turns metric events into `metrics` and prints everything else (span
    /// events are dropped).
    pub fn new(metrics: Arc<HostMetrics>, print_metric_events: bool) -> Arc<Self> {
        Self::with_options(
            metrics,
            SinkOptions {
                print_metric_events,
                ..SinkOptions::default()
            },
        )
    }

    /// A sink with everything [`SinkOptions`] can switch on.
    pub fn with_options(metrics: Arc<HostMetrics>, options: SinkOptions) -> Arc<Self> {
        Arc::new(OutputSink { metrics, options })
    }

    /// The lines the host writes for a request it answered itself (access log, span and
    /// metric event), treated like a middleware's.
    pub fn host_lines(&self, lines: &str) {
        for line in lines.split_inclusive('\n') {
            self.stdout_line(Role::Middleware, line.as_bytes());
        }
    }

    /// A line read from a log file in collect mode: consumed like a middleware's stdout line,
    /// never printed (it is in the file already). Under Spin the middleware is composed into
    /// the app, so roles cannot be told apart there.
    pub fn collect_line(&self, line: &[u8]) {
        self.consume(Role::Middleware, line);
    }

    fn stdout_line(&self, role: Role, line: &[u8]) {
        if self.consume(role, line) {
            if let Some(recent) = &self.options.recent {
                recent.offer(line);
            }
            // A closed stdout must not fail the guest's request.
            let _ = std::io::stdout().lock().write_all(line);
        }
    }

    /// Feeds the metrics and OTLP export from one stdout line; returns whether to print it.
    /// Only the middleware's (and the host's) lines count as requests, spans or access logs:
    /// an app cannot count requests that did not happen, nor forge spans.
    fn consume(&self, role: Role, line: &[u8]) -> bool {
        let options = &self.options;
        // Any guest may feed app metrics; they never touch the HTTP request metrics.
        if app_metrics::is_app_metric_line(line) {
            if let Err(reason) = self.metrics.app().record_line(line) {
                tracing::warn!(
                    reason = reason.as_str(),
                    "ignoring an invalid app metric line from a guest"
                );
            }
            return options.print_metric_events;
        }
        if role != Role::Middleware {
            return true;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        if span_line::is_span_line(line) {
            if let Some(otlp) = &options.otlp {
                otlp.span_line(content);
            }
            return options.print_span_events;
        }
        if metric_event::is_metric_line(line) {
            match metric_event::parse(content) {
                Ok(event) => {
                    self.metrics.observe(&event);
                    if let Some(otlp) = &options.otlp {
                        otlp.metric_event(&event);
                    }
                }
                Err(error) => {
                    self.metrics.invalid_event();
                    tracing::warn!(%error, "ignoring an invalid metric event from a guest");
                }
            }
            return options.print_metric_events;
        }
        if let Some(otlp) = &options.otlp {
            otlp.other_line(content);
        }
        true
    }

    fn stderr_line(&self, line: &[u8]) {
        let _ = std::io::stderr().lock().write_all(line);
    }
}

/// Who writes to a stdout: only middleware components (and the host) feed the HTTP metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A middleware component of the chain.
    Middleware,
    /// The app component.
    App,
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout(Role),
    Stderr,
}

/// One store's stdout or stderr.
#[derive(Clone)]
pub struct GuestOutput {
    sink: Arc<OutputSink>,
    stream: Stream,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    /// A new, empty stdout for one store, written by `role`.
    pub fn stdout(sink: &Arc<OutputSink>, role: Role) -> Self {
        Self::new(sink, Stream::Stdout(role))
    }

    /// A new, empty stderr for one store.
    pub fn stderr(sink: &Arc<OutputSink>) -> Self {
        Self::new(sink, Stream::Stderr)
    }

    fn new(sink: &Arc<OutputSink>, stream: Stream) -> Self {
        GuestOutput {
            sink: sink.clone(),
            stream,
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn emit(&self, line: &[u8]) {
        match self.stream {
            Stream::Stdout(role) => self.sink.stdout_line(role, line),
            Stream::Stderr => self.sink.stderr_line(line),
        }
    }

    /// Passes on every complete line in `bytes`, keeping a trailing partial line.
    pub fn write_bytes(&self, mut bytes: &[u8]) {
        let mut pending = self.pending.lock().unwrap();
        while let Some(at) = memchr::memchr(b'\n', bytes) {
            let (line, rest) = bytes.split_at(at + 1);
            bytes = rest;
            if pending.is_empty() {
                self.emit(line);
            } else {
                pending.extend_from_slice(line);
                self.emit(&pending);
                pending.clear();
            }
        }
        pending.extend_from_slice(bytes);
        if pending.len() >= MAX_LINE {
            self.emit(&pending);
            pending.clear();
        }
    }

    /// Passes on a trailing partial line, if any (when the store goes away).
    pub fn flush_partial(&self) {
        let mut pending = self.pending.lock().unwrap();
        if !pending.is_empty() {
            pending.push(b'\n');
            self.emit(&pending);
            pending.clear();
        }
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

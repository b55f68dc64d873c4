//! The guests' stdout and stderr.
//!
//! Each store gets its own line buffer, so a line is always passed on whole, in one write,
//! and lines of concurrent requests never interleave. Metric event lines
//! (`edge_obs.metric.v1`) feed the Prometheus metrics instead of being printed (unless asked).

use crate::metric_event;
use crate::metrics::HostMetrics;
use crate::otlp::{Otlp, span_line};
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

/// Where complete guest lines go; shared by all stores.
pub struct OutputSink {
    metrics: Arc<HostMetrics>,
    print_metric_events: bool,
    otlp: Option<Arc<Otlp>>,
    print_span_events: bool,
}

impl OutputSink {
    /// A sink that turns metric events into `metrics` and prints everything else (span
    /// events are dropped).
    pub fn new(metrics: Arc<HostMetrics>, print_metric_events: bool) -> Arc<Self> {
        Self::with_otlp(metrics, print_metric_events, None, false)
    }

    /// Also feeds OTLP export (span events, metric events, access-log lines) when `otlp` is
    /// set; span event lines are printed only when `print_span_events`.
    pub fn with_otlp(
        metrics: Arc<HostMetrics>,
        print_metric_events: bool,
        otlp: Option<Arc<Otlp>>,
        print_span_events: bool,
    ) -> Arc<Self> {
        Arc::new(OutputSink {
            metrics,
            print_metric_events,
            otlp,
            print_span_events,
        })
    }

    fn stdout_line(&self, line: &[u8]) {
        if self.consume(line) {
            // A closed stdout must not fail the guest's request.
            let _ = std::io::stdout().lock().write_all(line);
        }
    }

    /// A line read from a log file in collect mode: consumed like a guest's stdout line, never
    /// printed (it is in the file already).
    pub fn collect_line(&self, line: &[u8]) {
        self.consume(line);
    }

    /// Feeds metrics and OTLP export from one stdout line; returns whether to print it.
    fn consume(&self, line: &[u8]) -> bool {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        if span_line::is_span_line(line) {
            if let Some(otlp) = &self.otlp {
                otlp.span_line(content);
            }
            return self.print_span_events;
        }
        if metric_event::is_metric_line(line) {
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
            return self.print_metric_events;
        }
        if let Some(otlp) = &self.otlp {
            otlp.other_line(content);
        }
        true
    }

    fn stderr_line(&self, line: &[u8]) {
        let _ = std::io::stderr().lock().write_all(line);
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
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
    /// A new, empty stdout for one store.
    pub fn stdout(sink: &Arc<OutputSink>) -> Self {
        Self::new(sink, Stream::Stdout)
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
            Stream::Stdout => self.sink.stdout_line(line),
            Stream::Stderr => self.sink.stderr_line(line),
        }
    }

    /// Passes on every complete line in `bytes`, keeping a trailing partial line.
    pub fn write_bytes(&self, mut bytes: &[u8]) {
        let mut pending = self.pending.lock().unwrap();
        while let Some(at) = bytes.iter().position(|b| *b == b'\n') {
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

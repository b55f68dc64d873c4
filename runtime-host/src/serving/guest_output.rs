//! The guests' stdout and stderr, as wasmtime streams.
//!
//! Each store gets its own line splitter ([`telemetry::lines`]), so a line is always passed
//! on whole, in one write, and lines of concurrent requests never interleave. Every stdout
//! line goes to the telemetry pipeline ([`Pipeline`]), which decides what feeds the metrics,
//! OTLP export and the admin page, and what is printed ([`stdio`], off the request path).

use crate::serving::stdio;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use telemetry::lines::{LineSplitter, MAX_LINE};
use telemetry::pipeline::Pipeline;
pub use telemetry::pipeline::Role;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Where complete guest lines go; shared by all stores. The pipeline consumes each line and
/// says whether it is printed too.
pub struct OutputSink {
    pipeline: Arc<Pipeline>,
}

impl OutputSink {
    /// A sink that feeds `pipeline` and prints what it does not keep to itself.
    pub fn new(pipeline: Arc<Pipeline>) -> Arc<Self> {
        Arc::new(OutputSink { pipeline })
    }

    /// The pipeline the lines feed.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The lines the host writes for a request it answered itself (access log, span and
    /// metric event), treated like a middleware's.
    pub fn host_lines(&self, lines: &str) {
        for line in lines.split_inclusive('\n') {
            self.stdout_line(Role::Middleware, line.as_bytes());
        }
    }

    fn stdout_line(&self, role: Role, line: &[u8]) {
        if self.pipeline.stdout_line(role, line) {
            stdio::stdout().line(line);
        }
    }

    fn stderr_line(&self, line: &[u8]) {
        stdio::stderr().line(line);
    }
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
    lines: Arc<Mutex<LineSplitter>>,
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
            lines: Arc::new(Mutex::new(LineSplitter::default())),
        }
    }

    fn emit(&self, line: &[u8]) {
        match self.stream {
            Stream::Stdout(role) => self.sink.stdout_line(role, line),
            Stream::Stderr => self.sink.stderr_line(line),
        }
    }

    /// Passes on every complete line in `bytes`, keeping a trailing partial line.
    pub fn write_bytes(&self, bytes: &[u8]) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let ended = lines.push(bytes, &mut |line| self.emit(line));
        // A platform that makes one log record per write (Spin) would glue these together.
        if ended > 1 {
            tracing::debug!(lines = ended, "one guest write held several lines");
        }
    }

    /// Passes on a trailing partial line, if any (when the store goes away).
    pub fn flush_partial(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.flush(&mut |line| self.emit(line));
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

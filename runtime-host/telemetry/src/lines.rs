//! Guest output as lines: one splitting rule and one classification rule, for every source
//! (a guest's stdout in serve mode, a log file in collect mode).

use edge_observability::access_log::is_access_line;

use crate::app_metrics::is_app_metric_line;
use crate::metric_event::is_metric_line;
use crate::otlp::span_line::is_span_line;

/// A partial line longer than this is passed on as a line of its own (with a `\n` added), so
/// a writer that never ends its line cannot make the host buffer without bound.
pub const MAX_LINE: usize = 64 * 1024;

/// Cuts a byte stream into lines, each passed on whole and ending in `\n`.
///
/// ```
/// use telemetry::lines::LineSplitter;
///
/// let mut lines = Vec::new();
/// let mut splitter = LineSplitter::default();
/// splitter.push(b"a\nb", &mut |line| lines.push(line.to_vec()));
/// splitter.push(b"c\n", &mut |line| lines.push(line.to_vec()));
/// assert_eq!(lines, [b"a\n".to_vec(), b"bc\n".to_vec()]);
/// ```
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Passes every complete line in `bytes` (joined to what was pending) to `line`, and keeps
    /// a trailing partial line, unless it has reached [`MAX_LINE`]. Returns how many lines
    /// `bytes` ended.
    pub fn push(&mut self, mut bytes: &[u8], line: &mut dyn FnMut(&[u8])) -> usize {
        let mut ended = 0;
        while let Some(at) = memchr::memchr(b'\n', bytes) {
            ended += 1;
            let (head, rest) = bytes.split_at(at + 1);
            bytes = rest;
            if self.pending.is_empty() {
                line(head);
            } else {
                self.pending.extend_from_slice(head);
                line(&self.pending);
                self.pending.clear();
            }
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= MAX_LINE {
            self.flush(line);
        }
        ended
    }

    /// Passes on a pending partial line, with a `\n` added (when the writer goes away).
    pub fn flush(&mut self, line: &mut dyn FnMut(&[u8])) {
        if !self.pending.is_empty() {
            self.pending.push(b'\n');
            line(&self.pending);
            self.pending.clear();
        }
    }
}

/// What a line of guest output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// An app metric (`edge_obs.app_metric.v1`).
    AppMetric,
    /// A request's metric event (`edge_obs.metric.v1`).
    Metric,
    /// A span event (`edge_obs.span.v1`).
    Span,
    /// A JSON access line of a finished request.
    Access,
    /// Anything else: printed as it is.
    Other,
}

impl LineKind {
    /// Classifies `line` by prefix checks only, cheap enough for every line a guest prints.
    /// Content is validated later, by whoever consumes the line.
    pub fn of(line: &[u8]) -> LineKind {
        if is_app_metric_line(line) {
            LineKind::AppMetric
        } else if is_metric_line(line) {
            LineKind::Metric
        } else if is_span_line(line) {
            LineKind::Span
        } else if is_access_line(line) {
            LineKind::Access
        } else {
            LineKind::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<String>, LineSplitter) {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        for chunk in chunks {
            s.push(chunk, &mut |l| {
                out.push(String::from_utf8_lossy(l).into_owned())
            });
        }
        (out, s)
    }

    #[test]
    fn lines_are_whole_and_end_in_newline() {
        let (out, mut s) = split(&[b"one\ntw", b"o\nthr", b"ee"]);
        assert_eq!(out, ["one\n", "two\n"]);
        let mut rest = Vec::new();
        s.flush(&mut |l| rest.push(l.to_vec()));
        assert_eq!(rest, [b"three\n".to_vec()]);
        s.flush(&mut |_| panic!("nothing pending"));
        // The count of lines one write ended (a partial line is not one).
        assert_eq!(s.push(b"x\ny\nz", &mut |_| {}), 2);
    }

    #[test]
    fn an_overlong_partial_line_is_passed_on_as_a_line() {
        let long = vec![b'x'; MAX_LINE];
        let (out, _) = split(&[&long[..10], &long[10..], b"tail\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE + 1);
        assert!(out[0].ends_with('\n'));
        assert_eq!(out[1], "tail\n");
    }

    #[test]
    fn kinds() {
        let access = br#"{"timestamp":"2026-11-23T11:22:33.456Z","level":"info","event":"http.request","request_id":"r"}"#;
        assert_eq!(LineKind::of(access), LineKind::Access);
        assert_eq!(
            LineKind::of(br#"{"schema":"edge_obs.metric.v1","duration_s":1}"#),
            LineKind::Metric
        );
        assert_eq!(
            LineKind::of(br#"{"schema":"edge_obs.span.v1"}"#),
            LineKind::Span
        );
        assert_eq!(
            LineKind::of(br#"{"schema":"edge_obs.app_metric.v1","type":"counter"}"#),
            LineKind::AppMetric
        );
        let start = br#"{"timestamp":"2026-11-23T11:22:33.456Z","level":"debug","event":"http.request.start"}"#;
        assert_eq!(LineKind::of(start), LineKind::Other);
        assert_eq!(LineKind::of(b"hello\n"), LineKind::Other);
    }
}

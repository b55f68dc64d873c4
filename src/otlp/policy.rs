//! What the exporter does when an export does not go through: which failures are retried and
//! after how long, and the warning line, at most one per interval.

use std::time::{Duration, Instant, SystemTime};

use super::Signal;
use crate::access_log::{self, Level};
use crate::json::{ObjectLine, Small};
use crate::timestamp;

/// Tries of one export request at most (the first and two retries).
pub const MAX_ATTEMPTS: u32 = 3;
/// First wait before a retry without `Retry-After`; doubled for each further one.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// Longest `Retry-After` honoured; a collector asking for more gets the batch dropped
/// rather than a buffer held for minutes.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Why an export request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The collector refused the connection.
    Refused,
    /// No answer within `OTEL_EXPORTER_OTLP_TIMEOUT` (or the host's own timeout).
    TimedOut,
    /// The collector answered with this status (not 2xx).
    Status(u16),
    /// The host does not let the component reach the collector (Spin: not in
    /// `allowed_outbound_hosts`). Permanent: the signal is turned off for the instance.
    HostNotAllowed,
    /// The collector's name does not resolve or it cannot be reached.
    Unreachable,
    /// Any other error of the HTTP client.
    Other,
}

impl Failure {
    /// What a warning line says: `refused`, `timed out`, `status 503`, `host not allowed`, ...
    pub fn describe(self) -> Small {
        let mut out = Small::default();
        out.push_bytes(match self {
            Failure::Refused => b"refused",
            Failure::TimedOut => b"timed out",
            Failure::Status(_) => b"status ",
            Failure::HostNotAllowed => b"host not allowed",
            Failure::Unreachable => b"unreachable",
            Failure::Other => b"failed",
        });
        if let Failure::Status(s) = self {
            out.push_u64(u64::from(s));
        }
        out
    }
}

/// Statuses an export is retried on (the OTLP/HTTP specification's retryable ones).
pub fn retryable(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// The wait before retrying after attempt `attempt` (1 for the first) failed with a retryable
/// status; `None` when no retry is left or `Retry-After` asks for more than
/// [`MAX_RETRY_AFTER`]. `Retry-After` in seconds is honoured; the HTTP-date form (rare from
/// collectors) falls back to the backoff.
pub fn retry_delay(attempt: u32, retry_after: Option<&[u8]>) -> Option<Duration> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    let asked = retry_after
        .map(|v| v.trim_ascii())
        .filter(|v| v.len() <= 9)
        .and_then(crate::json::parse_u64)
        .map(Duration::from_secs);
    match asked {
        Some(d) if d > MAX_RETRY_AFTER => None,
        Some(d) => Some(d),
        None => Some(BACKOFF * (1 << (attempt - 1))),
    }
}

/// Collects failures and drops, and says them in one line at most every `interval`.
#[derive(Debug)]
pub struct Warnings {
    interval: Duration,
    last: Option<Instant>,
    failed: u64,
    dropped: u64,
    latest: Option<(Signal, Failure, String)>,
}

impl Warnings {
    /// At most one line per `interval` (never less than a second).
    pub fn new(interval: Duration) -> Self {
        Warnings {
            interval: interval.max(Duration::from_secs(1)),
            last: None,
            failed: 0,
            dropped: 0,
            latest: None,
        }
    }

    /// An export request to `endpoint` (shown without its query) failed for good.
    pub fn failed(&mut self, signal: Signal, failure: Failure, endpoint: String) {
        self.failed += 1;
        self.latest = Some((signal, failure, endpoint));
    }

    /// `n` items were dropped.
    pub fn dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// The warning line (ending in `\n`) when something happened since the last one and the
    /// interval has passed, e.g. `{"timestamp":...,"level":"warn","event":"otlp.export_problem",
    /// "failed_exports":3,"dropped_items":120,"signal":"logs","reason":"status 503",
    /// "endpoint":"http://collector:4318/v1/logs"}`.
    pub fn line(&mut self, now: Instant, service_name: Option<&str>) -> Option<String> {
        if self.failed == 0 && self.dropped == 0
            || self
                .last
                .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
        {
            return None;
        }
        self.last = Some(now);
        let mut out = String::with_capacity(256);
        let mut line = begin_line(&mut out, "otlp.export_problem", service_name);
        line.u64("failed_exports", std::mem::take(&mut self.failed));
        line.u64("dropped_items", std::mem::take(&mut self.dropped));
        if let Some((signal, failure, endpoint)) = self.latest.take() {
            line.plain("signal", signal.as_str());
            line.str("reason", failure.describe().as_str(), 64);
            line.str("endpoint", &endpoint, 256);
        }
        line.finish();
        Some(out)
    }
}

fn begin_line<'a>(out: &'a mut String, event: &str, service_name: Option<&str>) -> ObjectLine<'a> {
    let mut ts = String::with_capacity(24);
    timestamp::write_rfc3339_millis(&mut ts, SystemTime::now());
    access_log::begin_event_line(out, &ts, Level::Warn, event, service_name)
}

/// The line said once when the host does not allow the collector's host: that signal's
/// export is off for the instance.
pub fn host_not_allowed_line(signal: Signal, endpoint: &str, service_name: Option<&str>) -> String {
    let mut out = String::with_capacity(256);
    let mut line = begin_line(&mut out, "otlp.export_off", service_name);
    line.plain("signal", signal.as_str());
    line.plain("reason", Failure::HostNotAllowed.describe().as_str());
    line.str("endpoint", endpoint, 256);
    line.plain(
        "hint",
        "allow the collector host for the app (Spin: allowed_outbound_hosts, and inherit_configuration for the middleware)",
    );
    line.finish();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_and_honour_retry_after() {
        assert!([429, 500, 502, 503, 504].iter().all(|s| retryable(*s)));
        assert!(
            ![200, 400, 401, 403, 404, 413, 501]
                .iter()
                .any(|s| retryable(*s))
        );
        assert_eq!(retry_delay(1, None), Some(Duration::from_secs(1)));
        assert_eq!(retry_delay(2, None), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(3, None), None);
        assert_eq!(retry_delay(1, Some(b" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(retry_delay(1, Some(b"0")), Some(Duration::ZERO));
        assert_eq!(retry_delay(1, Some(b"31")), None, "too long: dropped");
        assert_eq!(retry_delay(1, Some(b"99999999999999")), Some(BACKOFF));
        assert_eq!(
            retry_delay(2, Some(b"Wed, 21 Oct 2026 07:28:00 GMT")),
            Some(2 * BACKOFF)
        );
        assert_eq!(retry_delay(3, Some(b"1")), None);
    }

    #[test]
    fn one_warning_line_per_interval_saying_what_happened() {
        let mut w = Warnings::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(w.line(t0, None), None, "nothing to say");
        w.failed(
            Signal::Logs,
            Failure::Status(503),
            "http://c:4318/v1/logs".into(),
        );
        w.dropped(120);
        let line = w.line(t0, Some("shop")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(v["level"], "warn");
        assert_eq!(v["event"], "otlp.export_problem");
        assert_eq!(v["reason"], "status 503");
        assert_eq!(v["signal"], "logs");
        assert_eq!(v["dropped_items"], 120);
        assert_eq!(v["failed_exports"], 1);
        assert_eq!(v["service.name"], "shop");
        w.failed(
            Signal::Traces,
            Failure::Refused,
            "http://c:4318/v1/traces".into(),
        );
        w.failed(
            Signal::Traces,
            Failure::TimedOut,
            "http://c:4318/v1/traces".into(),
        );
        assert_eq!(w.line(t0 + Duration::from_secs(4), None), None, "too soon");
        let line = w.line(t0 + Duration::from_secs(5), None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["failed_exports"], 2, "counted while quiet");
        assert_eq!(v["reason"], "timed out");
        assert_eq!(w.line(t0 + Duration::from_secs(60), None), None);
        for (f, s) in [
            (Failure::HostNotAllowed, "host not allowed"),
            (Failure::Unreachable, "unreachable"),
            (Failure::Other, "failed"),
        ] {
            assert_eq!(f.describe().as_str(), s);
        }
        let off = host_not_allowed_line(Signal::Metrics, "https://o.example/v1/metrics", None);
        let v: serde_json::Value = serde_json::from_str(&off).unwrap();
        assert_eq!(v["reason"], "host not allowed");
    }
}

//! OTLP export settings, read the way every OpenTelemetry SDK reads them.
//!
//! Pure: the environment is passed in as a lookup function, so the rules are unit-tested.
//! Export of a signal is on when an endpoint applies to it (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! the signal's own variable, or the `--otlp-endpoint` flag), `OTEL_<SIGNAL>_EXPORTER` is not
//! `none` and `OTEL_SDK_DISABLED` is not `true`. Headers and timeout of each signal
//! (`OTEL_EXPORTER_OTLP[_<SIGNAL>]_HEADERS`, `..._TIMEOUT`) are read here, since our own sender
//! sends all three. The resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) is read by
//! `opentelemetry_sdk`.

use std::time::Duration;

use edge_observability::header_rules;
use edge_observability::otlp::{ExportHeaders, percent_decode};

/// The three OTLP signals: the core crate's, so the host and the component name them alike.
pub use edge_observability::otlp::Signal;

/// The signal as in the per-signal variable names (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
fn upper(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "TRACES",
        Signal::Metrics => "METRICS",
        Signal::Logs => "LOGS",
    }
}

/// Batching of a queued signal (`OTEL_BSP_*` for spans, `OTEL_BLRP_*` for log records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Longest wait before a partial batch is sent (`*_SCHEDULE_DELAY`, milliseconds).
    pub schedule_delay: Duration,
    /// Longest time one export may take, retries included (`*_EXPORT_TIMEOUT`).
    pub export_timeout: Duration,
    /// Items held at most; more are dropped and counted (`*_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Items per export at most (`*_MAX_EXPORT_BATCH_SIZE`, at most the queue size).
    pub max_batch_size: usize,
}

/// Everything the exporters need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The full URL per enabled signal (`None`: that signal is not exported).
    pub traces_endpoint: Option<String>,
    /// See `traces_endpoint`.
    pub metrics_endpoint: Option<String>,
    /// See `traces_endpoint`.
    pub logs_endpoint: Option<String>,
    /// Span batching.
    pub spans: BatchSettings,
    /// Log record batching.
    pub logs: BatchSettings,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds).
    pub metric_interval: Duration,
    /// `OTEL_METRIC_EXPORT_TIMEOUT` (milliseconds).
    pub metric_timeout: Duration,
    /// Headers of each signal's export requests ([`Signal::index`]):
    /// `OTEL_EXPORTER_OTLP_HEADERS`, then the signal's own variable, whose entries win.
    pub headers: [ExportHeaders; 3],
    /// Longest wait for one export request of each signal (`OTEL_EXPORTER_OTLP[_<SIGNAL>]_TIMEOUT`).
    pub request_timeouts: [Duration; 3],
    /// `service.name` given by flag (or `OTEL_SERVICE_NAME`); else the SDK's resource
    /// detectors decide.
    pub service_name: Option<String>,
    /// Problems found (bad values fall back to defaults; an unsupported protocol turns the
    /// signal off). Printed as warnings at start.
    pub issues: Vec<String>,
}

impl OtlpSettings {
    /// Whether anything is exported.
    pub fn any(&self) -> bool {
        Signal::ALL.iter().any(|s| self.endpoint(*s).is_some())
    }

    /// The URL a signal is sent to, when exported.
    pub fn endpoint(&self, signal: Signal) -> Option<&str> {
        match signal {
            Signal::Traces => self.traces_endpoint.as_deref(),
            Signal::Metrics => self.metrics_endpoint.as_deref(),
            Signal::Logs => self.logs_endpoint.as_deref(),
        }
    }

    /// Stops exporting `signal`.
    pub fn disable(&mut self, signal: Signal) {
        match signal {
            Signal::Traces => self.traces_endpoint = None,
            Signal::Metrics => self.metrics_endpoint = None,
            Signal::Logs => self.logs_endpoint = None,
        }
    }

    /// Reads the settings. `base_endpoint` is the `--otlp-endpoint` flag (clap also fills it
    /// from `OTEL_EXPORTER_OTLP_ENDPOINT`); `env` looks a variable up.
    pub fn from_env(base_endpoint: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut issues = Vec::new();
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let base = base_endpoint
            .map(str::to_owned)
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .filter(|v| !v.trim().is_empty());
        let mut endpoint = |signal: Signal| -> Option<String> {
            if disabled {
                return None;
            }
            let exporter = var(&format!("OTEL_{}_EXPORTER", upper(signal)));
            if exporter
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case("none"))
            {
                return None;
            }
            let own = var(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", upper(signal)));
            let url = match (own, &base) {
                // A signal's own endpoint is the full URL, used as it is.
                (Some(own), _) => own,
                (None, Some(base)) => {
                    format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str())
                }
                (None, None) => return None,
            };
            let protocol_var = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", upper(signal));
            let protocol = var(&protocol_var).or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
            match protocol.as_deref() {
                None | Some("http/protobuf") => Some(url),
                Some(other) => {
                    issues.push(format!(
                        "OTLP protocol {other:?} for {} is not supported (only http/protobuf); \
                         {} are not exported",
                        signal.as_str(),
                        signal.as_str()
                    ));
                    None
                }
            }
        };
        let traces_endpoint = endpoint(Signal::Traces);
        let metrics_endpoint = endpoint(Signal::Metrics);
        let logs_endpoint = endpoint(Signal::Logs);
        let mut base_headers = Vec::new();
        if let Some(text) = var("OTEL_EXPORTER_OTLP_HEADERS") {
            read_headers(
                "OTEL_EXPORTER_OTLP_HEADERS",
                &text,
                &mut base_headers,
                &mut issues,
            );
        }
        let mut headers: [ExportHeaders; 3] = Default::default();
        let mut request_timeouts = [Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS); 3];
        for signal in Signal::ALL {
            let own = |what: &str| format!("OTEL_EXPORTER_OTLP_{}_{what}", upper(signal));
            let h = &mut headers[signal.index()].0;
            h.clone_from(&base_headers);
            if let Some(text) = var(&own("HEADERS")) {
                read_headers(&own("HEADERS"), &text, h, &mut issues);
            }
            let (name, value) = match var(&own("TIMEOUT")) {
                Some(v) => (own("TIMEOUT"), Some(v)),
                None => (
                    "OTEL_EXPORTER_OTLP_TIMEOUT".to_owned(),
                    var("OTEL_EXPORTER_OTLP_TIMEOUT"),
                ),
            };
            if let Some(v) = value {
                match v.parse::<u64>() {
                    Ok(ms) if (1..=MAX_REQUEST_TIMEOUT_MS).contains(&ms) => {
                        request_timeouts[signal.index()] = Duration::from_millis(ms)
                    }
                    _ => issues.push(format!(
                        "{name}={v:?} is not milliseconds from 1 to {MAX_REQUEST_TIMEOUT_MS}; \
                         using {DEFAULT_REQUEST_TIMEOUT_MS}"
                    )),
                }
            }
            let name = own("COMPRESSION");
            let compression = var(&name).map(|v| (name, v)).or_else(|| {
                var("OTEL_EXPORTER_OTLP_COMPRESSION")
                    .map(|v| ("OTEL_EXPORTER_OTLP_COMPRESSION".to_owned(), v))
            });
            if let Some((name, v)) = compression
                && !v.eq_ignore_ascii_case("none")
            {
                issues.push(format!(
                    "{name}={v:?}: runtime-host sends {} uncompressed",
                    signal.as_str()
                ));
            }
        }
        let mut millis = |name: &str, default: u64| -> Duration {
            match var(name) {
                None => Duration::from_millis(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) => Duration::from_millis(n),
                    Err(_) => {
                        issues.push(format!(
                            "{name}={v:?} is not a number of milliseconds; using {default}"
                        ));
                        Duration::from_millis(default)
                    }
                },
            }
        };
        let spans_delay = millis("OTEL_BSP_SCHEDULE_DELAY", 5000);
        let spans_timeout = millis("OTEL_BSP_EXPORT_TIMEOUT", 30_000);
        let logs_delay = millis("OTEL_BLRP_SCHEDULE_DELAY", 1000);
        let logs_timeout = millis("OTEL_BLRP_EXPORT_TIMEOUT", 30_000);
        let metric_interval = millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000);
        let metric_timeout = millis("OTEL_METRIC_EXPORT_TIMEOUT", 30_000);
        let mut count = |name: &str, default: usize| -> usize {
            match var(name) {
                None => default,
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        issues.push(format!(
                            "{name}={v:?} is not a positive integer; using {default}"
                        ));
                        default
                    }
                },
            }
        };
        let spans_queue = count("OTEL_BSP_MAX_QUEUE_SIZE", 2048);
        let spans_batch = count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).min(spans_queue);
        let logs_queue = count("OTEL_BLRP_MAX_QUEUE_SIZE", 2048);
        let logs_batch = count("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512).min(logs_queue);
        OtlpSettings {
            traces_endpoint,
            metrics_endpoint,
            logs_endpoint,
            spans: BatchSettings {
                schedule_delay: spans_delay,
                export_timeout: spans_timeout,
                max_queue_size: spans_queue,
                max_batch_size: spans_batch,
            },
            logs: BatchSettings {
                schedule_delay: logs_delay,
                export_timeout: logs_timeout,
                max_queue_size: logs_queue,
                max_batch_size: logs_batch,
            },
            metric_interval: metric_interval.max(Duration::from_millis(1)),
            metric_timeout,
            headers,
            request_timeouts,
            service_name: var("OTEL_SERVICE_NAME"),
            issues,
        }
    }
}

/// `OTEL_EXPORTER_OTLP_TIMEOUT` when unset (ms), the OpenTelemetry default.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = edge_observability::otlp::defaults::TIMEOUT_MS;
/// Longest `OTEL_EXPORTER_OTLP[_<SIGNAL>]_TIMEOUT` accepted (ms), as the component's.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// Most headers sent with one signal's export requests, as the component's.
pub const MAX_HEADERS: usize = 32;

/// Reads `name=value,...` entries (percent-decoded, W3C Baggage style) into `out`; an entry
/// of a name already there replaces it. A bad entry is reported by position only: values are
/// tokens, never printed.
fn read_headers(
    var: &str,
    text: &str,
    out: &mut Vec<(http::HeaderName, http::HeaderValue)>,
    issues: &mut Vec<String>,
) {
    for (n, entry) in header_rules::split_list(text).enumerate() {
        let parsed = entry.split_once('=').and_then(|(k, v)| {
            let name = header_rules::parse_name(&percent_decode(k)?)?;
            let value = percent_decode(header_rules::trim(v))?;
            Some((name, http::HeaderValue::from_str(&value).ok()?))
        });
        let problem = match parsed {
            None => "expected name=value with a valid header name and value",
            Some((name, _)) if name == http::header::CONTENT_TYPE || name == http::header::HOST => {
                "set by the exporter itself"
            }
            Some((name, value)) => match out.iter().position(|(n, _)| *n == name) {
                Some(i) => {
                    out[i].1 = value;
                    continue;
                }
                None if out.len() >= MAX_HEADERS => "at most 32 headers",
                None => {
                    out.push((name, value));
                    continue;
                }
            },
        };
        issues.push(format!("{var}: entry {} ignored ({problem})", n + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(flag: Option<&str>, vars: &[(&str, &str)]) -> OtlpSettings {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpSettings::from_env(flag, &|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        let s = settings(None, &[]);
        assert!(!s.any());
        assert_eq!(s.spans.max_queue_size, 2048);
        assert_eq!(s.spans.max_batch_size, 512);
        assert_eq!(s.spans.schedule_delay, Duration::from_secs(5));
        assert_eq!(s.logs.schedule_delay, Duration::from_secs(1));
        assert_eq!(s.metric_interval, Duration::from_secs(60));
        assert!(s.issues.is_empty());
    }

    #[test]
    fn the_base_endpoint_gets_signal_paths_and_own_endpoints_are_kept() {
        let s = settings(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "http://logs:9999/custom",
                ),
                ("OTEL_METRICS_EXPORTER", "none"),
            ],
        );
        assert_eq!(
            s.endpoint(Signal::Traces),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(s.endpoint(Signal::Metrics), None);
        assert_eq!(s.endpoint(Signal::Logs), Some("http://logs:9999/custom"));
        // The flag wins over the variable.
        let s = settings(
            Some("http://flag:1"),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:2")],
        );
        assert_eq!(
            s.endpoint(Signal::Metrics),
            Some("http://flag:1/v1/metrics")
        );
    }

    #[test]
    fn sdk_disabled_and_unsupported_protocols_turn_export_off() {
        let s = settings(Some("http://c:4318"), &[("OTEL_SDK_DISABLED", "TRUE")]);
        assert!(!s.any());
        let s = settings(
            Some("http://c:4318"),
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ],
        );
        assert!(s.endpoint(Signal::Traces).is_some());
        assert!(s.endpoint(Signal::Logs).is_none());
        assert_eq!(s.issues.len(), 2);
    }

    #[test]
    fn batch_variables_are_read_and_bad_values_fall_back() {
        let s = settings(
            None,
            &[
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"),
                ("OTEL_BLRP_EXPORT_TIMEOUT", "soon"),
                ("OTEL_BLRP_MAX_QUEUE_SIZE", "0"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "250"),
            ],
        );
        assert_eq!(s.spans.schedule_delay, Duration::from_millis(100));
        assert_eq!(s.spans.max_queue_size, 10);
        assert_eq!(s.spans.max_batch_size, 10, "a batch is at most the queue");
        assert_eq!(s.logs.export_timeout, Duration::from_secs(30));
        assert_eq!(s.logs.max_queue_size, 2048);
        assert_eq!(s.metric_interval, Duration::from_millis(250));
        assert_eq!(s.issues.len(), 2);
    }

    #[test]
    fn headers_and_timeouts_per_signal_with_bad_entries_reported_without_values() {
        let s = settings(
            Some("http://c:4318"),
            &[
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-api-key=s3cret,authorization=Bearer%20t0ken,bad",
                ),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "x-api-key=other,content-type=x",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "99999999999999999999"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ],
        );
        let value = |signal: Signal, name: &str| {
            s.headers[signal.index()]
                .0
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(value(Signal::Logs, "x-api-key").as_deref(), Some("s3cret"));
        assert_eq!(value(Signal::Traces, "x-api-key").as_deref(), Some("other"));
        assert_eq!(
            value(Signal::Traces, "authorization").as_deref(),
            Some("Bearer t0ken")
        );
        assert_eq!(value(Signal::Traces, "content-type"), None);
        assert_eq!(
            s.request_timeouts[Signal::Traces.index()],
            Duration::from_millis(2500)
        );
        assert_eq!(
            s.request_timeouts[Signal::Logs.index()],
            Duration::from_secs(10)
        );
        let issues = s.issues.join("\n");
        // The bad entry, content-type, the timeout, and compression for each signal.
        assert_eq!(s.issues.len(), 6, "{issues}");
        assert!(issues.contains("entry 3 ignored"), "{issues}");
        assert!(
            !issues.contains("s3cret") && !issues.contains("t0ken") && !issues.contains("other")
        );
    }
}

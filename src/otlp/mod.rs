//! OpenTelemetry export from the component itself (OTLP/HTTP with protobuf bodies).
//!
//! Pure parts, compiled and tested natively: the settings ([`OtlpConfig`], parsed with the rest
//! of the configuration in [`crate::config`]), the hand-written protobuf encoder ([`proto`],
//! [`encode`]), the per-instance buffer ([`buffer`]) and the export policy: retries, failure
//! reasons and the rate-limited warning line ([`policy`]). The WASI glue that sends a batch
//! with `wasi:http/client` lives in `otlp_glue` (wasm only).
//!
//! The encoder is written by hand because a protobuf crate and the generated OpenTelemetry
//! types would not fit the component's size budget (README, "Size"); a native test decodes its
//! output with the official definitions (`opentelemetry-proto`). runtime-host writes the spans
//! and log records it exports with it too, from the guests' lines: measured against the SDK's
//! objects and encoding there, it cut the export's cost per request by about 40 %
//! (bench/README.md).

pub mod buffer;
pub mod encode;
pub mod http_metrics;
pub mod policy;
pub mod proto;

// Native only: the official definitions are a native dev-dependency.
#[cfg(all(test, not(target_family = "wasm")))]
mod decode_tests;

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

/// One of the three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Spans (`/v1/traces`).
    Traces,
    /// Metrics (`/v1/metrics`).
    Metrics,
    /// Log records (`/v1/logs`).
    Logs,
}

impl Signal {
    /// All signals, in the order batches are sent.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// `traces`, `metrics` or `logs` (as in `EDGE_OBS_OTLP_SIGNALS` and the endpoint paths).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// Index into per-signal arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where one signal is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` (else `http`).
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path_with_query: String,
}

impl Endpoint {
    /// Parses an absolute `http://` or `https://` URL. Credentials in the URL are refused
    /// (they would be printed in warnings; `OTEL_EXPORTER_OTLP_HEADERS` is the place for
    /// them), as are fragments, whitespace and control characters.
    pub fn parse(url: &str) -> Result<Endpoint, &'static str> {
        let url = url.trim_ascii();
        if url.len() > MAX_URL_LEN {
            return Err("longer than 2048 characters");
        }
        let (https, rest) = if let Some(r) = strip_prefix_ci(url, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(url, "http://") {
            (false, r)
        } else {
            return Err("expected an http:// or https:// URL");
        };
        if !rest.bytes().all(|b| b.is_ascii_graphic()) || rest.contains('#') {
            return Err("invalid character in the URL");
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(
                "credentials in the URL are not supported (use OTEL_EXPORTER_OTLP_HEADERS)",
            );
        }
        // `host`, `host:port` or `[v6]:port`; the port, when given, is digits.
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((h, rest)) => (
                    h,
                    rest.strip_prefix(':').or((rest.is_empty()).then_some("")),
                ),
                None => ("", None),
            },
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, Some("")),
            },
        };
        if host.is_empty() {
            return Err("missing host");
        }
        if !port.is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())) {
            return Err("invalid port");
        }
        let mut path_with_query = String::with_capacity(path.len() + 1);
        if !path.starts_with('/') {
            path_with_query.push('/');
        }
        path_with_query.push_str(path);
        Ok(Endpoint {
            https,
            authority: authority.to_ascii_lowercase(),
            path_with_query,
        })
    }

    /// The endpoint of `signal` under a base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`):
    /// `/v1/traces`, `/v1/metrics` or `/v1/logs` appended to its path, as the OpenTelemetry
    /// specification says.
    pub fn for_signal(&self, signal: Signal) -> Endpoint {
        let base = self.path_with_query.trim_end_matches('/');
        let mut path_with_query = String::with_capacity(base.len() + 12);
        path_with_query.push_str(base);
        path_with_query.push_str("/v1/");
        path_with_query.push_str(signal.as_str());
        Endpoint {
            https: self.https,
            authority: self.authority.clone(),
            path_with_query,
        }
    }

    /// The URL without its query (which may hold a token), for warnings.
    pub fn display(&self) -> String {
        let path = self
            .path_with_query
            .split_once('?')
            .map_or(self.path_with_query.as_str(), |(p, _)| p);
        let scheme = if self.https { "https://" } else { "http://" };
        let mut out = String::with_capacity(scheme.len() + self.authority.len() + path.len());
        out.push_str(scheme);
        out.push_str(&self.authority);
        out.push_str(path);
        out
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`). Their values are vendor
/// tokens: `Debug` shows only the names, and nothing else in the crate prints them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExportHeaders(pub Vec<(HeaderName, HeaderValue)>);

impl fmt::Debug for ExportHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|(n, _)| (n.as_str(), crate::json::REDACTED)),
            )
            .finish()
    }
}

/// Export settings; export is off unless some signal has an endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// Endpoint per signal ([`Signal::index`]); `None`: that signal is not exported.
    pub endpoints: [Option<Endpoint>; 3],
    /// Headers of every export request.
    pub headers: ExportHeaders,
    /// Longest wait for one export request (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout: Duration,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Further resource attributes (`OTEL_RESOURCE_ATTRIBUTES`), without `service.name`.
    pub resource: Vec<(String, String)>,
    /// A batch is due when this many spans and log records are buffered.
    pub batch_items: usize,
    /// A batch is due when its oldest item is this old.
    pub batch_age: Duration,
    /// Most spans and log records buffered (in a batch being sent included); more are
    /// dropped and counted.
    pub max_items: usize,
    /// Most encoded bytes buffered (in a batch being sent included); more are dropped and
    /// counted.
    pub max_bytes: usize,
}

/// Defaults of the `EDGE_OBS_OTLP_*` settings.
pub mod defaults {
    /// `EDGE_OBS_OTLP_BATCH_SIZE`.
    pub const BATCH_SIZE: u64 = 512;
    /// `EDGE_OBS_OTLP_BATCH_AGE_MS`.
    pub const BATCH_AGE_MS: u64 = 1000;
    /// `EDGE_OBS_OTLP_MAX_QUEUE`.
    pub const MAX_QUEUE: u64 = 2048;
    /// `EDGE_OBS_OTLP_MAX_BYTES`.
    pub const MAX_BYTES: u64 = 1 << 20;
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (ms), the OpenTelemetry default.
    pub const TIMEOUT_MS: u64 = 10_000;
    /// `service.name` when none is set, as OpenTelemetry SDKs say it.
    pub const SERVICE_NAME: &str = "unknown_service";
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoints: [None, None, None],
            headers: ExportHeaders::default(),
            timeout: Duration::from_millis(defaults::TIMEOUT_MS),
            service_name: defaults::SERVICE_NAME.to_owned(),
            resource: Vec::new(),
            batch_items: defaults::BATCH_SIZE as usize,
            batch_age: Duration::from_millis(defaults::BATCH_AGE_MS),
            max_items: defaults::MAX_QUEUE as usize,
            max_bytes: defaults::MAX_BYTES as usize,
        }
    }
}

impl OtlpConfig {
    /// Whether `signal` is exported.
    pub fn exports(&self, signal: Signal) -> bool {
        self.endpoints[signal.index()].is_some()
    }

    /// Whether anything is exported.
    pub fn enabled(&self) -> bool {
        self.endpoints.iter().any(Option::is_some)
    }
}

/// Decodes `%XX` escapes (as `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`
/// values are written, W3C Baggage style); `None` for a malformed escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_get_signal_paths() {
        let e = Endpoint::parse("http://Collector:4318").unwrap();
        assert!(!e.https);
        assert_eq!(e.authority, "collector:4318");
        assert_eq!(e.for_signal(Signal::Traces).path_with_query, "/v1/traces");
        let e = Endpoint::parse("https://otel.example.com/otlp/").unwrap();
        assert!(e.https);
        assert_eq!(e.for_signal(Signal::Logs).path_with_query, "/otlp/v1/logs");
        let e = Endpoint::parse("https://[::1]:4318/v1/metrics?key=secret").unwrap();
        assert_eq!(e.authority, "[::1]:4318");
        assert_eq!(e.path_with_query, "/v1/metrics?key=secret");
        assert_eq!(e.display(), "https://[::1]:4318/v1/metrics");
        for bad in [
            "collector:4318",
            "ftp://x",
            "http://",
            "http://:4318/",
            "http://user:pw@host/",
            "http://host:43a8/",
            "http://ho st/",
            "http://host/#frag",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_values_never_show_in_debug() {
        let h = ExportHeaders(vec![(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static("s3cr3t"),
        )]);
        let shown = format!("{h:?}");
        assert!(
            shown.contains("x-api-key") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2C").as_deref(), Some("a b,"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}

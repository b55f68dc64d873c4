//! The access-log line: which requests are logged (level, sampling, skip paths) and how the
//! line is written (JSON with OpenTelemetry attribute names, or a human "pretty" line).
//!
//! Every value that can come from a client is escaped and truncated, fields are written in
//! order of importance under a byte budget, so a line is always one line, always complete and
//! always shorter than 4000 bytes, whatever the request looks like.

use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};

use crate::client_addr::ClientIp;
use crate::json::{self, ObjectLine, REDACTED};
use crate::redact::Redaction;
use crate::request_id::{RECEIVED_MAX_CHARS, Replaced};
use crate::timestamp;
use crate::trace_context::{TraceIds, push_hex};

/// Hard upper bound of a log or metric line, final `\n` included (strictly under 4000 bytes).
pub const MAX_LINE_BYTES: usize = 3999;
/// `url.path` is truncated to this many characters.
pub const PATH_MAX_CHARS: usize = 1024;
/// `url.query` is truncated to this many characters (after redaction).
pub const QUERY_MAX_CHARS: usize = 1024;
/// Logged header values are truncated to this many characters (all values joined).
pub const HEADER_VALUE_MAX_CHARS: usize = 256;
/// At most this many header names per allow-list.
pub const MAX_LOGGED_HEADERS: usize = 16;
/// At most this many values per logged header are kept.
pub const MAX_VALUES_PER_HEADER: usize = 16;
/// Method, scheme, authority and service name limits.
pub const METHOD_MAX_CHARS: usize = 64;
/// See [`METHOD_MAX_CHARS`].
pub const SCHEME_MAX_CHARS: usize = 32;
/// See [`METHOD_MAX_CHARS`].
pub const AUTHORITY_MAX_CHARS: usize = 256;
/// Longest `EDGE_OBS_SERVICE_NAME`.
pub const SERVICE_NAME_MAX_CHARS: usize = 128;
/// Largest `EDGE_OBS_LOG_USER_AGENT_MAX`.
pub const USER_AGENT_MAX_LIMIT: usize = 1024;

/// `event` of the access-log line.
pub const EVENT_REQUEST: &str = "http.request";
/// `event` of the optional debug line written when a request arrives.
pub const EVENT_START: &str = "http.request.start";

/// Log levels, in increasing severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only the "request started" line.
    Debug,
    /// Successful requests (status < 400).
    Info,
    /// Client errors (4xx).
    Warn,
    /// Server errors (5xx) and failures.
    Error,
}

impl Level {
    /// Lowercase name used in JSON (`"level":"info"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    fn upper(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }

    /// The level of a finished request: error for failures and 5xx, warn for 4xx, else info.
    pub fn for_outcome(status: Option<u16>, failed: bool) -> Level {
        match status {
            _ if failed => Level::Error,
            None => Level::Error,
            Some(s) if s >= 500 => Level::Error,
            Some(s) if s >= 400 => Level::Warn,
            Some(_) => Level::Info,
        }
    }
}

/// Line format (`EDGE_OBS_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default; for log pipelines).
    Json,
    /// One human-readable line (for local development).
    Pretty,
}

/// Access-log settings.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Whether access-log lines are written (`EDGE_OBS_LOG`).
    pub enabled: bool,
    /// JSON or pretty.
    pub format: LogFormat,
    /// Minimum level written.
    pub level: Level,
    /// Share of successful, fast requests logged, in millionths (1_000_000 = all).
    pub sample_rate_ppm: u32,
    /// Requests taking at least this many milliseconds are always logged; 0 = no such rule.
    pub slow_ms: u64,
    /// Exact paths whose successful requests are not logged (health probes).
    pub skip_paths: Vec<String>,
    /// Whether the debug "request started" line is written (also needs level debug).
    pub start_line: bool,
    /// `user_agent.original` is truncated to this many characters; 0 = not logged.
    pub user_agent_max: usize,
    /// Request headers logged as `http.request.header.<name>`.
    pub request_headers: Vec<HeaderName>,
    /// Response headers logged as `http.response.header.<name>`.
    pub response_headers: Vec<HeaderName>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            enabled: true,
            format: LogFormat::Json,
            level: Level::Info,
            sample_rate_ppm: 1_000_000,
            slow_ms: 1000,
            skip_paths: ["/livez", "/readyz", "/healthz", "/startupz"]
                .map(String::from)
                .to_vec(),
            start_line: false,
            user_agent_max: 256,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
        }
    }
}

impl LogConfig {
    /// Whether a finished request gets a log line. Errors and slow requests are never sampled
    /// away or skipped; only successful fast requests are subject to skip paths and sampling.
    /// `draw` is a uniformly random number.
    pub fn should_log(
        &self,
        level: Level,
        success: bool,
        slow: bool,
        skip_path: bool,
        draw: u32,
    ) -> bool {
        if !self.enabled || level < self.level {
            return false;
        }
        if success && !slow {
            return !skip_path && sampled(self.sample_rate_ppm, draw);
        }
        true
    }

    /// Whether a request of this duration counts as slow.
    pub fn is_slow(&self, elapsed: Duration) -> bool {
        self.slow_ms > 0 && elapsed.as_millis() >= u128::from(self.slow_ms)
    }

    /// Whether the debug start line is wanted.
    pub fn wants_start_line(&self) -> bool {
        self.enabled && self.start_line && self.level <= Level::Debug
    }
}

/// Whether a request with random `draw` is kept at a rate of `ppm` millionths.
pub fn sampled(ppm: u32, draw: u32) -> bool {
    // Maps draw uniformly onto 0..1_000_000 without modulo bias worth mentioning.
    (u64::from(draw) * 1_000_000) >> 32 < u64::from(ppm)
}

/// A header value captured for the log; `value: None` means the header is secret and only
/// `[REDACTED]` is written.
#[derive(Clone, Debug)]
pub struct LoggedHeader {
    /// Response (true) or request header.
    pub response: bool,
    /// Header name.
    pub name: HeaderName,
    /// The value, or `None` when redacted.
    pub value: Option<HeaderValue>,
}

/// Everything one log line may contain.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// When the exchange ended (or started, for the start line).
    pub timestamp: SystemTime,
    /// Severity.
    pub level: Level,
    /// [`EVENT_REQUEST`] or [`EVENT_START`].
    pub event: &'static str,
    /// `service.name`.
    pub service_name: Option<&'a str>,
    /// The request id.
    pub request_id: &'a str,
    /// Trace ids, when trace context is on.
    pub trace: Option<&'a TraceIds>,
    /// The real request method.
    pub method: &'a str,
    /// `url.scheme`.
    pub scheme: &'a str,
    /// Matched route template.
    pub route: Option<&'a str>,
    /// Response status, when one was sent.
    pub status: Option<u16>,
    /// Duration of the exchange.
    pub duration: Option<Duration>,
    /// Request body size in bytes.
    pub request_body_size: Option<u64>,
    /// Response body size in bytes.
    pub response_body_size: Option<u64>,
    /// `error.type`.
    pub error_type: Option<&'a str>,
    /// `client.address`.
    pub client_address: Option<ClientIp>,
    /// A replaced client request id.
    pub replaced: Option<&'a Replaced>,
    /// `server.address` (the request authority).
    pub authority: Option<&'a str>,
    /// `url.path`.
    pub path: &'a str,
    /// Raw query (redacted while writing), when non-empty.
    pub query: Option<&'a str>,
    /// Redaction rules for the query.
    pub redaction: &'a Redaction,
    /// `user_agent.original` raw bytes.
    pub user_agent: Option<&'a [u8]>,
    /// User agent truncation.
    pub user_agent_max: usize,
    /// Allow-listed headers, values of one name consecutive.
    pub headers: &'a [LoggedHeader],
}

/// The joined values of consecutive [`LoggedHeader`]s with the same name, as characters.
fn header_chars(group: &[LoggedHeader]) -> impl Iterator<Item = char> + Clone + '_ {
    group.iter().enumerate().flat_map(|(i, h)| {
        let sep = ", ".chars().take(if i > 0 { 2 } else { 0 });
        let bytes: &[u8] = match &h.value {
            Some(v) => v.as_bytes(),
            None => REDACTED.as_bytes(),
        };
        sep.chain(json::lossy_chars(bytes))
    })
}

/// Splits the captured headers into groups of one name (and direction).
fn header_groups(headers: &[LoggedHeader]) -> impl Iterator<Item = &[LoggedHeader]> {
    headers.chunk_by(|a, b| a.response == b.response && a.name == b.name)
}

fn header_key(buf: &mut String, h: &LoggedHeader) {
    buf.clear();
    buf.push_str(if h.response {
        "http.response.header."
    } else {
        "http.request.header."
    });
    buf.push_str(h.name.as_str());
}

fn redacted_query(r: &Record<'_>) -> Option<String> {
    r.query.map(|q| {
        let mut s = String::with_capacity(q.len() + 16);
        r.redaction.redact_query(q, &mut s);
        s
    })
}

/// Appends the JSON line of `r` (ending in `\n`) to `out`.
pub fn write_json(r: &Record<'_>, out: &mut String) {
    let mut line = ObjectLine::begin(out, MAX_LINE_BYTES);
    line.raw_with("timestamp", 26, |o| {
        o.push('"');
        timestamp::write_rfc3339_millis(o, r.timestamp);
        o.push('"');
    });
    line.str("level", r.level.as_str(), 16);
    line.str("event", r.event, 32);
    if let Some(s) = r.service_name {
        line.str("service.name", s, SERVICE_NAME_MAX_CHARS);
    }
    line.str("request_id", r.request_id, crate::request_id::MAX_LEN_LIMIT);
    if let Some(t) = r.trace {
        line.raw_with("trace_id", 34, |o| quoted_hex(o, &t.trace_id));
        line.raw_with("span_id", 18, |o| quoted_hex(o, &t.span_id));
        if let Some(p) = t.parent_span_id {
            line.raw_with("parent_span_id", 18, |o| quoted_hex(o, &p));
        }
    }
    line.str("http.request.method", r.method, METHOD_MAX_CHARS);
    line.str("url.scheme", r.scheme, SCHEME_MAX_CHARS);
    if let Some(route) = r.route {
        line.str("http.route", route, crate::route::MAX_TEMPLATE_LEN);
    }
    if let Some(s) = r.status {
        line.u64("http.response.status_code", u64::from(s));
    }
    if let Some(d) = r.duration {
        line.duration_ms("duration_ms", d);
    }
    if let Some(n) = r.request_body_size {
        line.u64("http.request.body.size", n);
    }
    if let Some(n) = r.response_body_size {
        line.u64("http.response.body.size", n);
    }
    if let Some(e) = r.error_type {
        line.str("error.type", e, 64);
    }
    if let Some(ip) = r.client_address {
        // An IPv6 address is at most 45 characters; Display output needs no escaping.
        line.raw_with("client.address", 48, |o| {
            let _ = write!(o, "\"{ip}\"");
        });
    }
    if let Some(rep) = r.replaced {
        line.str("request_id.replaced", rep.reason.as_str(), 32);
        line.bytes("request_id.received", &rep.received, RECEIVED_MAX_CHARS);
    }
    if let Some(a) = r.authority {
        line.str("server.address", a, AUTHORITY_MAX_CHARS);
    }
    line.str("url.path", r.path, PATH_MAX_CHARS);
    if let Some(q) = redacted_query(r) {
        line.str("url.query", &q, QUERY_MAX_CHARS);
    }
    if let Some(ua) = r.user_agent.filter(|_| r.user_agent_max > 0) {
        line.bytes("user_agent.original", ua, r.user_agent_max);
    }
    let mut key = String::with_capacity(48);
    for group in header_groups(r.headers) {
        header_key(&mut key, &group[0]);
        line.chars(&key, header_chars(group), HEADER_VALUE_MAX_CHARS);
    }
    line.finish();
}

fn quoted_hex(out: &mut String, bytes: &[u8]) {
    out.push('"');
    push_hex(out, bytes);
    out.push('"');
}

/// Builds a pretty line under the byte budget.
struct PrettyLine<'a> {
    out: &'a mut String,
    start: usize,
}

impl PrettyLine<'_> {
    fn room(&self) -> usize {
        MAX_LINE_BYTES
            .saturating_sub(self.out.len() - self.start)
            .saturating_sub(1)
    }

    /// A trusted token (our own constants, numbers, hex ids); left out if it does not fit.
    fn word(&mut self, sep: bool, s: &str) {
        if s.len() < self.room() {
            if sep {
                self.out.push(' ');
            }
            self.out.push_str(s);
        }
    }

    /// ` key=value` with an untrusted value: written bare when it is plain visible ASCII,
    /// else quoted and JSON-escaped, so spaces or quotes in a value can never fake a field.
    fn value<I: Iterator<Item = char> + Clone>(&mut self, key: &str, chars: I, max_chars: usize) {
        let overhead = 1 + key.len() + usize::from(!key.is_empty()) + 2;
        let Some(room) = self.room().checked_sub(overhead) else {
            return;
        };
        if room < json::TRUNCATION_MARKER.len() + 4 {
            return;
        }
        let mut probe = chars.clone().take(max_chars + 1).peekable();
        let bare = probe.peek().is_some()
            && probe.all(|c| matches!(c, '\x21'..='\x7e') && c != '"' && c != '\\');
        self.out.push(' ');
        if !key.is_empty() {
            self.out.push_str(key);
            self.out.push('=');
        }
        if !bare {
            self.out.push('"');
        }
        json::escape_limited(self.out, chars, max_chars, room);
        if !bare {
            self.out.push('"');
        }
    }
}

/// Appends the pretty line of `r` (ending in `\n`) to `out`, e.g.
/// `2026-11-23T11:22:33.456Z INFO GET /path 200 1.234ms id=... trace=...`.
pub fn write_pretty(r: &Record<'_>, out: &mut String) {
    let start = out.len();
    timestamp::write_rfc3339_millis(out, r.timestamp);
    let mut p = PrettyLine { out, start };
    p.word(true, r.level.upper());
    p.value("", r.method.chars(), METHOD_MAX_CHARS);
    p.value("", r.path.chars(), PATH_MAX_CHARS);
    let mut num = String::with_capacity(24);
    if r.event == EVENT_START {
        p.word(true, "started");
    } else {
        match r.status {
            Some(s) => {
                json::push_u64(&mut num, u64::from(s));
                p.word(true, &num);
            }
            None => p.word(true, "-"),
        }
        if let Some(d) = r.duration {
            num.clear();
            json::push_duration_ms(&mut num, d);
            num.push_str("ms");
            p.word(true, &num);
        }
    }
    p.value("id", r.request_id.chars(), crate::request_id::MAX_LEN_LIMIT);
    if let Some(t) = r.trace {
        num.clear();
        num.push_str("trace=");
        push_hex(&mut num, &t.trace_id);
        p.word(true, &num);
        num.clear();
        num.push_str("span=");
        push_hex(&mut num, &t.span_id);
        p.word(true, &num);
        if let Some(parent) = t.parent_span_id {
            num.clear();
            num.push_str("parent=");
            push_hex(&mut num, &parent);
            p.word(true, &num);
        }
    }
    if let Some(route) = r.route {
        p.value("route", route.chars(), crate::route::MAX_TEMPLATE_LEN);
    }
    if let Some(e) = r.error_type {
        p.value("error", e.chars(), 64);
    }
    for (key, size) in [
        ("req_bytes", r.request_body_size),
        ("resp_bytes", r.response_body_size),
    ] {
        if let Some(n) = size {
            num.clear();
            num.push_str(key);
            num.push('=');
            json::push_u64(&mut num, n);
            p.word(true, &num);
        }
    }
    if let Some(ip) = r.client_address {
        p.word(true, &format!("client={ip}"));
    }
    if let Some(rep) = r.replaced {
        p.value("id_replaced", rep.reason.as_str().chars(), 32);
        p.value(
            "id_received",
            json::lossy_chars(&rep.received),
            RECEIVED_MAX_CHARS,
        );
    }
    if let Some(a) = r.authority {
        p.value("host", a.chars(), AUTHORITY_MAX_CHARS);
    }
    if let Some(q) = redacted_query(r) {
        p.value("query", q.chars(), QUERY_MAX_CHARS);
    }
    if let Some(ua) = r.user_agent.filter(|_| r.user_agent_max > 0) {
        p.value("ua", json::lossy_chars(ua), r.user_agent_max);
    }
    let mut key = String::with_capacity(48);
    for group in header_groups(r.headers) {
        header_key(&mut key, &group[0]);
        p.value(&key, header_chars(group), HEADER_VALUE_MAX_CHARS);
    }
    if let Some(s) = r.service_name {
        p.value("service", s.chars(), SERVICE_NAME_MAX_CHARS);
    }
    p.out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_id::ReplaceReason;
    use std::time::UNIX_EPOCH;

    fn redaction() -> &'static Redaction {
        static R: std::sync::OnceLock<Redaction> = std::sync::OnceLock::new();
        R.get_or_init(Redaction::default)
    }

    fn record<'a>(headers: &'a [LoggedHeader]) -> Record<'a> {
        Record {
            timestamp: UNIX_EPOCH + Duration::from_millis(1_795_432_953_456),
            level: Level::Info,
            event: EVENT_REQUEST,
            service_name: None,
            request_id: "req-1",
            trace: None,
            method: "GET",
            scheme: "http",
            route: None,
            status: Some(200),
            duration: Some(Duration::from_micros(1234)),
            request_body_size: None,
            response_body_size: Some(5),
            error_type: None,
            client_address: None,
            replaced: None,
            authority: Some("example.com"),
            path: "/p",
            query: None,
            redaction: redaction(),
            user_agent: Some(b"curl/8"),
            user_agent_max: 256,
            headers,
        }
    }

    fn json_of(r: &Record<'_>) -> (String, serde_json::Value) {
        let mut s = String::new();
        write_json(r, &mut s);
        assert!(s.ends_with('\n'));
        assert_eq!(s.matches('\n').count(), 1);
        assert!(s.len() <= MAX_LINE_BYTES);
        let v = serde_json::from_str(s.trim_end()).unwrap();
        (s, v)
    }

    #[test]
    fn json_line_has_the_expected_fields() {
        let trace = TraceIds {
            trace_id: [0x11; 16],
            span_id: [0x22; 8],
            parent_span_id: Some([0x33; 8]),
            flags: 1,
        };
        let rep = Replaced {
            reason: ReplaceReason::InvalidCharacter,
            received: b"bad id\n".to_vec(),
        };
        let headers = [
            LoggedHeader {
                response: false,
                name: HeaderName::from_static("accept"),
                value: Some(HeaderValue::from_static("a")),
            },
            LoggedHeader {
                response: false,
                name: HeaderName::from_static("accept"),
                value: Some(HeaderValue::from_static("b")),
            },
            LoggedHeader {
                response: true,
                name: HeaderName::from_static("set-cookie"),
                value: None,
            },
        ];
        let mut r = record(&headers);
        r.trace = Some(&trace);
        r.replaced = Some(&rep);
        r.service_name = Some("shop");
        r.route = Some("/p");
        r.query = Some("a=1&token=s3cr3t");
        r.client_address = Some("10.0.0.1".parse().unwrap());
        r.request_body_size = Some(0);
        let (s, v) = json_of(&r);
        assert!(s.starts_with("{\"timestamp\":\"2026-11-23T11:22:33.456Z\",\"level\":\"info\",\"event\":\"http.request\""));
        assert_eq!(v["service.name"], "shop");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["trace_id"], "11".repeat(16));
        assert_eq!(v["span_id"], "22".repeat(8));
        assert_eq!(v["parent_span_id"], "33".repeat(8));
        assert_eq!(v["http.request.method"], "GET");
        assert_eq!(v["url.scheme"], "http");
        assert_eq!(v["server.address"], "example.com");
        assert_eq!(v["url.path"], "/p");
        assert_eq!(v["http.route"], "/p");
        assert_eq!(v["url.query"], "a=1&token=[REDACTED]");
        assert_eq!(v["http.response.status_code"], 200);
        assert_eq!(v["duration_ms"].as_f64().unwrap(), 1.234);
        assert!(s.contains("\"duration_ms\":1.234,"));
        assert_eq!(v["http.request.body.size"], 0);
        assert_eq!(v["http.response.body.size"], 5);
        assert_eq!(v["client.address"], "10.0.0.1");
        assert_eq!(v["user_agent.original"], "curl/8");
        assert_eq!(v["request_id.replaced"], "invalid character");
        assert_eq!(v["request_id.received"], "bad id\n");
        assert_eq!(v["http.request.header.accept"], "a, b");
        assert_eq!(v["http.response.header.set-cookie"], "[REDACTED]");
        assert!(v.get("error.type").is_none());
        assert!(!s.contains("s3cr3t"));
    }

    #[test]
    fn optional_fields_are_absent() {
        let mut r = record(&[]);
        r.authority = None;
        r.user_agent = None;
        r.response_body_size = None;
        r.status = None;
        let (_, v) = json_of(&r);
        for k in [
            "service.name",
            "trace_id",
            "span_id",
            "parent_span_id",
            "http.route",
            "url.query",
            "client.address",
            "user_agent.original",
            "server.address",
            "http.response.body.size",
            "http.request.body.size",
            "http.response.status_code",
            "request_id.replaced",
        ] {
            assert!(v.get(k).is_none(), "{k}");
        }
    }

    #[test]
    fn huge_hostile_values_stay_under_the_line_limit() {
        let path = format!("/{}", "\u{1}\"\\".repeat(5000));
        let query = "x=\n".repeat(5000);
        let ua = vec![0xffu8; 10_000];
        let big = HeaderValue::from_bytes(&vec![b'"'; 5000]).unwrap();
        let headers: Vec<LoggedHeader> = (0..16)
            .map(|i| LoggedHeader {
                response: i % 2 == 0,
                name: HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                value: Some(big.clone()),
            })
            .collect();
        let authority = "é".repeat(5000);
        let mut r = record(&headers);
        r.path = &path;
        r.query = Some(&query);
        r.user_agent = Some(&ua);
        r.user_agent_max = 1024;
        r.authority = Some(&authority);
        let (s, v) = json_of(&r);
        assert!(s.len() < 4000);
        assert!(
            v["url.path"]
                .as_str()
                .unwrap()
                .ends_with(json::TRUNCATION_MARKER)
        );
        // The small, important fields survive.
        assert_eq!(v["http.response.status_code"], 200);
        assert_eq!(v["request_id"], "req-1");
        let mut p = String::new();
        write_pretty(&r, &mut p);
        assert!(p.len() < 4000);
        assert_eq!(p.matches('\n').count(), 1);
    }

    #[test]
    fn header_values_are_truncated() {
        let big = HeaderValue::from_bytes(&[b'a'; 1000]).unwrap();
        let headers = [LoggedHeader {
            response: false,
            name: HeaderName::from_static("x-big"),
            value: Some(big),
        }];
        let (_, v) = json_of(&record(&headers));
        let s = v["http.request.header.x-big"].as_str().unwrap();
        assert_eq!(
            s.len(),
            HEADER_VALUE_MAX_CHARS + json::TRUNCATION_MARKER.len()
        );
    }

    #[test]
    fn user_agent_limits() {
        let mut r = record(&[]);
        r.user_agent = Some(b"Mozilla/5.0 (X11) \xff");
        r.user_agent_max = 7;
        let (_, v) = json_of(&r);
        assert_eq!(
            v["user_agent.original"],
            format!("Mozilla{}", json::TRUNCATION_MARKER)
        );
        r.user_agent_max = 100;
        let (_, v) = json_of(&r);
        assert_eq!(v["user_agent.original"], "Mozilla/5.0 (X11) \u{FFFD}");
        r.user_agent_max = 0;
        let (_, v) = json_of(&r);
        assert!(v.get("user_agent.original").is_none());
    }

    #[test]
    fn pretty_line() {
        let trace = TraceIds {
            trace_id: [0xab; 16],
            span_id: [0xcd; 8],
            parent_span_id: None,
            flags: 1,
        };
        let mut r = record(&[]);
        r.trace = Some(&trace);
        r.query = Some("token=abc&q=1");
        let mut s = String::new();
        write_pretty(&r, &mut s);
        assert_eq!(
            s,
            format!(
                "2026-11-23T11:22:33.456Z INFO GET /p 200 1.234ms id=req-1 trace={} span={} resp_bytes=5 host=example.com query=token=[REDACTED]&q=1 ua=curl/8\n",
                "ab".repeat(16),
                "cd".repeat(8)
            )
        );
    }

    #[test]
    fn pretty_quotes_hostile_values() {
        let mut r = record(&[]);
        r.path = "/x 200 1ms id=forged\n";
        r.user_agent = Some(b"a \"b\"");
        let mut s = String::new();
        write_pretty(&r, &mut s);
        assert!(s.contains(" \"/x 200 1ms id=forged\\u000a\" 200 "), "{s}");
        assert!(s.contains(" ua=\"a \\\"b\\\"\""), "{s}");
        assert_eq!(s.matches('\n').count(), 1);
        r.event = EVENT_START;
        r.level = Level::Debug;
        s.clear();
        write_pretty(&r, &mut s);
        assert!(s.contains(" DEBUG GET "), "{s}");
        assert!(s.contains(" started id=req-1"), "{s}");
    }

    #[test]
    fn levels() {
        assert_eq!(Level::for_outcome(Some(200), false), Level::Info);
        assert_eq!(Level::for_outcome(Some(304), false), Level::Info);
        assert_eq!(Level::for_outcome(Some(404), false), Level::Warn);
        assert_eq!(Level::for_outcome(Some(500), false), Level::Error);
        assert_eq!(Level::for_outcome(Some(200), true), Level::Error);
        assert_eq!(Level::for_outcome(None, false), Level::Error);
        assert!(Level::Debug < Level::Info && Level::Warn < Level::Error);
    }

    #[test]
    fn filtering_rules() {
        let mut c = LogConfig::default();
        assert!(c.should_log(Level::Info, true, false, false, 0));
        assert!(
            !c.should_log(Level::Info, true, false, true, 0),
            "skip path"
        );
        assert!(
            c.should_log(Level::Warn, false, false, true, 0),
            "skip path only for successes"
        );
        assert!(
            c.should_log(Level::Info, true, true, true, 0),
            "slow beats skip"
        );
        c.level = Level::Warn;
        assert!(!c.should_log(Level::Info, true, true, false, 0));
        assert!(c.should_log(Level::Error, false, false, false, 0));
        c.level = Level::Info;
        c.sample_rate_ppm = 0;
        assert!(!c.should_log(Level::Info, true, false, false, 0));
        assert!(
            c.should_log(Level::Warn, false, false, false, u32::MAX),
            "errors are not sampled"
        );
        assert!(
            c.should_log(Level::Info, true, true, false, u32::MAX),
            "slow requests are not sampled"
        );
        c.enabled = false;
        assert!(!c.should_log(Level::Error, false, false, false, 0));
    }

    #[test]
    fn sampling_rate_is_respected() {
        assert!(sampled(1_000_000, u32::MAX));
        assert!(!sampled(0, 0));
        let kept = (0..10_000u32)
            .filter(|i| sampled(250_000, i.wrapping_mul(429_497)))
            .count();
        assert!((2_300..2_700).contains(&kept), "{kept}");
    }

    #[test]
    fn slow_threshold() {
        let mut c = LogConfig::default();
        assert!(c.is_slow(Duration::from_millis(1000)));
        assert!(!c.is_slow(Duration::from_millis(999)));
        c.slow_ms = 0;
        assert!(!c.is_slow(Duration::from_secs(3600)));
        c.start_line = true;
        assert!(!c.wants_start_line());
        c.level = Level::Debug;
        assert!(c.wants_start_line());
    }
}

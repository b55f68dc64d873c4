//! The access-log line: which requests are logged (level, sampling, skip paths) and how the
//! line is written (JSON with OpenTelemetry attribute names, or a human "pretty" line).
//!
//! Every value that can come from a client is escaped and truncated, fields are written in
//! order of importance under a byte budget, so a line is always one line, always complete and
//! always shorter than 4000 bytes, whatever the request looks like.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::client_addr::ClientIp;
use crate::json::{self, ObjectLine, REDACTED};
use crate::redact::Redaction;
use crate::request_id::{RECEIVED_MAX_CHARS, Replaced};
use crate::trace_context::TraceIds;

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

/// At most this many log context fields per request (`context.<name>`).
pub const MAX_CONTEXT_FIELDS: usize = 16;
/// Log context values are truncated to this many characters.
pub const CONTEXT_VALUE_MAX_CHARS: usize = 256;
/// Key namespace of log context fields.
pub const CONTEXT_KEY_PREFIX: &str = "context.";
/// Key of the number of log context headers that were removed but not logged (over
/// [`MAX_CONTEXT_FIELDS`]).
pub const CONTEXT_DROPPED_KEY: &str = "log_context.dropped";

/// `event` of the access-log line.
pub const EVENT_REQUEST: &str = "http.request";
/// `event` of the optional debug line written when a request arrives.
pub const EVENT_START: &str = "http.request.start";

/// Keys of the access-log line that readers of the line (runtime-host's admin page) look up.
/// The writer below uses the same constants, so a renamed field cannot go unnoticed.
pub mod fields {
    /// RFC 3339 end time of the request.
    pub const TIMESTAMP: &str = "timestamp";
    /// `EDGE_OBS_SERVICE_NAME`, when set (and the OTLP resource's `service.name`).
    pub const SERVICE_NAME: &str = "service.name";
    /// `info`, `warn` or `error`.
    pub const LEVEL: &str = "level";
    /// [`super::EVENT_REQUEST`] or [`super::EVENT_START`].
    pub const EVENT: &str = "event";
    /// The request id (validated client id or generated).
    pub const REQUEST_ID: &str = "request_id";
    /// W3C trace id, 32 lowercase hex digits.
    pub const TRACE_ID: &str = "trace_id";
    /// The middleware's span id (the parent id the app received), 16 lowercase hex digits.
    pub const SPAN_ID: &str = "span_id";
    /// Request method as received (escaped, truncated).
    pub const METHOD: &str = "http.request.method";
    /// Matched route template, when one matched.
    pub const ROUTE: &str = "http.route";
    /// Response status code (a number).
    pub const STATUS_CODE: &str = "http.response.status_code";
    /// Time to the end of the response, in milliseconds (a number).
    pub const DURATION_MS: &str = "duration_ms";
    /// Request path (escaped, truncated).
    pub const PATH: &str = "url.path";
    /// Failure type, on failures and 5xx.
    pub const ERROR_TYPE: &str = "error.type";
}

/// Longest `error.type` written, here and in the metric and span events.
pub const MAX_ERROR_TYPE_LEN: usize = 64;

/// JSON access lines start with this: the timestamp is always the first field.
pub const LINE_PREFIX: &str = "{\"timestamp\":\"";

/// How far into a line [`is_access_line`] looks for the event field: the timestamp (24
/// characters) and the level come before it.
const EVENT_FIELD_WITHIN: usize = 96;

/// Whether `line` is a JSON access line of a finished request (`"event":"http.request"`, not
/// the start line): the one rule every consumer of the middleware's output uses. A prefix and
/// one short search, cheap enough for every line a guest prints; a consumer still checks the
/// event field when it parses the line.
pub fn is_access_line(line: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"event\":\"http.request\"";
    line.starts_with(LINE_PREFIX.as_bytes())
        && line[..line.len().min(EVENT_FIELD_WITHIN)]
            .windows(NEEDLE.len())
            .any(|w| w == NEEDLE)
}

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
    /// Whether successful, fast requests are logged exactly when their trace is sampled
    /// (`EDGE_OBS_LOG_FOLLOW_TRACE`), instead of by `sample_rate_ppm`.
    pub follow_trace: bool,
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

impl LogConfig {
    /// Whether a finished request gets a log line. Errors and slow requests are never sampled
    /// away or skipped; only successful fast requests are subject to skip paths and sampling.
    /// `draw` is a uniformly random number; `trace_sampled` is the request's trace decision
    /// (`None` without trace context), used instead of the draw when following the trace.
    pub fn should_log(
        &self,
        level: Level,
        success: bool,
        slow: bool,
        skip_path: bool,
        draw: u32,
        trace_sampled: Option<bool>,
    ) -> bool {
        if !self.enabled || level < self.level {
            return false;
        }
        if success && !slow {
            let keep = match trace_sampled.filter(|_| self.follow_trace) {
                Some(s) => s,
                None => sampled(self.sample_rate_ppm, draw),
            };
            return !skip_path && keep;
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

/// Log context settings (`EDGE_OBS_LOG_CONTEXT`, `EDGE_OBS_LOG_CONTEXT_PREFIX`): response
/// headers whose name starts with `prefix` carry request-scoped context from the app (user,
/// tenant, ...) into the access line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogContextConfig {
    /// Whether context headers are moved into the line (else they pass through untouched).
    pub enabled: bool,
    /// Lowercase header name prefix.
    pub prefix: String,
}

impl LogContextConfig {
    /// The default prefix.
    pub const DEFAULT_PREFIX: &'static str = "obs-context-";
}

impl Default for LogContextConfig {
    fn default() -> Self {
        LogContextConfig {
            enabled: true,
            prefix: Self::DEFAULT_PREFIX.to_owned(),
        }
    }
}

/// One log context field: `context.<name>` and its value, already cut and redacted, ready
/// for any writer (the access line here, a span's attributes elsewhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextField {
    /// The full key, e.g. `context.user-id`.
    pub key: String,
    /// The raw value (all values of the header joined with `, `, cut to a little more than
    /// [`CONTEXT_VALUE_MAX_CHARS`]); `None` when redacted. Escape before writing.
    pub value: Option<Vec<u8>>,
}

impl ContextField {
    /// The value to write: the raw bytes or `[REDACTED]`.
    pub fn value_bytes(&self) -> &[u8] {
        self.value.as_deref().unwrap_or(REDACTED.as_bytes())
    }
}

/// Log context taken from one response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogContext {
    /// The fields, in header order, at most [`MAX_CONTEXT_FIELDS`].
    pub fields: Vec<ContextField>,
    /// Context headers removed from the response but not logged (over the cap).
    pub dropped: usize,
}

/// Removes every header starting with `cfg.prefix` from `headers` and, when `capture` is
/// true, returns them as context fields: a name that is a secret header or a secret query
/// parameter name (`token`, `password`, ...) by the redaction rules is logged as
/// `[REDACTED]`. Returns `None` when there was no context header (the common case; nothing is
/// allocated then).
pub fn take_context(
    cfg: &LogContextConfig,
    redaction: &Redaction,
    headers: &mut http::HeaderMap,
    capture: bool,
) -> Option<LogContext> {
    let prefix = cfg.prefix.as_str();
    if !headers.keys().any(|n| n.as_str().starts_with(prefix)) {
        return None;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(prefix))
        .cloned()
        .collect();
    let mut ctx = LogContext::default();
    for name in names {
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.remove(&name);
        let suffix = &name.as_str()[prefix.len()..];
        if !capture || suffix.is_empty() {
            continue;
        }
        if ctx.fields.len() >= MAX_CONTEXT_FIELDS {
            ctx.dropped += 1;
            continue;
        }
        let secret = HeaderName::from_bytes(suffix.as_bytes())
            .is_ok_and(|h| redaction.is_secret_header(&h) || redaction.is_secret_header(&name))
            || redaction.is_secret_param(suffix);
        let value = (!secret).then(|| {
            let mut joined = Vec::new();
            for v in values.iter().take(MAX_VALUES_PER_HEADER) {
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(v.as_bytes());
                if joined.len() > 4 * CONTEXT_VALUE_MAX_CHARS {
                    break;
                }
            }
            joined.truncate(4 * CONTEXT_VALUE_MAX_CHARS + 4);
            joined
        });
        let mut key = String::with_capacity(CONTEXT_KEY_PREFIX.len() + suffix.len());
        key.push_str(CONTEXT_KEY_PREFIX);
        key.push_str(suffix);
        ctx.fields.push(ContextField { key, value });
    }
    Some(ctx)
}

/// Writes the context fields through `field(key, value, max_chars)`; shared by every line
/// that carries the context.
pub fn write_context(ctx: &LogContext, field: &mut dyn FnMut(&str, &[u8], usize)) {
    for f in &ctx.fields {
        field(&f.key, f.value_bytes(), CONTEXT_VALUE_MAX_CHARS);
    }
    if ctx.dropped > 0 {
        field(
            CONTEXT_DROPPED_KEY,
            json::small_u64(ctx.dropped as u64).as_str().as_bytes(),
            8,
        );
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
    /// When the exchange ended (or started, for the start line), formatted by
    /// [`crate::timestamp::rfc3339`] (shared with the metric line).
    pub timestamp: &'a str,
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
    /// Log context from the app's response headers.
    pub context: Option<&'a LogContext>,
}

/// Receives the fields of a line in order of importance; implemented by the JSON writer and
/// the pretty writer (and the OTLP attribute writer), so the field list exists once.
pub(crate) trait Sink {
    /// An untrusted value (invalid UTF-8 becomes U+FFFD), escaped and truncated.
    fn bytes(&mut self, key: &str, value: &[u8], max_chars: usize);
    /// A string that needs no escaping (hex ids, validated addresses, our constants).
    fn plain(&mut self, key: &str, value: &str);
    /// A number, already formatted.
    fn number(&mut self, key: &str, value: &str);
}

impl Sink for ObjectLine<'_> {
    fn bytes(&mut self, key: &str, value: &[u8], max_chars: usize) {
        ObjectLine::bytes(self, key, value, max_chars);
    }
    fn plain(&mut self, key: &str, value: &str) {
        ObjectLine::plain(self, key, value);
    }
    fn number(&mut self, key: &str, value: &str) {
        self.raw(key, value);
    }
}

/// Untrusted text (a shorthand for [`Sink::bytes`]).
fn text(sink: &mut dyn Sink, key: &str, value: &[u8], max_chars: usize) {
    sink.bytes(key, value, max_chars);
}

/// Lowercase hex of an id (up to 16 bytes).
/// Starts a line of the middleware's own events (`config.invalid`, the OTLP warnings): the
/// same leading fields as an access line, so readers tell them apart by `event` alone.
pub(crate) fn begin_event_line<'a>(
    out: &'a mut String,
    timestamp: &str,
    level: Level,
    event: &str,
    service_name: Option<&str>,
) -> ObjectLine<'a> {
    let mut line = ObjectLine::begin(out, MAX_LINE_BYTES);
    line.str(fields::TIMESTAMP, timestamp, 32);
    line.str(fields::LEVEL, level.as_str(), 8);
    line.str(fields::EVENT, event, 32);
    if let Some(s) = service_name {
        line.str(fields::SERVICE_NAME, s, SERVICE_NAME_MAX_CHARS);
    }
    line
}

pub(crate) fn hex(bytes: &[u8]) -> json::Small {
    let mut s = json::Small::default();
    let mut buf = [0u8; 32];
    let n = bytes.len().min(16);
    crate::trace_context::hex_into(&mut buf[..2 * n], &bytes[..n]);
    s.push_bytes(&buf[..2 * n]);
    s
}

/// Emits every field after `timestamp`, `level` and `event`, most important first, so that
/// when the line budget runs out it is the long, untrusted fields that get cut.
pub(crate) fn emit(r: &Record<'_>, sink: &mut dyn Sink) {
    if let Some(s) = r.service_name {
        text(
            sink,
            fields::SERVICE_NAME,
            s.as_bytes(),
            SERVICE_NAME_MAX_CHARS,
        );
    }
    text(
        sink,
        fields::REQUEST_ID,
        r.request_id.as_bytes(),
        crate::request_id::MAX_LEN_LIMIT,
    );
    if let Some(t) = r.trace {
        sink.plain(fields::TRACE_ID, hex(&t.trace_id).as_str());
        sink.plain(fields::SPAN_ID, hex(&t.span_id).as_str());
        if let Some(p) = t.parent_span_id {
            sink.plain("parent_span_id", hex(&p).as_str());
        }
    }
    text(sink, fields::METHOD, r.method.as_bytes(), METHOD_MAX_CHARS);
    text(sink, "url.scheme", r.scheme.as_bytes(), SCHEME_MAX_CHARS);
    if let Some(route) = r.route {
        text(
            sink,
            fields::ROUTE,
            route.as_bytes(),
            crate::route::MAX_TEMPLATE_LEN,
        );
    }
    if let Some(s) = r.status {
        sink.number(fields::STATUS_CODE, json::small_u64(u64::from(s)).as_str());
    }
    if let Some(d) = r.duration {
        sink.number(fields::DURATION_MS, json::duration_ms(d).as_str());
    }
    if let Some(n) = r.request_body_size {
        sink.number("http.request.body.size", json::small_u64(n).as_str());
    }
    if let Some(n) = r.response_body_size {
        sink.number("http.response.body.size", json::small_u64(n).as_str());
    }
    if let Some(e) = r.error_type {
        text(sink, fields::ERROR_TYPE, e.as_bytes(), MAX_ERROR_TYPE_LEN);
    }
    if let Some(ip) = &r.client_address {
        sink.plain("client.address", ip.as_str());
    }
    if let Some(rep) = r.replaced {
        sink.plain("request_id.replaced", rep.reason.as_str());
        text(
            sink,
            "request_id.received",
            &rep.received,
            RECEIVED_MAX_CHARS,
        );
    }
    if let Some(a) = r.authority {
        text(sink, "server.address", a.as_bytes(), AUTHORITY_MAX_CHARS);
    }
    text(sink, fields::PATH, r.path.as_bytes(), PATH_MAX_CHARS);
    if let Some(q) = r.query {
        let mut redacted = String::with_capacity(q.len() + 16);
        r.redaction.redact_query(q, &mut redacted);
        text(sink, "url.query", redacted.as_bytes(), QUERY_MAX_CHARS);
    }
    if let Some(ua) = r.user_agent.filter(|_| r.user_agent_max > 0) {
        text(sink, "user_agent.original", ua, r.user_agent_max);
    }
    if let Some(ctx) = r.context {
        write_context(ctx, &mut |key, value, max| sink.bytes(key, value, max));
    }
    let mut key = String::with_capacity(48);
    let mut joined: Vec<u8> = Vec::new();
    for group in r
        .headers
        .chunk_by(|a, b| a.response == b.response && a.name == b.name)
    {
        key.clear();
        key.push_str(if group[0].response {
            "http.response.header."
        } else {
            "http.request.header."
        });
        key.push_str(group[0].name.as_str());
        // All values of the header, joined with ", "; secret ones are only "[REDACTED]". Enough
        // bytes are kept for the character limit (4 bytes per character at most).
        joined.clear();
        for h in group {
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            let bytes: &[u8] = match &h.value {
                Some(v) => v.as_bytes(),
                None => REDACTED.as_bytes(),
            };
            joined.extend_from_slice(&bytes[..bytes.len().min(4 * HEADER_VALUE_MAX_CHARS + 4)]);
            if joined.len() > 4 * HEADER_VALUE_MAX_CHARS {
                break;
            }
        }
        sink.bytes(&key, &joined, HEADER_VALUE_MAX_CHARS);
    }
}

/// Keys [`write_attributes`] leaves out: a span line carries the ids and the duration in
/// its own fields, and `service.name` belongs to the resource.
pub(crate) const NOT_SPAN_ATTRIBUTES: [&str; 5] = [
    fields::SERVICE_NAME,
    fields::TRACE_ID,
    fields::SPAN_ID,
    "parent_span_id",
    fields::DURATION_MS,
];

/// Passes fields on to a line, except [`NOT_SPAN_ATTRIBUTES`].
struct AttributeFilter<'a, 'b>(&'a mut ObjectLine<'b>);

impl Sink for AttributeFilter<'_, '_> {
    fn bytes(&mut self, key: &str, value: &[u8], max_chars: usize) {
        if !NOT_SPAN_ATTRIBUTES.contains(&key) {
            self.0.bytes(key, value, max_chars);
        }
    }
    fn plain(&mut self, key: &str, value: &str) {
        if !NOT_SPAN_ATTRIBUTES.contains(&key) {
            self.0.plain(key, value);
        }
    }
    fn number(&mut self, key: &str, value: &str) {
        if !NOT_SPAN_ATTRIBUTES.contains(&key) {
            self.0.raw(key, value);
        }
    }
}

/// Writes the access log's fields of `r` as span attributes into an open JSON object of
/// `line`: the same fields, limits and redaction as [`write_json`], without the ids, the
/// duration and `service.name`.
pub fn write_attributes(r: &Record<'_>, line: &mut ObjectLine<'_>) {
    emit(r, &mut AttributeFilter(line));
}

/// Appends the JSON line of `r` (ending in `\n`) to `out`.
pub fn write_json(r: &Record<'_>, out: &mut String) {
    let mut line = ObjectLine::begin(out, MAX_LINE_BYTES);
    line.plain(fields::TIMESTAMP, r.timestamp);
    line.plain(fields::LEVEL, r.level.as_str());
    line.plain(fields::EVENT, r.event);
    emit(r, &mut line);
    line.finish();
}

/// Short names used by the pretty format; `""` means the field is already in the line head
/// (or is noise for humans) and is not repeated. Other keys are written as they are.
const PRETTY_KEYS: [(&str, &str); 16] = [
    ("request_id", "id"),
    ("trace_id", "trace"),
    ("span_id", "span"),
    ("parent_span_id", "parent"),
    ("http.route", "route"),
    ("error.type", "error"),
    ("client.address", "client"),
    ("request_id.replaced", "id_replaced"),
    ("request_id.received", "id_received"),
    ("server.address", "host"),
    ("url.query", "query"),
    ("user_agent.original", "ua"),
    ("http.request.body.size", "req_bytes"),
    ("http.response.body.size", "resp_bytes"),
    ("service.name", "service"),
    ("url.scheme", ""),
];

/// The head fields of the pretty line, not repeated as `key=value`.
const PRETTY_HEAD: [&str; 4] = [
    "http.request.method",
    "url.path",
    "http.response.status_code",
    "duration_ms",
];

/// Builds a pretty line under the byte budget.
struct PrettyLine<'a> {
    out: &'a mut String,
    start: usize,
}

impl PrettyLine<'_> {
    /// Bytes left, keeping one for the final newline.
    fn room(&self) -> usize {
        MAX_LINE_BYTES
            .saturating_sub(self.out.len() - self.start)
            .saturating_sub(1)
    }

    /// ` key=value` (or ` value` for an empty key). The value is written escaped; if the result
    /// is not plain visible ASCII it is put in quotes, so spaces or quotes in a value can never
    /// fake another field. Left out when the budget is exhausted.
    fn field(&mut self, key: &str, write: &mut dyn FnMut(&mut String, usize) -> bool) {
        let overhead = 1 + key.len() + 1 + 2;
        let Some(room) = self.room().checked_sub(overhead) else {
            return;
        };
        if room < json::TRUNCATION_MARKER.len() + 4 {
            return;
        }
        self.out.push(' ');
        if !key.is_empty() {
            self.out.push_str(key);
            self.out.push('=');
        }
        let value_start = self.out.len();
        write(self.out, room);
        let value = &self.out.as_bytes()[value_start..];
        let bare = !value.is_empty()
            && value
                .iter()
                .all(|&b| (0x21..0x7F).contains(&b) && b != b'"' && b != b'\\');
        if !bare {
            self.out.insert(value_start, '"');
            self.out.push('"');
        }
    }

    fn pretty_key(key: &str) -> Option<&str> {
        if PRETTY_HEAD.contains(&key) {
            return None;
        }
        match PRETTY_KEYS.iter().find(|(k, _)| *k == key) {
            Some((_, "")) => None,
            Some((_, short)) => Some(short),
            None => Some(key),
        }
    }
}

impl Sink for PrettyLine<'_> {
    fn bytes(&mut self, key: &str, value: &[u8], max_chars: usize) {
        if let Some(key) = Self::pretty_key(key) {
            self.field(key, &mut |o, max| {
                json::escape_bytes_limited(o, value, max_chars, max)
            });
        }
    }
    fn plain(&mut self, key: &str, value: &str) {
        self.bytes(key, value.as_bytes(), value.len());
    }
    fn number(&mut self, key: &str, value: &str) {
        self.bytes(key, value.as_bytes(), value.len());
    }
}

/// Appends the pretty line of `r` (ending in `\n`) to `out`, e.g.
/// `2026-11-23T11:22:33.456Z INFO GET /path 200 1.234ms id=... trace=... span=...`.
pub fn write_pretty(r: &Record<'_>, out: &mut String) {
    let start = out.len();
    out.push_str(r.timestamp);
    out.push(' ');
    for b in r.level.as_str().bytes() {
        out.push(b.to_ascii_uppercase() as char);
    }
    let mut p = PrettyLine { out, start };
    p.field("", &mut |o, max| {
        json::escape_str_limited(o, r.method, METHOD_MAX_CHARS, max)
    });
    p.field("", &mut |o, max| {
        json::escape_str_limited(o, r.path, PATH_MAX_CHARS, max)
    });
    let mut head = json::Small::default();
    if r.event == EVENT_START {
        head.push_bytes(b"started");
    } else {
        match r.status {
            Some(s) => head.push_u64(u64::from(s)),
            None => head.push(b'-'),
        }
        if let Some(d) = r.duration {
            head.push(b' ');
            head.push_bytes(json::duration_ms(d).as_str().as_bytes());
            head.push_bytes(b"ms");
        }
    }
    p.out.push(' ');
    p.out.push_str(head.as_str());
    emit(r, &mut p);
    p.out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_id::ReplaceReason;

    fn redaction() -> &'static Redaction {
        static R: std::sync::OnceLock<Redaction> = std::sync::OnceLock::new();
        R.get_or_init(|| crate::Config::default().redaction)
    }

    fn record<'a>(headers: &'a [LoggedHeader]) -> Record<'a> {
        Record {
            timestamp: "2026-11-23T11:22:33.456Z",
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
            context: None,
        }
    }

    fn context_headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn context_headers_move_into_the_line() {
        let cfg = LogContextConfig::default();
        let mut h = context_headers(&[
            ("content-type", "text/plain"),
            ("obs-context-user-id", "42"),
            ("obs-context-tenant", "acme \"corp\"\t"),
            ("obs-context-tenant", "second"),
            ("obs-context-authorization", "Bearer secret-1"),
            ("obs-context-token", "secret-2"),
            ("obs-context-", "no name"),
        ]);
        let ctx = take_context(&cfg, redaction(), &mut h, true).unwrap();
        assert_eq!(h.len(), 1, "only content-type is left: {h:?}");
        let mut r = record(&[]);
        r.context = Some(&ctx);
        let (line, v) = json_of(&r);
        assert_eq!(v["context.user-id"], "42");
        assert_eq!(v["context.tenant"], "acme \"corp\"\t, second");
        assert_eq!(v["context.authorization"], "[REDACTED]");
        assert_eq!(v["context.token"], "[REDACTED]");
        assert!(!line.contains("secret-"));
        assert!(v.get("context.").is_none());
        // Pretty lines carry them too.
        let mut pretty = String::new();
        write_pretty(&r, &mut pretty);
        assert!(pretty.contains("context.user-id=42"), "{pretty}");
    }

    #[test]
    fn context_is_bounded() {
        let cfg = LogContextConfig::default();
        let long = "é".repeat(2000);
        let mut pairs: Vec<(String, String)> = (0..20)
            .map(|i| (format!("obs-context-k{i:02}"), format!("v{i}")))
            .collect();
        pairs.push(("obs-context-long".into(), long.clone()));
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mut h = context_headers(&refs);
        let ctx = take_context(&cfg, redaction(), &mut h, true).unwrap();
        assert!(h.is_empty());
        assert_eq!(ctx.fields.len(), MAX_CONTEXT_FIELDS);
        assert_eq!(ctx.dropped, 5);
        let mut r = record(&[]);
        r.context = Some(&ctx);
        let (line, v) = json_of(&r);
        assert!(line.len() <= MAX_LINE_BYTES);
        assert_eq!(v["log_context.dropped"], "5");
        assert_eq!(v["context.k15"], "v15");
        assert!(v.get("context.k16").is_none());
        // A long value is cut to the limit (plus the truncation marker).
        let mut h = context_headers(&[("obs-context-long", &long)]);
        let ctx = take_context(&cfg, redaction(), &mut h, true).unwrap();
        let mut r = record(&[]);
        r.context = Some(&ctx);
        let (_, v) = json_of(&r);
        let logged = v["context.long"].as_str().unwrap();
        assert!(logged.chars().count() <= CONTEXT_VALUE_MAX_CHARS + json::TRUNCATION_MARKER.len());
        assert!(logged.starts_with("ééé"));
    }

    #[test]
    fn context_without_headers_or_capture() {
        let mut cfg = LogContextConfig::default();
        let mut h = context_headers(&[("content-type", "x"), ("x-obs-context-a", "1")]);
        assert_eq!(take_context(&cfg, redaction(), &mut h, true), None);
        assert_eq!(h.len(), 2);
        // Logging off: removed all the same, nothing kept.
        let mut h = context_headers(&[("obs-context-a", "1")]);
        let ctx = take_context(&cfg, redaction(), &mut h, false).unwrap();
        assert!(h.is_empty() && ctx.fields.is_empty());
        cfg.prefix = "app-ctx-".into();
        let mut h = context_headers(&[("obs-context-a", "1"), ("app-ctx-b", "2")]);
        let ctx = take_context(&cfg, redaction(), &mut h, true).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(ctx.fields[0].key, "context.b");
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
    fn access_lines_are_told_from_start_lines_and_other_output() {
        let headers = [];
        let (line, _) = json_of(&record(&headers));
        assert!(is_access_line(line.as_bytes()));
        let mut start = record(&headers);
        start.event = EVENT_START;
        let (line, _) = json_of(&start);
        assert!(!is_access_line(line.as_bytes()));
        assert!(!is_access_line(
            br#"{"schema":"edge_obs.metric.v1","event":"http.request"}"#
        ));
        assert!(!is_access_line(b"plain text"));
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
        r.client_address = crate::client_addr::parse_node(b"10.0.0.1");
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
        let mut c = crate::Config::default().log;
        assert!(c.should_log(Level::Info, true, false, false, 0, None));
        assert!(
            !c.should_log(Level::Info, true, false, true, 0, None),
            "skip path"
        );
        assert!(
            c.should_log(Level::Warn, false, false, true, 0, None),
            "skip path only for successes"
        );
        assert!(
            c.should_log(Level::Info, true, true, true, 0, None),
            "slow beats skip"
        );
        c.level = Level::Warn;
        assert!(!c.should_log(Level::Info, true, true, false, 0, None));
        assert!(c.should_log(Level::Error, false, false, false, 0, None));
        c.level = Level::Info;
        c.sample_rate_ppm = 0;
        assert!(!c.should_log(Level::Info, true, false, false, 0, None));
        assert!(
            c.should_log(Level::Warn, false, false, false, u32::MAX, None),
            "errors are not sampled"
        );
        assert!(
            c.should_log(Level::Info, true, true, false, u32::MAX, None),
            "slow requests are not sampled"
        );
        // Following the trace: the trace decision replaces the rate, for successes only.
        c.follow_trace = true;
        assert!(c.should_log(Level::Info, true, false, false, u32::MAX, Some(true)));
        assert!(
            !c.should_log(Level::Info, true, false, true, 0, Some(true)),
            "skip path"
        );
        c.sample_rate_ppm = 1_000_000;
        assert!(!c.should_log(Level::Info, true, false, false, 0, Some(false)));
        assert!(c.should_log(Level::Error, false, false, false, 0, Some(false)));
        assert!(
            c.should_log(Level::Info, true, true, false, 0, Some(false)),
            "slow"
        );
        // Without trace context the rate applies.
        assert!(c.should_log(Level::Info, true, false, false, 0, None));
        c.enabled = false;
        assert!(!c.should_log(Level::Error, false, false, false, 0, None));
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
        let mut c = crate::Config::default().log;
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

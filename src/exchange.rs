//! Per-request orchestration: the public API the wasm glue calls.
//!
//! Life of a request: [`Middleware::start`] when the request head arrives (edits the forwarded
//! headers), [`Exchange::on_response`] when the app's response head arrives (edits the response
//! headers) or [`Exchange::on_failure`] when the app could not answer, and
//! [`Exchange::finish`] when the response body has been sent; `finish` returns the log and
//! metric lines, which the glue writes to stdout one write per line ([`stdout_writes`]).
//!
//! The glue owns all I/O; this module only transforms headers and produces text, so it is
//! plain Rust and unit-tested natively.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::access_log::{
    self, EVENT_REQUEST, EVENT_START, Level, LogContext, LogFormat, LoggedHeader,
    MAX_VALUES_PER_HEADER, Record,
};
use crate::config::{Config, ConfigIssue};
use crate::cors::CorsDecision;
use crate::json::{self, cut};
use crate::lines::Lines;
use crate::metrics::{self, MetricEvent};
use crate::otlp::Signal;
use crate::otlp::buffer::Buffer;
use crate::redact::Redaction;
use crate::request_id::{self, Replaced};
use crate::span::{self, SpanEvent};
use crate::trace_context::{self, TraceIds, TraceParent};
use crate::{client_addr, problem, route, security_headers, timestamp};

/// `Server-Timing` header name.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// We keep at most this much of the path and, separately, of the query: more than the
/// logged 1024 characters of each (so a longer one is still logged with the truncation
/// marker), without copying a megabyte-long URL.
const MAX_TARGET_PART_BYTES: usize = 4096;

/// The middleware: immutable configuration shared by all exchanges.
#[derive(Clone, Debug)]
pub struct Middleware {
    config: Arc<Config>,
}

impl Default for Middleware {
    fn default() -> Self {
        Middleware::new(Config::default())
    }
}

/// What the glue knows about the incoming request besides its headers.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Scheme (`http`/`https`), if the host told us.
    pub scheme: Option<&'a str>,
    /// Authority (host and port), if known.
    pub authority: Option<&'a str>,
    /// Path and query, e.g. `/users/42?x=1`.
    pub path_with_query: &'a str,
}

/// Why the exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// The app did not answer in time (answered with 504).
    Timeout,
    /// The app refused the connection.
    ConnectionRefused,
    /// The app could not be reached.
    DestinationUnavailable,
    /// The response body stream failed.
    ResponseBodyError,
    /// The request body stream failed.
    RequestBodyError,
    /// A bug or unexpected state in the middleware or host.
    Internal,
    /// Anything else.
    Other,
    /// The host: a guest trapped (a crash in the app or a middleware), answered with 500.
    GuestTrap,
    /// The host: a guest hit the memory limit, answered with 500.
    MemoryLimit,
    /// The host: at its concurrency limit, answered with 503.
    Overload,
    /// The host: shutting down, answered with 503.
    Draining,
    /// The host: the declared request body is over the limit, answered with 413.
    RequestBodyTooLarge,
    /// The host: the request header section is over the limit, answered with 431.
    RequestHeaderTooLarge,
    /// The host: the request target is over the limit, answered with 414.
    UriTooLong,
    /// The host: a malformed request, answered with 400.
    BadRequest,
    /// The host: a method it does not serve (CONNECT), answered with 501.
    MethodNotSupported,
    /// The host: the client is over its rate limit, answered with 429.
    RateLimited,
}

impl ErrorType {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorType; 17] = [
        ErrorType::Timeout,
        ErrorType::ConnectionRefused,
        ErrorType::DestinationUnavailable,
        ErrorType::ResponseBodyError,
        ErrorType::RequestBodyError,
        ErrorType::Internal,
        ErrorType::Other,
        ErrorType::GuestTrap,
        ErrorType::MemoryLimit,
        ErrorType::Overload,
        ErrorType::Draining,
        ErrorType::RequestBodyTooLarge,
        ErrorType::RequestHeaderTooLarge,
        ErrorType::UriTooLong,
        ErrorType::BadRequest,
        ErrorType::MethodNotSupported,
        ErrorType::RateLimited,
    ];

    /// The `error.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Timeout => "timeout",
            ErrorType::ConnectionRefused => "connection_refused",
            ErrorType::DestinationUnavailable => "destination_unavailable",
            ErrorType::ResponseBodyError => "response_body_error",
            ErrorType::RequestBodyError => "request_body_error",
            ErrorType::Internal => "internal_error",
            ErrorType::Other => "_OTHER",
            ErrorType::GuestTrap => "guest_trap",
            ErrorType::MemoryLimit => "memory_limit",
            ErrorType::Overload => "overload",
            ErrorType::Draining => "draining",
            ErrorType::RequestBodyTooLarge => "request_body_too_large",
            ErrorType::RequestHeaderTooLarge => "request_header_too_large",
            ErrorType::UriTooLong => "uri_too_long",
            ErrorType::BadRequest => "bad_request",
            ErrorType::MethodNotSupported => "method_not_supported",
            ErrorType::RateLimited => "rate_limited",
        }
    }

    /// The status answered for this failure: 504 for a timeout, the host's own statuses for
    /// its kinds, else 502.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorType::GuestTrap | ErrorType::MemoryLimit => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Overload | ErrorType::Draining => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::RequestHeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorType::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorType::BadRequest => StatusCode::BAD_REQUEST,
            ErrorType::MethodNotSupported => StatusCode::NOT_IMPLEMENTED,
            ErrorType::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`), for the failures that
    /// pass by themselves (a rate limit's wait is the limiter's to say).
    pub fn retry_after(self) -> Option<u32> {
        match self {
            ErrorType::Overload | ErrorType::Draining => Some(1),
            _ => None,
        }
    }
}

/// The response to send when the app failed before sending a response head.
#[derive(Clone, Debug)]
pub struct FailureResponse {
    /// 502 or 504.
    pub status: StatusCode,
    /// `content-type: application/problem+json`, `cache-control: no-store`, `content-length`,
    /// plus everything [`Exchange::on_response`] adds (request id, security baseline, rules,
    /// `Server-Timing`).
    pub headers: HeaderMap,
    /// The problem+json body (empty for HEAD requests).
    pub body: Vec<u8>,
}

/// A request answered in place of the app; see [`Middleware::answer`].
#[derive(Clone, Debug)]
pub struct Answer {
    /// The response to send.
    pub response: FailureResponse,
    /// The access-log and metric event lines, as [`Exchange::finish`] returns them.
    pub lines: String,
    /// The request id the response carries.
    pub request_id: String,
    /// The trace id, when trace context is on.
    pub trace_id: Option<String>,
}

/// What a middleware sent on with a request (read by the host where the request leaves it):
/// the request id and `traceparent` the next hop got. See [`Middleware::answer`].
#[derive(Clone, Debug, Default)]
pub struct Forwarded {
    /// The request id header's value.
    pub request_id: Option<HeaderValue>,
    /// The `traceparent` sent, whose parent id is the middleware's span.
    pub traceparent: Option<TraceParent>,
}

/// The middleware's own answer to a CORS preflight request (the app is not called).
#[derive(Clone, Debug)]
pub struct PreflightResponse {
    /// 204 No Content.
    pub status: StatusCode,
    /// The CORS preflight headers (none for a disallowed origin, except `Vary`) plus what
    /// [`Exchange::on_response`] adds (request id, security baseline, rules, `Server-Timing`).
    pub headers: HeaderMap,
}

/// How the exchange ended, as seen by the glue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// Request body bytes read, if counted. When `None`, a valid `Content-Length` is used.
    pub request_body_bytes: Option<u64>,
    /// Response body bytes sent, if counted. When `None`, a valid `Content-Length` is used.
    pub response_body_bytes: Option<u64>,
    /// A failure after the response head was sent (e.g. body stream error).
    pub error: Option<ErrorType>,
}

/// A start time read only when something reports the duration: each clock read is a host
/// call in the component. One that was not started reports zero.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch(Option<Instant>);

impl Stopwatch {
    /// Reads the clock when `read`, else starts nothing.
    pub fn start_if(read: bool) -> Self {
        Stopwatch(read.then(Instant::now))
    }

    /// Time since the start; zero when not started.
    pub fn elapsed(&self) -> Duration {
        self.0.map(|s| s.elapsed()).unwrap_or_default()
    }

    /// The start, if the clock was read.
    pub fn instant(&self) -> Option<Instant> {
        self.0
    }
}

/// One request/response exchange in flight.
#[derive(Debug)]
pub struct Exchange {
    config: Arc<Config>,
    /// Not read when no output carries time ([`Config::times_exchanges`]).
    started: Stopwatch,
    started_at: SystemTime,
    request_id: String,
    request_id_value: HeaderValue,
    replaced: Option<Replaced>,
    trace: Option<TraceIds>,
    method: Method,
    scheme: String,
    authority: Option<String>,
    /// Path and query, each cut to [`MAX_TARGET_PART_BYTES`].
    target: String,
    route: Option<usize>,
    skip_path: bool,
    client_address: Option<client_addr::ClientIp>,
    user_agent: Option<HeaderValue>,
    /// Request headers first (`request_headers` of them), then response headers.
    logged_headers: Vec<LoggedHeader>,
    request_headers: usize,
    request_content_length: Option<u64>,
    response_content_length: Option<u64>,
    status: Option<StatusCode>,
    failure: Option<ErrorType>,
    sample_draw: u32,
    /// CORS verdict of the request (default when CORS is off).
    cors: CorsDecision,
    /// Log context the app set in its response headers.
    context: Option<LogContext>,
}

impl Middleware {
    /// A middleware with an explicit configuration.
    pub fn new(config: Config) -> Self {
        Middleware {
            config: Arc::new(config),
        }
    }

    /// Reads settings from environment variables (all `EDGE_OBS_*`); never fails: bad values
    /// fall back to defaults and are reported.
    pub fn from_env<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> (Middleware, Vec<ConfigIssue>) {
        let (config, issues) = Config::from_env(vars);
        (Middleware::new(config), issues)
    }

    /// [`Middleware::from_env`] without the middleware's own OTLP export (library mode; see
    /// [`Config::from_env_without_export`]).
    pub fn from_env_without_export<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> (Middleware, Vec<ConfigIssue>) {
        let (config, issues) = Config::from_env_without_export(vars);
        (Middleware::new(config), issues)
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One JSON log line per issue (level error, event `config.invalid`, with `variable`,
    /// `value` (escaped, truncated), `reason` and `default_used`). Each line ends with `\n`.
    pub fn config_issue_lines(&self, issues: &[ConfigIssue]) -> String {
        let mut out = String::new();
        let mut ts = String::with_capacity(24);
        timestamp::write_rfc3339_millis(&mut ts, SystemTime::now());
        for issue in issues {
            let mut line = access_log::begin_event_line(
                &mut out,
                &ts,
                Level::Error,
                "config.invalid",
                self.config.service_name.as_deref(),
            );
            line.str("variable", &issue.variable, 128);
            line.str("value", &issue.value, crate::config::ISSUE_VALUE_MAX_CHARS);
            line.str("reason", &issue.reason, 512);
            line.str("default_used", &issue.default_used, 512);
            line.finish();
        }
        out
    }

    /// Request arrives: validates/generates the request id, handles traceparent/tracestate,
    /// applies request header rules. Edits `headers` in place (the glue forwards them).
    pub fn start(&self, req: &RequestHead<'_>, headers: &mut HeaderMap) -> Exchange {
        let cfg = &*self.config;
        let timed = cfg.times_exchanges();
        // A generated UUIDv7 carries the time too.
        let wall = timed || cfg.request_id.format == request_id::IdFormat::UuidV7;
        self.start_with(
            req,
            headers,
            timed.then(Instant::now),
            if wall { SystemTime::now() } else { UNIX_EPOCH },
            &random_bytes(),
        )
    }

    /// The whole exchange of a request answered in place of the app, by a host that rejects
    /// it (overload, limits) or whose guest failed (timeout, trap): the response, with the
    /// request id, the security baseline and a problem+json body exactly as the component
    /// would answer, and the lines the component would have written (access log and metric
    /// event). `started` is when the request arrived, for its duration.
    ///
    /// A valid client request id is kept and an invalid one replaced, as in [`Middleware::start`].
    ///
    /// `forwarded`, when a middleware had already sent the request on before the host had to
    /// answer (an upstream that timed out): the answer stands in for that middleware, with
    /// the request id and the span it forwarded, so the line matches what the next hop saw
    /// and the next hop's parent span is exported.
    pub fn answer(
        &self,
        req: &RequestHead<'_>,
        request_headers: &HeaderMap,
        forwarded: Option<&Forwarded>,
        error: ErrorType,
        started: Instant,
    ) -> Answer {
        let elapsed = started.elapsed();
        let arrived_at = SystemTime::now().checked_sub(elapsed).unwrap_or(UNIX_EPOCH);
        // `start` edits the headers it would forward; nothing is forwarded here.
        let mut headers = request_headers.clone();
        if let Some(id) = forwarded.and_then(|f| f.request_id.clone()) {
            headers.insert(self.config.request_id.header.clone(), id);
        }
        let mut exchange = self.start_with(
            req,
            &mut headers,
            Some(started),
            arrived_at,
            &random_bytes(),
        );
        if let (Some(trace), Some(sent)) = (
            exchange.trace.as_mut(),
            forwarded.and_then(|f| f.traceparent.as_ref()),
        ) {
            // The caller's span stays the parent; the rest is what went downstream.
            trace.trace_id = sent.trace_id;
            trace.span_id = sent.parent_id;
            trace.flags = sent.flags;
        }
        let response = exchange.on_failure(error);
        let request_id = exchange.request_id.clone();
        let trace_id = exchange.trace_id();
        let lines = exchange.finish_after(
            Completion {
                request_body_bytes: None,
                response_body_bytes: Some(response.body.len() as u64),
                error: Some(error),
            },
            elapsed,
        );
        Answer {
            response,
            lines: lines.into_string(),
            request_id,
            trace_id,
        }
    }

    /// [`Middleware::start`] with explicit clock and randomness (48 bytes: 16 for a generated
    /// id, 24 for trace and span ids, 4 for the sampling draw), for tests. `now` is `None`
    /// for an exchange that is not timed.
    pub(crate) fn start_with(
        &self,
        req: &RequestHead<'_>,
        headers: &mut HeaderMap,
        now: Option<Instant>,
        now_at: SystemTime,
        random: &[u8; 48],
    ) -> Exchange {
        let cfg = &*self.config;
        let id_random: [u8; 16] = random[..16].try_into().unwrap_or([1; 16]);
        let resolved = request_id::resolve(&cfg.request_id, headers, &id_random, now_at);
        let (path, _) = split_target(req.path_with_query);
        let route = route::find(&cfg.routes, path);
        let skip_path = cfg.log.skip_paths.iter().any(|p| p == path);

        let logging = cfg.enabled && cfg.log.enabled;
        let client_address = if logging {
            client_addr::client_address(&cfg.client_addr, headers)
        } else {
            None
        };
        let user_agent = if logging && cfg.log.user_agent_max > 0 {
            headers.get(USER_AGENT).cloned()
        } else {
            None
        };
        let mut logged_headers = Vec::new();
        if logging {
            capture(
                headers,
                &cfg.log.request_headers,
                false,
                &cfg.redaction,
                &mut logged_headers,
            );
        }
        let request_headers = logged_headers.len();
        let request_content_length = content_length(headers);
        // Before the request rules run: CORS looks at what the client sent.
        let cors = if cfg.enabled && cfg.cors.enabled() {
            cfg.cors.classify(req.method, headers)
        } else {
            CorsDecision::default()
        };

        let mut trace = None;
        if cfg.enabled {
            cfg.request_rules.apply(headers);
            headers.insert(cfg.request_id.header.clone(), resolved.value.clone());
            if cfg.trace_context {
                let trace_random: [u8; 24] = random[16..40].try_into().unwrap_or([1; 24]);
                trace =
                    Some(trace_context::process(headers, &trace_random, &cfg.trace_sampler).ids);
            }
        }

        Exchange {
            config: Arc::clone(&self.config),
            started: Stopwatch(now),
            started_at: now_at,
            request_id: resolved.id,
            request_id_value: resolved.value,
            replaced: resolved.replaced,
            trace,
            method: req.method.clone(),
            scheme: cut(req.scheme.unwrap_or("http"), 64).to_owned(),
            authority: req.authority.map(|a| cut(a, 1024).to_owned()),
            target: cut_target(req.path_with_query),
            route,
            skip_path,
            client_address,
            user_agent,
            logged_headers,
            request_headers,
            request_content_length,
            response_content_length: None,
            status: None,
            failure: None,
            sample_draw: u32::from_le_bytes([random[40], random[41], random[42], random[43]]),
            cors,
            context: None,
        }
    }
}

impl Exchange {
    /// The request id of this exchange (accepted from the client or generated).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The trace id of this exchange in lowercase hex, when trace context is on.
    pub fn trace_id(&self) -> Option<String> {
        self.trace.as_ref().map(|t| {
            let mut s = String::with_capacity(32);
            trace_context::push_hex(&mut s, &t.trace_id);
            s
        })
    }

    /// Debug-level "request started" line when enabled by config (`EDGE_OBS_LOG_START=on`
    /// and `EDGE_OBS_LOG_LEVEL=debug`), else `None`. Ends with `\n`.
    pub fn start_line(&self) -> Option<String> {
        let cfg = &*self.config;
        if !cfg.enabled || !cfg.log.wants_start_line() {
            return None;
        }
        let query = self.query();
        let started_at = timestamp::rfc3339(self.started_at);
        let mut r = self.record(Level::Debug, EVENT_START, started_at.as_str(), &query);
        r.headers = &self.logged_headers[..self.request_headers];
        let mut out = String::with_capacity(512);
        write_record(cfg.log.format, &r, &mut out);
        Some(out)
    }

    /// The log context fields the app set (after [`Exchange::on_response`]), for any line or
    /// span that carries them.
    pub fn context(&self) -> Option<&LogContext> {
        self.context.as_ref()
    }

    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, CORS
    /// on): the answer the glue sends instead of calling the app, then [`Exchange::finish`]
    /// logs and counts it like any request. `None` for every other request.
    pub fn preflight(&mut self) -> Option<PreflightResponse> {
        if !self.cors.preflight {
            return None;
        }
        let status = StatusCode::NO_CONTENT;
        self.status = Some(status);
        self.response_content_length = Some(0);
        let mut headers = HeaderMap::new();
        self.decorate(&mut headers, self.elapsed());
        self.config.cors.preflight_headers(&self.cors, &mut headers);
        self.capture_response(&headers);
        Some(PreflightResponse { status, headers })
    }

    /// Response headers from the app arrive: moves log context headers into the exchange,
    /// sets the request id exactly once (replacing any the app set), adds the security
    /// baseline, removes leaky headers, applies response header rules, adds CORS headers and
    /// appends `Server-Timing: app;dur=<ms with 3 decimals>`.
    pub fn on_response(&mut self, status: StatusCode, headers: &mut HeaderMap, app_time: Duration) {
        self.status = Some(status);
        self.response_content_length = content_length(headers);
        let cfg = &*self.config;
        if !cfg.enabled {
            return;
        }
        if cfg.log_context.enabled {
            // The span event carries the context too, also with logging off.
            let capture = cfg.log.enabled || self.writes_span();
            self.context =
                access_log::take_context(&cfg.log_context, &cfg.redaction, headers, capture);
        }
        self.decorate(headers, app_time);
        self.apply_cors(headers);
        self.capture_response(headers);
    }

    fn apply_cors(&self, headers: &mut HeaderMap) {
        let cors = &self.config.cors;
        if cors.enabled() {
            cors.apply(&self.cors, headers);
        }
    }

    /// The next handler failed: the answer to send (502, or 504 for [`ErrorType::Timeout`])
    /// with an `application/problem+json` body carrying the request id and no internal detail,
    /// and the same response headers as [`Exchange::on_response`] would add.
    ///
    /// A HEAD request gets the same headers (`Content-Length` included) and an empty body.
    /// Failures that pass by themselves (overload, draining) carry `Retry-After`.
    pub fn on_failure(&mut self, error: ErrorType) -> FailureResponse {
        let status = error.status();
        self.status = Some(status);
        self.failure = Some(error);
        let mut body = problem::body(status, &self.request_id);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(problem::CONTENT_TYPE),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        if let Some(seconds) = error.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        self.response_content_length = Some(body.len() as u64);
        if self.method == Method::HEAD {
            body.clear();
        }
        if self.config.enabled {
            self.decorate(&mut headers, self.elapsed());
            self.apply_cors(&mut headers);
            self.capture_response(&headers);
        }
        FailureResponse {
            status,
            headers,
            body,
        }
    }

    /// The exchange ended (response body fully sent, or failed). Returns everything to write
    /// to stdout, one write per line ([`Lines::writes`]): the access-log line (unless filtered
    /// by level, sampling or skip paths), the span event line (when the trace is sampled and
    /// spans are on) and the metric event line (unless metrics are disabled). Possibly empty,
    /// and always empty for an exchange that is not timed ([`Config::times_exchanges`]).
    /// Each line ends with `\n`.
    pub fn finish(self, end: Completion) -> Lines {
        let elapsed = self.elapsed();
        self.finish_after(end, elapsed)
    }

    /// [`Exchange::finish`], and the span, log record and metrics of the exchange into the
    /// instance's OTLP buffer for the signals it exports. Only copies into the buffer: it
    /// is sent later, off the request path.
    pub fn finish_with(self, end: Completion, otlp: Option<&mut Buffer>) -> Lines {
        let elapsed = self.elapsed();
        self.finish_export(end, elapsed, otlp)
    }

    /// [`Exchange::finish`] with an explicit duration, for tests.
    pub(crate) fn finish_after(self, end: Completion, elapsed: Duration) -> Lines {
        self.finish_export(end, elapsed, None)
    }

    /// [`Exchange::finish_with`] with an explicit duration. Always inlined: where `otlp` is a
    /// constant `None` (plain [`Exchange::finish`], library mode) the export code is then
    /// left out; the component calls only [`Exchange::finish_with`], so it has one copy.
    #[inline(always)]
    pub(crate) fn finish_export(
        self,
        end: Completion,
        elapsed: Duration,
        mut otlp: Option<&mut Buffer>,
    ) -> Lines {
        let cfg = &*self.config;
        let mut out = Lines::default();
        // An exchange that is not timed has nothing to write or export.
        let Some(started) = self.started.instant().filter(|_| cfg.enabled) else {
            return out;
        };
        let wants =
            |otlp: &Option<&mut Buffer>, s: Signal| otlp.as_ref().is_some_and(|b| b.wants(s));
        let now = started + elapsed;
        // One formatted end time for both lines.
        let ended_at = timestamp::rfc3339(self.started_at + elapsed);
        let error = self.failure.or(end.error);
        let status = self.status.map(|s| s.as_u16());
        let failed = error.is_some() || status.is_none();
        let error_type = match (error, self.status.as_ref()) {
            (Some(e), _) => Some(e.as_str()),
            // finish() without any response: the exchange was abandoned.
            (None, None) => Some(ErrorType::Other.as_str()),
            // OpenTelemetry: an app's own 5xx carries the status code as error.type.
            (None, Some(s)) if s.is_server_error() => Some(s.as_str()),
            (None, Some(_)) => None,
        };
        let request_body_size = end.request_body_bytes.or(self.request_content_length);
        let response_body_size = end
            .response_body_bytes
            .or_else(|| self.known_response_size());
        let level = Level::for_outcome(status, failed);
        let success = !failed && status.is_some_and(|s| s < 400);
        let trace_sampled = self.trace.as_ref().map(TraceIds::sampled);
        let log = cfg.log.should_log(
            level,
            success,
            cfg.log.is_slow(elapsed),
            self.skip_path,
            self.sample_draw,
            trace_sampled,
        );
        let sampled = trace_sampled == Some(true);
        let span_line = cfg.spans && sampled;
        let export_span = sampled && wants(&otlp, Signal::Traces);
        let export_log = log && wants(&otlp, Signal::Logs);
        let export_metrics = wants(&otlp, Signal::Metrics);
        // One allocation for all lines (typical sizes; a longer line still grows it).
        out.text_mut().reserve(
            usize::from(log) * 1024
                + usize::from(span_line) * 1024
                + usize::from(cfg.metrics) * 320,
        );
        if log || span_line || export_span {
            let query = self.query();
            let mut r = self.record(level, EVENT_REQUEST, ended_at.as_str(), &query);
            r.status = status;
            r.duration = Some(elapsed);
            r.request_body_size = request_body_size;
            r.response_body_size = response_body_size;
            r.error_type = error_type;
            if log {
                write_record(cfg.log.format, &r, out.text_mut());
                out.end_line();
            }
            if export_log && let Some(b) = otlp.as_deref_mut() {
                b.push_log(now, &r, span::unix_nanos(self.started_at + elapsed));
            }
            if let Some(trace) = self.trace.as_ref().filter(|_| span_line || export_span) {
                let ev = SpanEvent {
                    trace,
                    method: &self.method,
                    start: self.started_at,
                    duration: elapsed,
                    record: &r,
                };
                if span_line {
                    span::write(&ev, out.text_mut());
                    out.end_line();
                }
                if export_span && let Some(b) = otlp.as_deref_mut() {
                    b.push_span(now, &ev);
                }
            }
        }
        if cfg.metrics || export_metrics {
            let ev = MetricEvent {
                time: ended_at.as_str(),
                duration: elapsed,
                request_body_bytes: request_body_size,
                response_body_bytes: response_body_size,
                method: &self.method,
                route: self.route_str(),
                status,
                scheme: metrics::normalize_scheme(Some(&self.scheme)),
                error_type,
                trace: self.trace.as_ref().filter(|_| span_line || export_span),
            };
            if cfg.metrics {
                metrics::write(&ev, out.text_mut());
                out.end_line();
            }
            if let Some(b) = otlp.filter(|_| export_metrics) {
                b.observe(now, &ev);
            }
        }
        out
    }

    /// Whether the exchange reports a span (a span event line or an OTLP span): the trace is
    /// sampled and either is on.
    fn writes_span(&self) -> bool {
        (self.config.spans || self.config.otlp.exports(Signal::Traces))
            && self.trace.as_ref().is_some_and(TraceIds::sampled)
    }

    /// Time since the exchange started; zero when it is not timed.
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Started when the app is called, for `Server-Timing`'s `app` duration that the glue
    /// passes to [`Exchange::on_response`]; not read (zero) when that header is off.
    pub fn app_start(&self) -> Stopwatch {
        Stopwatch::start_if(self.config.enabled && self.config.server_timing)
    }

    /// The request method (for the glue's `http.server.active_requests`).
    pub fn method(&self) -> &Method {
        &self.method
    }

    fn route_str(&self) -> Option<&str> {
        self.route
            .and_then(|i| self.config.routes.get(i))
            .map(|r| r.as_str())
    }

    fn query(&self) -> Option<&str> {
        split_target(&self.target).1.filter(|q| !q.is_empty())
    }

    /// The request body size known without counting: the request's single valid
    /// `Content-Length`, as the client sent it.
    pub fn known_request_size(&self) -> Option<u64> {
        self.request_content_length
    }

    /// The response size known without counting (after [`Exchange::on_response`]): 0 when
    /// the response cannot have a body, else the app's single valid `Content-Length`.
    pub fn known_response_size(&self) -> Option<u64> {
        let no_body = self.method == Method::HEAD
            || self.status.is_some_and(|s| {
                s.is_informational() || s == StatusCode::NO_CONTENT || s == StatusCode::NOT_MODIFIED
            });
        if no_body {
            Some(0)
        } else {
            self.response_content_length
        }
    }

    /// The fields shared by the start and end lines.
    fn record<'a>(
        &'a self,
        level: Level,
        event: &'static str,
        at: &'a str,
        query: &Option<&'a str>,
    ) -> Record<'a> {
        let cfg = &*self.config;
        Record {
            timestamp: at,
            level,
            event,
            service_name: cfg.service_name.as_deref(),
            request_id: &self.request_id,
            trace: self.trace.as_ref(),
            method: self.method.as_str(),
            scheme: &self.scheme,
            route: self.route_str(),
            status: None,
            duration: None,
            request_body_size: None,
            response_body_size: None,
            error_type: None,
            client_address: self.client_address,
            replaced: self.replaced.as_ref(),
            authority: self.authority.as_deref(),
            path: split_target(&self.target).0,
            query: *query,
            redaction: &cfg.redaction,
            user_agent: self.user_agent.as_ref().map(HeaderValue::as_bytes),
            user_agent_max: cfg.log.user_agent_max,
            headers: &self.logged_headers,
            context: self.context.as_ref(),
        }
    }

    /// Adds the middleware's response headers (shared by success and failure answers).
    fn decorate(&self, headers: &mut HeaderMap, app_time: Duration) {
        let cfg = &*self.config;
        security_headers::remove_headers(headers, &cfg.remove_response_headers);
        // One growth step instead of several while the baseline is added.
        headers.reserve(cfg.security.headers.len() + 2);
        cfg.security.apply(headers);
        cfg.response_rules.apply(headers);
        // insert() replaces whatever the app set: exactly one request id on the response.
        headers.insert(cfg.request_id.header.clone(), self.request_id_value.clone());
        if cfg.server_timing {
            let mut v = json::Small::default();
            v.push_bytes(b"app;dur=");
            v.push_bytes(json::duration_ms(app_time).as_str().as_bytes());
            if let Ok(v) = HeaderValue::from_str(v.as_str()) {
                headers.append(SERVER_TIMING, v);
            }
        }
    }

    fn capture_response(&mut self, headers: &HeaderMap) {
        let cfg = &*self.config;
        self.logged_headers.truncate(self.request_headers);
        if cfg.log.enabled {
            capture(
                headers,
                &cfg.log.response_headers,
                true,
                &cfg.redaction,
                &mut self.logged_headers,
            );
        }
    }
}

fn write_record(format: LogFormat, r: &Record<'_>, out: &mut String) {
    match format {
        LogFormat::Json => access_log::write_json(r, out),
        LogFormat::Pretty => access_log::write_pretty(r, out),
    }
}

/// Copies the allow-listed headers for the log. Secret headers are recorded as present only;
/// their values are never copied.
fn capture(
    headers: &HeaderMap,
    names: &[HeaderName],
    response: bool,
    redaction: &Redaction,
    out: &mut Vec<LoggedHeader>,
) {
    for name in names {
        if redaction.is_secret_header(name) {
            if headers.contains_key(name) {
                out.push(LoggedHeader {
                    response,
                    name: name.clone(),
                    value: None,
                });
            }
            continue;
        }
        for v in headers.get_all(name).iter().take(MAX_VALUES_PER_HEADER) {
            out.push(LoggedHeader {
                response,
                name: name.clone(),
                value: Some(v.clone()),
            });
        }
    }
}

/// The body size a message declares: its single, valid `Content-Length` (digits only), else
/// `None`.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let v = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let digits = v.as_bytes().trim_ascii();
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    // At most 19 digits cannot overflow a u64.
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The pieces of `lines` to write to stdout, one write each: every piece is exactly one
/// complete line with its `\n`. Hosts such as Spin turn each write of a component into one log
/// record, so a write holding several lines would glue JSON documents together.
pub fn stdout_writes(lines: &str) -> std::str::SplitInclusive<'_, char> {
    lines.split_inclusive('\n')
}

/// Splits `path?query`; the query is `None` without `?`.
fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// The request target to keep: path and query each cut to [`MAX_TARGET_PART_BYTES`]. Cutting
/// the whole target instead would cut the query of a long path short without any marker.
fn cut_target(target: &str) -> String {
    if target.len() <= MAX_TARGET_PART_BYTES {
        return target.to_owned();
    }
    let (path, query) = split_target(target);
    let path = cut(path, MAX_TARGET_PART_BYTES);
    let query = query.map(|q| cut(q, MAX_TARGET_PART_BYTES));
    let mut out = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A new random `service.instance.id` (UUID v4) for this instance's OTLP resource: delta
/// series of instances must never share one.
pub fn instance_id() -> String {
    let r = random_bytes();
    let bytes: [u8; 16] = r[..16].try_into().unwrap_or([1; 16]);
    request_id::generate(request_id::IdFormat::UuidV4, &bytes, SystemTime::UNIX_EPOCH)
}

/// Random bytes per exchange.
const RANDOM_PER_EXCHANGE: usize = 48;
/// Randomness is fetched from the OS for 20 exchanges at a time: a `getrandom` call costs
/// about a microsecond natively (a syscall), which alone would be a fifth of the per-request
/// budget. The bytes are still OS randomness, each handed out once. (In a forked child the
/// pool would be duplicated; components do not fork.)
const RANDOM_POOL: usize = RANDOM_PER_EXCHANGE * 20;

struct RandomPool {
    buf: [u8; RANDOM_POOL],
    used: usize,
    /// Whether the pool was filled before. The first fill is for one exchange only: a new
    /// instance may serve a single request (hosts that do not reuse instances), and a full
    /// pool costs such an instance about a fifth of its start-up.
    filled: bool,
}

thread_local! {
    static POOL: std::cell::RefCell<RandomPool> = const {
        std::cell::RefCell::new(RandomPool { buf: [0; RANDOM_POOL], used: RANDOM_POOL, filled: false })
    };
}

/// 48 fresh random bytes for one exchange.
fn random_bytes() -> [u8; RANDOM_PER_EXCHANGE] {
    let mut out = [0u8; RANDOM_PER_EXCHANGE];
    let pooled = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used + RANDOM_PER_EXCHANGE > RANDOM_POOL {
            let from = if pool.filled {
                0
            } else {
                RANDOM_POOL - RANDOM_PER_EXCHANGE
            };
            if !fill_random(&mut pool.buf[from..]) {
                fallback_random(&mut pool.buf[from..]);
            }
            pool.used = from;
            pool.filled = true;
        }
        let used = pool.used;
        out.copy_from_slice(&pool.buf[used..used + RANDOM_PER_EXCHANGE]);
        pool.used += RANDOM_PER_EXCHANGE;
    });
    if pooled.is_err() {
        // Thread-local storage already torn down (thread exit): ask the OS directly.
        if !fill_random(&mut out) {
            fallback_random(&mut out);
        }
    }
    out
}

/// Fills `buf` from the OS random source; false when it failed.
///
/// In a component this is one `wasi:random` `get-random-bytes` call: getrandom asks the host
/// for 8 bytes per call, and each call across the boundary costs more than a thousand
/// instructions (a pool of 960 bytes took 120 calls).
#[cfg(target_family = "wasm")]
fn fill_random(buf: &mut [u8]) -> bool {
    let bytes = wasip2::random::random::get_random_bytes(buf.len() as u64);
    let filled = bytes.len() == buf.len();
    if filled {
        buf.copy_from_slice(&bytes);
    }
    filled
}

/// Fills `buf` from the OS random source; false when it failed.
#[cfg(not(target_family = "wasm"))]
fn fill_random(buf: &mut [u8]) -> bool {
    getrandom::fill(buf).is_ok()
}

/// Used only if the OS random source fails: ids must still be unique and unpredictable enough
/// to not collide, and a request must never fail because of it. SplitMix64 over the clock, a
/// process-wide counter and a stack address.
fn fallback_random(buf: &mut [u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut state = nanos
        ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ (buf.as_ptr() as usize as u64).rotate_left(32);
    for chunk in buf.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests;

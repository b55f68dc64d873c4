//! Configuration from `EDGE_OBS_*` environment variables.
//!
//! Parsing never fails: a malformed value falls back to its default and is reported as a
//! [`ConfigIssue`], so a typo degrades one feature instead of taking the service down. Unknown
//! `EDGE_OBS_*` names are reported too, since a misspelled
//! variable would otherwise be silently ignored. Other variables are ignored.
//!
//! Switches accept `on`/`off` (also `true`/`false`, `1`/`0`, `yes`/`no`); choices and switches
//! are case-insensitive; surrounding whitespace is ignored. For list variables an invalid entry
//! is reported and skipped while the valid entries are used (if none is valid, the default
//! list is used); an empty value means an empty list.
//!
//! | Variable | Values | Default | Meaning |
//! |---|---|---|---|
//! | `EDGE_OBS_ENABLED` | `on` \| `off` | `on` | Master switch. `off`: requests and responses pass through untouched, nothing is logged. |
//! | `EDGE_OBS_SERVICE_NAME` | text, 1–128 chars | unset | Adds `service.name` to every log line. |
//! | `EDGE_OBS_BODY_SIZE` | `count` \| `content-length` | `count` | How body sizes are measured: count the bytes streamed through, or trust `Content-Length` (no body piping). |
//! | `EDGE_OBS_REQUEST_ID_HEADER` | header name | `x-request-id` | Header the request id is read from, forwarded in and returned in. |
//! | `EDGE_OBS_REQUEST_ID_ALIASES` | comma list of header names | `x-correlation-id` | Further headers a client id is read from, in order, after the primary one. |
//! | `EDGE_OBS_REQUEST_ID_MAX_LEN` | 1–1024 | `128` | Longest accepted client id. |
//! | `EDGE_OBS_REQUEST_ID_POLICY` | `accept` \| `reject` | `accept` | `reject`: never trust client ids, always generate. |
//! | `EDGE_OBS_REQUEST_ID_FORMAT` | `uuid-v7` \| `uuid-v4` | `uuid-v7` | Format of generated ids. |
//! | `EDGE_OBS_TRACE_CONTEXT` | `on` \| `off` | `on` | W3C Trace Context: continue or start a trace, forward `traceparent`. |
//! | `EDGE_OBS_TRACE_SAMPLE_RATIO` | decimal 0–1 | `1.0` | Share of new traces sampled, decided from the trace id as OpenTelemetry's `TraceIdRatioBased` does; a caller's `traceparent` keeps its sampled flag. |
//! | `EDGE_OBS_SPANS` | `on` \| `off` | `on` | Write the `edge_obs.span.v1` span event line for every sampled request. |
//! | `EDGE_OBS_SECURITY_HEADERS` | `on` \| `off` | `on` | Add the security header baseline to responses. |
//! | `EDGE_OBS_SECURITY_HEADERS_MODE` | `override` \| `if-absent` | `override` | `override` replaces app values (never duplicates); `if-absent` keeps them. |
//! | `EDGE_OBS_SECURITY_PROFILE` | `website` \| `api` \| `strict` | `website` | Which baseline values apply (README, Security headers); the per-header variables below still win. |
//! | `EDGE_OBS_SECURITY_STRICT_TRANSPORT_SECURITY` | value \| `off` | `max-age=63072000; includeSubDomains` | HSTS value; `off` drops just this header. |
//! | `EDGE_OBS_SECURITY_X_CONTENT_TYPE_OPTIONS` | value \| `off` | `nosniff` | |
//! | `EDGE_OBS_SECURITY_X_FRAME_OPTIONS` | value \| `off` | `DENY` | |
//! | `EDGE_OBS_SECURITY_REFERRER_POLICY` | value \| `off` | `no-referrer` | |
//! | `EDGE_OBS_SECURITY_CONTENT_SECURITY_POLICY` | value \| `off` | `frame-ancestors 'none'; object-src 'none'; base-uri 'self'` | Does not restrict scripts/styles, so apps using CDNs keep working. |
//! | `EDGE_OBS_SECURITY_PERMISSIONS_POLICY` | value \| `off` | `camera=(), microphone=(), geolocation=(), payment=(), usb=()` | |
//! | `EDGE_OBS_SECURITY_CROSS_ORIGIN_OPENER_POLICY` | value \| `off` | `same-origin` | |
//! | `EDGE_OBS_SECURITY_CROSS_ORIGIN_RESOURCE_POLICY` | value \| `off` | `same-origin` | |
//! | `EDGE_OBS_SECURITY_X_XSS_PROTECTION` | value \| `off` | `0` | `0` disables the legacy XSS auditor, as OWASP recommends. |
//! | `EDGE_OBS_SECURITY_CROSS_ORIGIN_EMBEDDER_POLICY` | value \| `off` | not sent (`strict`: `require-corp`) | |
//! | `EDGE_OBS_SECURITY_CACHE_CONTROL` | value \| `off` | not sent (`api`, `strict`: `no-store`) | In `override` mode it replaces the app's `Cache-Control`. |
//! | `EDGE_OBS_REMOVE_RESPONSE_HEADERS` | comma list of header names | `server,x-powered-by,x-aspnet-version,x-aspnetmvc-version` | Removed from responses (they reveal server software). |
//! | `EDGE_OBS_SERVER_TIMING` | `on` \| `off` | `on` | Append `Server-Timing: app;dur=<ms>` to responses. |
//! | `EDGE_OBS_REQUEST_SET_HEADERS` | `name: value` entries separated by newline or `\|` | empty | Set on the forwarded request (replacing values). |
//! | `EDGE_OBS_REQUEST_APPEND_HEADERS` | same | empty | Appended to the forwarded request. |
//! | `EDGE_OBS_REQUEST_REMOVE_HEADERS` | comma list of header names | empty | Removed from the forwarded request. |
//! | `EDGE_OBS_RESPONSE_SET_HEADERS` | same as request | empty | Set on responses (after the security baseline, so it can override it). |
//! | `EDGE_OBS_RESPONSE_APPEND_HEADERS` | same | empty | Appended to responses. |
//! | `EDGE_OBS_RESPONSE_REMOVE_HEADERS` | comma list | empty | Removed from responses. |
//! | `EDGE_OBS_LOG` | `on` \| `off` | `on` | Write access-log lines. |
//! | `EDGE_OBS_LOG_FORMAT` | `json` \| `pretty` | `json` | JSON lines, or one human-readable line per request. |
//! | `EDGE_OBS_LOG_LEVEL` | `debug` \| `info` \| `warn` \| `error` | `info` | Minimum level logged (info: <400, warn: 4xx, error: 5xx and failures). |
//! | `EDGE_OBS_LOG_SAMPLE_RATE` | decimal 0–1 | `1.0` | Share of successful, fast requests logged; errors and slow requests are always logged. |
//! | `EDGE_OBS_LOG_FOLLOW_TRACE` | `on` \| `off` | `off` | `on`: a successful, fast request is logged exactly when its trace is sampled (instead of by `EDGE_OBS_LOG_SAMPLE_RATE`), so sampled traces always have their log lines. |
//! | `EDGE_OBS_LOG_SLOW_MS` | 0–3600000 | `1000` | Requests taking at least this long are always logged; `0` disables the rule. |
//! | `EDGE_OBS_LOG_SKIP_PATHS` | comma list of exact paths | `/livez,/readyz,/healthz,/startupz` | Successful requests to these paths are not logged. |
//! | `EDGE_OBS_LOG_START` | `on` \| `off` | `off` | Also log a debug line when a request arrives (needs `EDGE_OBS_LOG_LEVEL=debug`). |
//! | `EDGE_OBS_LOG_USER_AGENT_MAX` | 0–1024 | `256` | `user_agent.original` truncated to this many characters; `0` omits it. |
//! | `EDGE_OBS_LOG_REQUEST_HEADERS` | comma list, at most 16 | empty | Request headers logged as `http.request.header.<name>`. |
//! | `EDGE_OBS_LOG_RESPONSE_HEADERS` | comma list, at most 16 | empty | Response headers logged as `http.response.header.<name>`. |
//! | `EDGE_OBS_REDACT_HEADERS` | comma list of header names | empty | Logged as `[REDACTED]`, in addition to `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key` (always redacted). |
//! | `EDGE_OBS_REDACT_QUERY_PARAMS` | comma list of names | `token,access_token,id_token,refresh_token,api_key,apikey,key,password,passwd,secret,client_secret,signature,sig,code,auth,session,jwt,x-amz-signature,x-amz-credential,x-amz-security-token` | Query parameters whose values are logged as `[REDACTED]` (case-insensitive, percent-decoded). Setting it replaces the default list. |
//! | `EDGE_OBS_METRICS` | `on` \| `off` | `on` | Write the `edge_obs.metric.v1` event line for every request. |
//! | `EDGE_OBS_ROUTES` | comma list of templates | empty | Route templates for `http.route`: `/users/{id}`, `/static/*`; first match wins. |
//! | `EDGE_OBS_TRUSTED_PROXY_HOPS` | 0–32 | `0` | Trusted proxies in front; `client.address` is the N-th entry from the right of `Forwarded`/`X-Forwarded-For`. `0`: never read them. |
//! | `EDGE_OBS_CLIENT_ADDRESS_HEADER` | `auto` \| `forwarded` \| `x-forwarded-for` | `auto` | Header with the client address; set it to the one your proxies write. `auto` reads whichever of the two a request has, and neither when it has both: a client can add the header its proxy does not write (a `Forwarded: for=...` behind a proxy that appends only `X-Forwarded-For`), so such a request gets the peer address (the nearest proxy) instead of one the client chose. Proxies that write both need the header named. |
//! | `EDGE_OBS_PEER_ADDRESS_HEADER` | header name \| `off` | `spin-client-addr` | Header in which the host passes the TCP peer address (`ip:port`; Spin and runtime-host set it); `client.address` when no trusted proxy header applies. |
//! | `EDGE_OBS_CORS_ALLOW_ORIGINS` | comma list of origins (`https://app.example.com`), patterns (`https://*.example.com`) or `*` | empty | CORS is on when set: these origins may read responses; preflights are answered by the middleware. `null` is refused. |
//! | `EDGE_OBS_CORS_ALLOW_METHODS` | comma list of methods | `GET,HEAD,POST` | `Access-Control-Allow-Methods` of preflight answers. |
//! | `EDGE_OBS_CORS_ALLOW_HEADERS` | comma list of header names, or `*` | empty | Request headers a page may send (`*`: whatever the preflight asks for). |
//! | `EDGE_OBS_CORS_EXPOSE_HEADERS` | comma list of header names | empty | `Access-Control-Expose-Headers`: response headers a page may read. |
//! | `EDGE_OBS_CORS_ALLOW_CREDENTIALS` | `on` \| `off` | `off` | `Access-Control-Allow-Credentials: true`; a configuration error together with the origin `*`. |
//! | `EDGE_OBS_CORS_MAX_AGE` | 0–86400 | unset | `Access-Control-Max-Age` (seconds browsers cache a preflight answer). |
//! | `EDGE_OBS_LOG_CONTEXT` | `on` \| `off` | `on` | Move response headers with the context prefix into the access line as `context.<name>` (at most 16, values cut to 256 characters, redaction applies) and remove them from the response. `off`: they pass through untouched. |
//! | `EDGE_OBS_LOG_CONTEXT_PREFIX` | lowercase header name prefix, 1–64 chars | `obs-context-` | Prefix of the app's log context response headers. |
//! | `EDGE_OBS_OTLP_SIGNALS` | comma list of `traces`, `metrics`, `logs` | `traces,metrics,logs` | Signals the component exports over OTLP itself (each also needs an endpoint, see below). |
//! | `EDGE_OBS_OTLP_BATCH_SIZE` | 1–4096 | `512` | A batch is sent when this many spans and log records are buffered (at most `EDGE_OBS_OTLP_MAX_QUEUE`). |
//! | `EDGE_OBS_OTLP_BATCH_AGE_MS` | 0–60000 | `1000` | A batch is sent when its oldest item is this old; `0`: after every request. Also the least time between two warning lines. |
//! | `EDGE_OBS_OTLP_MAX_QUEUE` | 1–65536 | `2048` | Most spans and log records an instance holds (the batch being sent included); more are dropped and counted. |
//! | `EDGE_OBS_OTLP_MAX_BYTES` | 65536–67108864 | `1048576` | Most encoded bytes an instance holds (the batch being sent included); more are dropped and counted. |
//!
//! OTLP export is off unless an endpoint is set. It reads the standard OpenTelemetry names
//! (the values are checked and reported like the `EDGE_OBS_*` ones; other `OTEL_*` names are
//! left to the host and never reported):
//!
//! | Variable | Values | Default | Meaning |
//! |---|---|---|---|
//! | `OTEL_SDK_DISABLED` | `true` \| `false` | `false` | `true`: no export. |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `http(s)://host[:port][/path]` | unset | Base URL; `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended. |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._METRICS_ENDPOINT`, `..._LOGS_ENDPOINT` | full URL | unset | One signal's URL, used as it is (wins over the base URL). |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` | `http/protobuf` | The only protocol the component speaks; another value turns export off. |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | `name=value,...` (values percent-decoded), at most 32 | empty | Sent with every export; values are never printed. |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` | 1–60000 (ms) | `10000` | Longest wait for one export request. |
//! | `OTEL_SERVICE_NAME` | text, 1–128 chars | `service.name` of `OTEL_RESOURCE_ATTRIBUTES`, else `EDGE_OBS_SERVICE_NAME`, else `unknown_service` | `service.name` of the exported resource. |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,...` (percent-decoded), at most 32, 255 chars each | empty | Further resource attributes (`service.instance.id` is set per instance by the component). |

use std::fmt;

use http::HeaderName;

use crate::access_log::{
    Level, LogConfig, LogContextConfig, LogFormat, MAX_LOGGED_HEADERS, SERVICE_NAME_MAX_CHARS,
    USER_AGENT_MAX_LIMIT,
};
use crate::client_addr::{ClientAddrConfig, MAX_TRUSTED_HOPS, SPIN_CLIENT_ADDR, Source};
use crate::cors::{self, CorsConfig, OriginRule};
use crate::header_rules::{self, FORBIDDEN_TO_SET, HeaderRules};
use crate::json;
use crate::otlp::{self, Endpoint, ExportHeaders, OtlpConfig, Signal};
use crate::redact::{self, Redaction};
use crate::request_id::{IdFormat, MAX_LEN_LIMIT, Policy, RequestIdConfig};
use crate::route::RouteTemplate;
use crate::security_headers::{self, BASELINE, Mode, Profile, SecurityHeaders};
use crate::trace_context::{RatioSampler, TRACEPARENT, TRACESTATE};

/// Prefix of every variable read.
pub const PREFIX: &str = "EDGE_OBS_";

/// Bad values in a [`ConfigIssue`] are cut to this many characters.
pub const ISSUE_VALUE_MAX_CHARS: usize = 128;

/// Every variable the middleware reads.
pub const KNOWN_VARIABLES: &[&str] = &[
    "EDGE_OBS_ENABLED",
    "EDGE_OBS_SERVICE_NAME",
    "EDGE_OBS_BODY_SIZE",
    "EDGE_OBS_REQUEST_ID_HEADER",
    "EDGE_OBS_REQUEST_ID_ALIASES",
    "EDGE_OBS_REQUEST_ID_MAX_LEN",
    "EDGE_OBS_REQUEST_ID_POLICY",
    "EDGE_OBS_REQUEST_ID_FORMAT",
    "EDGE_OBS_TRACE_CONTEXT",
    "EDGE_OBS_TRACE_SAMPLE_RATIO",
    "EDGE_OBS_SPANS",
    "EDGE_OBS_SECURITY_HEADERS",
    "EDGE_OBS_SECURITY_HEADERS_MODE",
    "EDGE_OBS_SECURITY_PROFILE",
    "EDGE_OBS_SECURITY_STRICT_TRANSPORT_SECURITY",
    "EDGE_OBS_SECURITY_X_CONTENT_TYPE_OPTIONS",
    "EDGE_OBS_SECURITY_X_FRAME_OPTIONS",
    "EDGE_OBS_SECURITY_REFERRER_POLICY",
    "EDGE_OBS_SECURITY_CONTENT_SECURITY_POLICY",
    "EDGE_OBS_SECURITY_PERMISSIONS_POLICY",
    "EDGE_OBS_SECURITY_CROSS_ORIGIN_OPENER_POLICY",
    "EDGE_OBS_SECURITY_CROSS_ORIGIN_RESOURCE_POLICY",
    "EDGE_OBS_SECURITY_X_XSS_PROTECTION",
    "EDGE_OBS_SECURITY_CROSS_ORIGIN_EMBEDDER_POLICY",
    "EDGE_OBS_SECURITY_CACHE_CONTROL",
    "EDGE_OBS_REMOVE_RESPONSE_HEADERS",
    "EDGE_OBS_SERVER_TIMING",
    "EDGE_OBS_REQUEST_SET_HEADERS",
    "EDGE_OBS_REQUEST_APPEND_HEADERS",
    "EDGE_OBS_REQUEST_REMOVE_HEADERS",
    "EDGE_OBS_RESPONSE_SET_HEADERS",
    "EDGE_OBS_RESPONSE_APPEND_HEADERS",
    "EDGE_OBS_RESPONSE_REMOVE_HEADERS",
    "EDGE_OBS_LOG",
    "EDGE_OBS_LOG_FORMAT",
    "EDGE_OBS_LOG_LEVEL",
    "EDGE_OBS_LOG_SAMPLE_RATE",
    "EDGE_OBS_LOG_FOLLOW_TRACE",
    "EDGE_OBS_LOG_SLOW_MS",
    "EDGE_OBS_LOG_SKIP_PATHS",
    "EDGE_OBS_LOG_START",
    "EDGE_OBS_LOG_USER_AGENT_MAX",
    "EDGE_OBS_LOG_REQUEST_HEADERS",
    "EDGE_OBS_LOG_RESPONSE_HEADERS",
    "EDGE_OBS_REDACT_HEADERS",
    "EDGE_OBS_REDACT_QUERY_PARAMS",
    "EDGE_OBS_METRICS",
    "EDGE_OBS_ROUTES",
    "EDGE_OBS_TRUSTED_PROXY_HOPS",
    "EDGE_OBS_CLIENT_ADDRESS_HEADER",
    "EDGE_OBS_PEER_ADDRESS_HEADER",
    "EDGE_OBS_CORS_ALLOW_ORIGINS",
    "EDGE_OBS_CORS_ALLOW_METHODS",
    "EDGE_OBS_CORS_ALLOW_HEADERS",
    "EDGE_OBS_CORS_EXPOSE_HEADERS",
    "EDGE_OBS_CORS_ALLOW_CREDENTIALS",
    "EDGE_OBS_CORS_MAX_AGE",
    "EDGE_OBS_LOG_CONTEXT",
    "EDGE_OBS_LOG_CONTEXT_PREFIX",
    "EDGE_OBS_OTLP_SIGNALS",
    "EDGE_OBS_OTLP_BATCH_SIZE",
    "EDGE_OBS_OTLP_BATCH_AGE_MS",
    "EDGE_OBS_OTLP_MAX_QUEUE",
    "EDGE_OBS_OTLP_MAX_BYTES",
];

/// The standard OpenTelemetry variables the middleware reads (for its own OTLP export).
pub const OTEL_VARIABLES: &[&str] = &[
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
];

/// The name of variable `i` (an index into [`KNOWN_VARIABLES`], then [`OTEL_VARIABLES`]).
fn name_of(i: usize) -> &'static str {
    KNOWN_VARIABLES
        .get(i)
        .or_else(|| OTEL_VARIABLES.get(i - KNOWN_VARIABLES.len()))
        .copied()
        .unwrap_or("")
}

/// An integer setting: name, accepted range, default, reason when out of range, default as
/// shown in the issue.
type NumberSetting = (&'static str, (u64, u64), u64, &'static str, &'static str);

/// How body sizes are measured (`EDGE_OBS_BODY_SIZE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodySizeMode {
    /// The glue pipes bodies through and counts bytes (exact, also for chunked bodies); the
    /// default.
    Count,
    /// Sizes come from `Content-Length` only (bodies are not piped; unknown when absent).
    ContentLength,
}

/// The complete configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Master switch (`EDGE_OBS_ENABLED`). When false the glue should pass requests through
    /// untouched; the core also leaves headers alone and writes nothing.
    pub enabled: bool,
    /// `service.name` for log lines.
    pub service_name: Option<String>,
    /// How the glue measures body sizes.
    pub body_size_mode: BodySizeMode,
    /// Request id handling.
    pub request_id: RequestIdConfig,
    /// Whether W3C Trace Context is handled (`EDGE_OBS_TRACE_CONTEXT`).
    pub trace_context: bool,
    /// How new traces are sampled (`EDGE_OBS_TRACE_SAMPLE_RATIO`).
    pub trace_sampler: RatioSampler,
    /// Whether span event lines are written for sampled requests (`EDGE_OBS_SPANS`).
    pub spans: bool,
    /// Security header baseline.
    pub security: SecurityHeaders,
    /// Response headers removed (`EDGE_OBS_REMOVE_RESPONSE_HEADERS`).
    pub remove_response_headers: Vec<HeaderName>,
    /// Whether `Server-Timing: app;dur=` is appended (`EDGE_OBS_SERVER_TIMING`).
    pub server_timing: bool,
    /// Header rules for the forwarded request.
    pub request_rules: HeaderRules,
    /// Header rules for the response.
    pub response_rules: HeaderRules,
    /// Access log settings (its `enabled` is `EDGE_OBS_LOG`).
    pub log: LogConfig,
    /// Secret headers and query parameters.
    pub redaction: Redaction,
    /// Whether metric event lines are written (`EDGE_OBS_METRICS`).
    pub metrics: bool,
    /// Route templates, in match order.
    pub routes: Vec<RouteTemplate>,
    /// Client address settings.
    pub client_addr: ClientAddrConfig,
    /// CORS (`EDGE_OBS_CORS_*`); off unless origins are set.
    pub cors: CorsConfig,
    /// Log context from the app's response headers (`EDGE_OBS_LOG_CONTEXT*`).
    pub log_context: LogContextConfig,
    /// The component's own OTLP export (`OTEL_*`, `EDGE_OBS_OTLP_*`); off without endpoint.
    pub otlp: OtlpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_env(std::iter::empty()).0
    }
}

impl Config {
    /// Whether the glue must pipe bodies through the middleware to count their bytes: only
    /// in `count` mode and when some output (log or metrics) uses the sizes.
    pub fn counts_body_bytes(&self) -> bool {
        self.enabled
            && self.body_size_mode == BodySizeMode::Count
            && (self.log.enabled || self.metrics || self.otlp.exports(Signal::Metrics))
    }

    /// Whether any output of an exchange carries its time: the log line, the span (which
    /// needs trace context), the metric event, `Server-Timing` or the OTLP export. When none
    /// does (the request id alone, say) an exchange reads no clock: each read is a host call.
    pub fn times_exchanges(&self) -> bool {
        self.enabled
            && (self.log.enabled
                || self.metrics
                || (self.spans && self.trace_context)
                || self.server_timing
                || self.otlp.enabled())
    }

    /// Parses the configuration from environment variables. Never fails; see the module docs.
    pub fn from_env<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> (Config, Vec<ConfigIssue>) {
        Config::read(vars, true)
    }

    /// [`Config::from_env`] for a delivery that cannot export OTLP itself: library mode has no
    /// task after the response of its own, so it leaves the `OTEL_*` and `EDGE_OBS_OTLP_*`
    /// settings to the host and keeps its event lines on.
    pub fn from_env_without_export<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> (Config, Vec<ConfigIssue>) {
        Config::read(vars, false)
    }

    fn read<I: IntoIterator<Item = (String, String)>>(
        vars: I,
        own_export: bool,
    ) -> (Config, Vec<ConfigIssue>) {
        let mut env = Env::default();
        for (name, value) in vars {
            let ours = name
                .get(..PREFIX.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(PREFIX));
            if !ours {
                if let Some(i) = OTEL_VARIABLES.iter().position(|k| *k == name) {
                    env.set(KNOWN_VARIABLES.len() + i, value);
                }
                continue;
            }
            match KNOWN_VARIABLES.iter().position(|k| *k == name) {
                Some(i) => env.set(i, value),
                None => {
                    // The value of an unknown variable is not shown: we cannot know whether
                    // it is a secret (e.g. a misspelled header rule with a token).
                    env.issue(&name, json::REDACTED, "unknown variable", "ignored");
                }
            }
        }
        let config = env.build(own_export);
        (config, env.issues)
    }
}

/// A variable with a malformed value (or an unknown `EDGE_OBS_*` variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The variable name.
    pub variable: String,
    /// The bad value (or list entry), cut to 128 characters; raw, escape before printing.
    /// Values that may hold secrets are shown as `[REDACTED]`.
    pub value: String,
    /// What is wrong.
    pub reason: String,
    /// What is used instead.
    pub default_used: String,
}

impl ConfigIssue {
    fn new(variable: &str, value: &str, reason: &str, default_used: &str) -> Self {
        let cut = value
            .char_indices()
            .nth(ISSUE_VALUE_MAX_CHARS)
            .map(|(i, _)| i);
        let mut v = value[..cut.unwrap_or(value.len())].to_owned();
        if cut.is_some() {
            v.push_str(json::TRUNCATION_MARKER);
        }
        ConfigIssue {
            variable: variable.to_owned(),
            value: v,
            reason: reason.to_owned(),
            default_used: default_used.to_owned(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    /// `EDGE_OBS_LOG_LEVEL="verbose": expected one of ...; using info`, with the value
    /// JSON-escaped so control characters cannot break the message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut variable = String::new();
        json::escape_into(&mut variable, &self.variable);
        let mut value = String::new();
        json::escape_into(&mut value, &self.value);
        write!(
            f,
            "{variable}=\"{value}\": {}; using {}",
            self.reason, self.default_used
        )
    }
}

/// Collected variable values and issues while parsing.
///
/// The helpers are deliberately non-generic and take static reason texts: configuration is
/// parsed once, so what matters is the code size of the component, not speed.
#[derive(Default)]
struct Env {
    values: Vec<(usize, String)>,
    issues: Vec<ConfigIssue>,
}

const SWITCH_REASON: &str = "expected on or off";
const ENTRY_IGNORED: &str = "entry ignored";
/// Accepted switch words: the first four mean off, the others on.
const SWITCH_WORDS: [&str; 8] = ["off", "false", "0", "no", "on", "true", "1", "yes"];

impl Env {
    fn set(&mut self, index: usize, value: String) {
        // Last definition wins, as in a shell.
        self.values.retain(|(i, _)| *i != index);
        self.values.push((index, value));
    }

    /// Takes the value of a variable (each is read once). Looks through the variables that
    /// are set (usually none or a few), not through every known name: settings are read by
    /// every new instance, and some hosts create one per request.
    #[inline(never)]
    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.values.iter().position(|(i, _)| name_of(*i) == name)?;
        Some(self.values.swap_remove(at).1)
    }

    #[inline(never)]
    fn issue(&mut self, name: &str, value: &str, reason: &str, default_used: &str) {
        self.issues
            .push(ConfigIssue::new(name, value, reason, default_used));
    }

    #[inline(never)]
    fn switch(&mut self, name: &str, default: bool) -> bool {
        let Some(raw) = self.take(name) else {
            return default;
        };
        let word = header_rules::trim(&raw);
        match SWITCH_WORDS
            .iter()
            .position(|w| w.eq_ignore_ascii_case(word))
        {
            Some(i) => i >= 4,
            None => {
                self.issue(
                    name,
                    &raw,
                    SWITCH_REASON,
                    if default { "on" } else { "off" },
                );
                default
            }
        }
    }

    /// Index of the value in `options` (case-insensitive); `options[0]` is the default.
    #[inline(never)]
    fn choice(&mut self, name: &str, options: &[&str], reason: &str) -> usize {
        let Some(raw) = self.take(name) else {
            return 0;
        };
        let wanted = header_rules::trim(&raw);
        match options.iter().position(|o| o.eq_ignore_ascii_case(wanted)) {
            Some(i) => i,
            None => {
                self.issue(name, &raw, reason, options[0]);
                0
            }
        }
    }

    /// An integer in `min..=max`; `reason` and `default_text` describe range and default.
    #[inline(never)]
    fn number(
        &mut self,
        name: &str,
        range: (u64, u64),
        default: u64,
        reason: &str,
        default_text: &str,
    ) -> u64 {
        let Some(raw) = self.take(name) else {
            return default;
        };
        match header_rules::trim(&raw).parse::<u64>() {
            Ok(n) if (range.0..=range.1).contains(&n) => n,
            _ => {
                self.issue(name, &raw, reason, default_text);
                default
            }
        }
    }

    /// After parsing a list: when entries were given but none was valid (issues since
    /// `first_issue`), the default list is used instead of an empty one, so a typo cannot, for
    /// example, switch query redaction off. Returns whether to use the default.
    #[inline(never)]
    fn all_invalid(&mut self, first_issue: usize, parsed: usize, default: &str) -> bool {
        let fall_back = parsed == 0 && self.issues.len() > first_issue && !default.is_empty();
        if fall_back {
            for issue in &mut self.issues[first_issue..] {
                issue.default_used = default.to_owned();
            }
        }
        fall_back
    }

    /// The raw list text: the value, or `default` when unset.
    #[inline(never)]
    fn list_text(&mut self, name: &str, default: &str) -> String {
        self.take(name).unwrap_or_else(|| default.to_owned())
    }

    /// A comma list of header names; invalid or `reserved` names are reported and skipped.
    fn header_names(
        &mut self,
        name: &str,
        default: &str,
        reserved: &dyn Fn(&HeaderName) -> Option<&'static str>,
    ) -> Vec<HeaderName> {
        let mut text = self.list_text(name, default);
        loop {
            let first_issue = self.issues.len();
            let mut out: Vec<HeaderName> = Vec::new();
            for entry in header_rules::split_list(&text) {
                match header_rules::parse_name(entry) {
                    None => self.issue(name, entry, "invalid header name", ENTRY_IGNORED),
                    Some(h) => match reserved(&h) {
                        Some(why) => self.issue(name, entry, why, ENTRY_IGNORED),
                        None if out.contains(&h) => {}
                        None => out.push(h),
                    },
                }
            }
            if !self.all_invalid(first_issue, out.len(), default) {
                return out;
            }
            // The default parses without issues, so this runs at most twice.
            text = default.to_owned();
        }
    }

    fn build(&mut self, own_export: bool) -> Config {
        let enabled = self.switch("EDGE_OBS_ENABLED", true);
        let service_name = self.service_name("EDGE_OBS_SERVICE_NAME");
        let body_size_mode = [BodySizeMode::Count, BodySizeMode::ContentLength][self.choice(
            "EDGE_OBS_BODY_SIZE",
            &["count", "content-length"],
            "expected one of: count, content-length",
        )];
        let redaction = self.redaction();
        let request_id = self.request_id(&redaction);
        let trace_context = self.switch("EDGE_OBS_TRACE_CONTEXT", true);
        let trace_sampler = RatioSampler::from_ppm(self.rate("EDGE_OBS_TRACE_SAMPLE_RATIO"));
        // The event lines are for a reader of stdout (runtime-host, `runtime-host collect`):
        // when the component exports a signal itself, its line is off unless asked for.
        // Library mode cannot export (`Config::from_env_without_export`).
        let otlp = if own_export {
            self.otlp(service_name.as_deref())
        } else {
            OtlpConfig::default()
        };
        let spans = self.switch("EDGE_OBS_SPANS", !otlp.exports(Signal::Traces));
        let security = self.security();
        let remove_response_headers = self.header_names(
            "EDGE_OBS_REMOVE_RESPONSE_HEADERS",
            security_headers::DEFAULT_REMOVE,
            &|_| None,
        );
        let server_timing = self.switch("EDGE_OBS_SERVER_TIMING", true);
        let id_header = &request_id.header;
        let request_managed = |h: &HeaderName| -> Option<&'static str> {
            (h == id_header || *h == TRACEPARENT || *h == TRACESTATE)
                .then_some("managed by the middleware (request id / trace context)")
        };
        let request_rules = self.rules(
            [
                "EDGE_OBS_REQUEST_SET_HEADERS",
                "EDGE_OBS_REQUEST_APPEND_HEADERS",
                "EDGE_OBS_REQUEST_REMOVE_HEADERS",
            ],
            &request_managed,
        );
        let response_managed = |h: &HeaderName| -> Option<&'static str> {
            (h == id_header).then_some("managed by the middleware (request id)")
        };
        let response_rules = self.rules(
            [
                "EDGE_OBS_RESPONSE_SET_HEADERS",
                "EDGE_OBS_RESPONSE_APPEND_HEADERS",
                "EDGE_OBS_RESPONSE_REMOVE_HEADERS",
            ],
            &response_managed,
        );
        let log = self.log();
        let metrics = self.switch("EDGE_OBS_METRICS", !otlp.exports(Signal::Metrics));
        let routes = self.routes();
        let client_addr = ClientAddrConfig {
            trusted_hops: self.number(
                "EDGE_OBS_TRUSTED_PROXY_HOPS",
                (0, MAX_TRUSTED_HOPS as u64),
                0,
                "expected an integer from 0 to 32",
                "0",
            ) as usize,
            source: [Source::Auto, Source::Forwarded, Source::XForwardedFor][self.choice(
                "EDGE_OBS_CLIENT_ADDRESS_HEADER",
                &["auto", "forwarded", "x-forwarded-for"],
                "expected one of: auto, forwarded, x-forwarded-for",
            )],
            peer_header: self.peer_header(),
        };
        let cors = self.cors();
        let log_context = self.log_context();
        Config {
            enabled,
            service_name,
            body_size_mode,
            request_id,
            trace_context,
            trace_sampler,
            spans,
            security,
            remove_response_headers,
            server_timing,
            request_rules,
            response_rules,
            log,
            redaction,
            metrics,
            routes,
            client_addr,
            cors,
            log_context,
            otlp,
        }
    }

    /// The component's OTLP export: endpoints and the standard `OTEL_*` settings, then the
    /// `EDGE_OBS_OTLP_*` bounds. Every value is read (and checked) even when export is off,
    /// so a mistake is reported before someone relies on it.
    #[inline(never)]
    fn otlp(&mut self, edge_service_name: Option<&str>) -> OtlpConfig {
        const DISABLED: &str = "OTEL_SDK_DISABLED";
        let disabled = match self.take(DISABLED) {
            None => false,
            Some(raw) => match header_rules::trim(&raw) {
                v if v.eq_ignore_ascii_case("true") => true,
                v if v.eq_ignore_ascii_case("false") || v.is_empty() => false,
                _ => {
                    self.issue(DISABLED, &raw, "expected true or false", "false");
                    false
                }
            },
        };
        let base = self.endpoint("OTEL_EXPORTER_OTLP_ENDPOINT");
        let per_signal = [
            self.endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            self.endpoint("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
            self.endpoint("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
        ];
        let signals = self.signals();
        const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
        let mut export = !disabled;
        if let Some(raw) = self.take(PROTOCOL)
            && !header_rules::trim(&raw).eq_ignore_ascii_case("http/protobuf")
        {
            self.issue(
                PROTOCOL,
                &raw,
                "the component only speaks http/protobuf",
                "no export",
            );
            export = false;
        }
        // Built once at the end (no default to overwrite and drop field by field).
        let mut endpoints = [None, None, None];
        if export {
            for ((slot, own), signal) in endpoints.iter_mut().zip(per_signal).zip(Signal::ALL) {
                *slot = own
                    .or_else(|| base.as_ref().map(|b| b.for_signal(signal)))
                    .filter(|_| signals[signal.index()]);
            }
        }
        let headers = self.export_headers();
        // The numeric settings in one table, so their parsing is one loop.
        const NUMBERS: [NumberSetting; 5] = [
            (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                (1, 60_000),
                otlp::defaults::TIMEOUT_MS,
                "expected milliseconds from 1 to 60000",
                "10000",
            ),
            (
                "EDGE_OBS_OTLP_BATCH_SIZE",
                (1, 4096),
                otlp::defaults::BATCH_SIZE,
                "expected an integer from 1 to 4096",
                "512",
            ),
            (
                "EDGE_OBS_OTLP_BATCH_AGE_MS",
                (0, 60_000),
                otlp::defaults::BATCH_AGE_MS,
                "expected milliseconds from 0 to 60000",
                "1000",
            ),
            (
                "EDGE_OBS_OTLP_MAX_QUEUE",
                (1, 65_536),
                otlp::defaults::MAX_QUEUE,
                "expected an integer from 1 to 65536",
                "2048",
            ),
            (
                "EDGE_OBS_OTLP_MAX_BYTES",
                (65_536, 64 << 20),
                otlp::defaults::MAX_BYTES,
                "expected an integer from 65536 to 67108864",
                "1048576",
            ),
        ];
        let [timeout, mut batch_items, batch_age, max_items, max_bytes] =
            NUMBERS.map(|(name, range, default, reason, text)| {
                self.number(name, range, default, reason, text)
            });
        let mut resource = self.resource_attributes();
        let from_resource = resource
            .iter()
            .position(|(k, _)| k == crate::access_log::fields::SERVICE_NAME)
            .map(|i| resource.remove(i).1);
        let service_name = self
            .service_name("OTEL_SERVICE_NAME")
            .or(from_resource)
            .or_else(|| edge_service_name.map(str::to_owned))
            .unwrap_or_else(|| otlp::defaults::SERVICE_NAME.to_owned());
        if batch_items > max_items {
            // A batch that can never fill would only ever be sent by age.
            self.issue(
                "EDGE_OBS_OTLP_BATCH_SIZE",
                json::small_u64(batch_items).as_str(),
                "larger than EDGE_OBS_OTLP_MAX_QUEUE",
                "EDGE_OBS_OTLP_MAX_QUEUE",
            );
            batch_items = max_items;
        }
        OtlpConfig {
            endpoints,
            headers,
            timeout: std::time::Duration::from_millis(timeout),
            service_name,
            resource,
            batch_items: batch_items as usize,
            batch_age: std::time::Duration::from_millis(batch_age),
            max_items: max_items as usize,
            max_bytes: max_bytes as usize,
        }
    }

    /// An endpoint URL variable; a bad one is reported (its query and credentials, which may
    /// be tokens, are not shown) and that endpoint is unset.
    #[inline(never)]
    fn endpoint(&mut self, name: &str) -> Option<Endpoint> {
        let raw = self.take(name)?;
        if header_rules::trim(&raw).is_empty() {
            return None;
        }
        match Endpoint::parse(&raw) {
            Ok(e) => Some(e),
            Err(why) => {
                let shown = if raw.contains(['@', '?']) {
                    json::REDACTED
                } else {
                    &raw
                };
                self.issue(name, shown, why, "unset");
                None
            }
        }
    }

    /// `EDGE_OBS_OTLP_SIGNALS`: whether each signal is wanted.
    #[inline(never)]
    fn signals(&mut self) -> [bool; 3] {
        const NAME: &str = "EDGE_OBS_OTLP_SIGNALS";
        const ALL: &str = "traces,metrics,logs";
        let mut text = self.list_text(NAME, ALL);
        loop {
            let first_issue = self.issues.len();
            let mut wanted = [false; 3];
            let mut parsed = 0;
            for entry in header_rules::split_list(&text) {
                match Signal::ALL
                    .iter()
                    .find(|s| s.as_str().eq_ignore_ascii_case(entry))
                {
                    Some(s) => {
                        wanted[s.index()] = true;
                        parsed += 1;
                    }
                    None => self.issue(
                        NAME,
                        entry,
                        "expected traces, metrics or logs",
                        ENTRY_IGNORED,
                    ),
                }
            }
            if !self.all_invalid(first_issue, parsed, ALL) {
                return wanted;
            }
            text = ALL.to_owned();
        }
    }

    /// `OTEL_EXPORTER_OTLP_HEADERS`. Values are tokens: no issue ever shows one, only the
    /// position of the bad entry and its name when that is valid.
    #[inline(never)]
    fn export_headers(&mut self) -> ExportHeaders {
        const NAME: &str = "OTEL_EXPORTER_OTLP_HEADERS";
        let text = self.list_text(NAME, "");
        let mut out: Vec<(HeaderName, http::HeaderValue)> = Vec::new();
        for (n, entry) in header_rules::split_list(&text).enumerate() {
            let parsed = entry.split_once('=').and_then(|(k, v)| {
                let name = header_rules::parse_name(&otlp::percent_decode(k)?)?;
                let value = otlp::percent_decode(header_rules::trim(v))?;
                Some((name, http::HeaderValue::from_str(&value).ok()?))
            });
            let reason = match &parsed {
                None => "expected name=value with a valid header name and value",
                Some((h, _)) if FORBIDDEN_TO_SET.contains(&h.as_str()) || h == "content-type" => {
                    "set by the exporter itself"
                }
                Some(_) if out.len() >= 32 => "at most 32 headers",
                Some(_) => "",
            };
            if reason.is_empty() {
                out.extend(parsed);
            } else {
                let mut shown = json::Small::default();
                shown.push_bytes(b"entry ");
                shown.push_u64(n as u64 + 1);
                shown.push(b' ');
                shown.push_bytes(json::REDACTED.as_bytes());
                self.issue(NAME, shown.as_str(), reason, ENTRY_IGNORED);
            }
        }
        ExportHeaders(out)
    }

    /// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` entries; later entries win over earlier ones.
    #[inline(never)]
    fn resource_attributes(&mut self) -> Vec<(String, String)> {
        const NAME: &str = "OTEL_RESOURCE_ATTRIBUTES";
        let text = self.list_text(NAME, "");
        let mut out: Vec<(String, String)> = Vec::new();
        for entry in header_rules::split_list(&text) {
            let parsed = entry.split_once('=').and_then(|(k, v)| {
                let k = otlp::percent_decode(header_rules::trim(k))?;
                let v = otlp::percent_decode(header_rules::trim(v))?;
                let ok = |s: &str| s.chars().count() <= 255 && !s.chars().any(char::is_control);
                (!k.is_empty() && ok(&k) && ok(&v)).then_some((k, v))
            });
            let reason = match &parsed {
                None => "expected key=value, at most 255 characters each, no control characters",
                Some((k, _)) if k == "service.instance.id" => {
                    "set per instance by the component (delta series must not be shared)"
                }
                Some((k, _)) if out.len() >= 32 && !out.iter().any(|(o, _)| o == k) => {
                    "at most 32 attributes"
                }
                Some(_) => "",
            };
            match parsed {
                Some((k, v)) if reason.is_empty() => {
                    out.retain(|(o, _)| *o != k);
                    out.push((k, v));
                }
                _ => self.issue(NAME, entry, reason, ENTRY_IGNORED),
            }
        }
        out
    }

    /// `EDGE_OBS_PEER_ADDRESS_HEADER`: a header name, or `off` (also empty) for none.
    fn peer_header(&mut self) -> Option<HeaderName> {
        const NAME: &str = "EDGE_OBS_PEER_ADDRESS_HEADER";
        let default = HeaderName::from_static(SPIN_CLIENT_ADDR);
        let Some(raw) = self.take(NAME) else {
            return Some(default);
        };
        let v = header_rules::trim(&raw);
        if v.is_empty() || SWITCH_WORDS[..4].iter().any(|w| w.eq_ignore_ascii_case(v)) {
            return None;
        }
        match header_rules::parse_name(v) {
            Some(h) => Some(h),
            None => {
                self.issue(NAME, &raw, "invalid header name", SPIN_CLIENT_ADDR);
                Some(default)
            }
        }
    }

    fn cors(&mut self) -> CorsConfig {
        const ORIGINS: &str = "EDGE_OBS_CORS_ALLOW_ORIGINS";
        let text = self.list_text(ORIGINS, "");
        let mut origins: Vec<OriginRule> = Vec::new();
        for entry in header_rules::split_list(&text) {
            match OriginRule::parse(entry) {
                Ok(rule) if !origins.contains(&rule) => origins.push(rule),
                Ok(_) => {}
                Err(why) => self.issue(ORIGINS, entry, why, ENTRY_IGNORED),
            }
        }
        const METHODS: &str = "EDGE_OBS_CORS_ALLOW_METHODS";
        let mut text = self.list_text(METHODS, cors::DEFAULT_METHODS);
        let allow_methods = loop {
            let first_issue = self.issues.len();
            let mut methods: Vec<http::Method> = Vec::new();
            for entry in header_rules::split_list(&text) {
                match http::Method::from_bytes(entry.to_ascii_uppercase().as_bytes()) {
                    Ok(m) if !methods.contains(&m) => methods.push(m),
                    Ok(_) => {}
                    Err(_) => self.issue(METHODS, entry, "invalid method", ENTRY_IGNORED),
                }
            }
            if !self.all_invalid(first_issue, methods.len(), cors::DEFAULT_METHODS) {
                break methods;
            }
            text = cors::DEFAULT_METHODS.to_owned();
        };
        const HEADERS: &str = "EDGE_OBS_CORS_ALLOW_HEADERS";
        let allow_any_header = self
            .values
            .iter()
            .any(|(i, v)| name_of(*i) == HEADERS && header_rules::trim(v) == "*");
        let allow_headers = if allow_any_header {
            self.take(HEADERS);
            Vec::new()
        } else {
            self.header_names(HEADERS, "", &|_| None)
        };
        let expose_headers = self.header_names("EDGE_OBS_CORS_EXPOSE_HEADERS", "", &|_| None);
        const CREDENTIALS: &str = "EDGE_OBS_CORS_ALLOW_CREDENTIALS";
        let mut allow_credentials = self.switch(CREDENTIALS, false);
        if allow_credentials && origins.contains(&OriginRule::Any) {
            // The Fetch standard forbids `*` with credentials; browsers would refuse every
            // answer, so the safer half of the setting is kept.
            self.issue(
                CREDENTIALS,
                "on",
                "credentials cannot be allowed together with the wildcard origin * (list the origins instead)",
                "off",
            );
            allow_credentials = false;
        }
        const MAX_AGE: &str = "EDGE_OBS_CORS_MAX_AGE";
        let max_age = if self.values.iter().any(|(i, _)| name_of(*i) == MAX_AGE) {
            let n = self.number(
                MAX_AGE,
                (0, u64::from(cors::MAX_AGE_LIMIT)),
                u64::MAX,
                "expected an integer from 0 to 86400",
                "unset",
            );
            u32::try_from(n).ok()
        } else {
            None
        };
        CorsConfig {
            origins,
            allow_methods,
            allow_headers,
            allow_any_header,
            expose_headers,
            allow_credentials,
            max_age,
        }
    }

    fn log_context(&mut self) -> LogContextConfig {
        let enabled = self.switch("EDGE_OBS_LOG_CONTEXT", true);
        const PREFIX_VAR: &str = "EDGE_OBS_LOG_CONTEXT_PREFIX";
        let mut prefix = LogContextConfig::DEFAULT_PREFIX.to_owned();
        if let Some(raw) = self.take(PREFIX_VAR) {
            let v = header_rules::trim(&raw);
            let valid = (1..=64).contains(&v.len())
                && v.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if valid {
                prefix = v.to_owned();
            } else {
                self.issue(
                    PREFIX_VAR,
                    &raw,
                    "expected 1 to 64 lowercase letters, digits, - or _",
                    LogContextConfig::DEFAULT_PREFIX,
                );
            }
        }
        LogContextConfig { enabled, prefix }
    }

    /// A `service.name` (`EDGE_OBS_SERVICE_NAME`, `OTEL_SERVICE_NAME`): 1 to 128 characters
    /// without control characters, trimmed.
    #[inline(never)]
    fn service_name(&mut self, name: &str) -> Option<String> {
        let raw = self.take(name)?;
        let v = header_rules::trim(&raw);
        let reason = if v.is_empty() {
            "empty value"
        } else if v.char_indices().nth(SERVICE_NAME_MAX_CHARS).is_some() {
            "longer than 128 characters"
        } else if v.chars().any(char::is_control) {
            "control characters are not allowed"
        } else {
            return Some(v.to_owned());
        };
        self.issue(name, &raw, reason, "unset");
        None
    }

    fn redaction(&mut self) -> Redaction {
        let headers = self.header_names("EDGE_OBS_REDACT_HEADERS", "", &|_| None);
        const NAME: &str = "EDGE_OBS_REDACT_QUERY_PARAMS";
        let mut text = self.list_text(NAME, redact::DEFAULT_QUERY_PARAMS);
        loop {
            let first_issue = self.issues.len();
            let mut query_params: Vec<String> = Vec::new();
            for entry in header_rules::split_list(&text) {
                if entry
                    .bytes()
                    .any(|b| matches!(b, b'&' | b'=' | b';' | b'#' | b'?') || !b.is_ascii_graphic())
                {
                    self.issue(NAME, entry, "invalid parameter name", ENTRY_IGNORED);
                } else {
                    let lower = entry.to_ascii_lowercase();
                    if !query_params.contains(&lower) {
                        query_params.push(lower);
                    }
                }
            }
            if !self.all_invalid(
                first_issue,
                query_params.len(),
                redact::DEFAULT_QUERY_PARAMS,
            ) {
                return Redaction {
                    headers,
                    query_params,
                };
            }
            text = redact::DEFAULT_QUERY_PARAMS.to_owned();
        }
    }

    fn request_id(&mut self, redaction: &Redaction) -> RequestIdConfig {
        // Reading a secret header as request id would copy credentials into logs and to other
        // services; trace and framing headers have their own meaning.
        let reserved = |h: &HeaderName| -> Option<&'static str> {
            (redaction.is_secret_header(h)
                || *h == TRACEPARENT
                || *h == TRACESTATE
                || FORBIDDEN_TO_SET.contains(&h.as_str()))
            .then_some("reserved header (secret, trace context or framing)")
        };
        const HEADER: &str = "EDGE_OBS_REQUEST_ID_HEADER";
        let mut header = HeaderName::from_static("x-request-id");
        if let Some(raw) = self.take(HEADER) {
            match header_rules::parse_name(&raw) {
                None => self.issue(HEADER, &raw, "invalid header name", "x-request-id"),
                Some(h) => match reserved(&h) {
                    Some(why) => self.issue(HEADER, &raw, why, "x-request-id"),
                    None => header = h,
                },
            }
        }
        let mut aliases =
            self.header_names("EDGE_OBS_REQUEST_ID_ALIASES", "x-correlation-id", &reserved);
        aliases.retain(|a| *a != header);
        let max_len = self.number(
            "EDGE_OBS_REQUEST_ID_MAX_LEN",
            (1, MAX_LEN_LIMIT as u64),
            128,
            "expected an integer from 1 to 1024",
            "128",
        ) as usize;
        let policy = [Policy::Accept, Policy::Reject][self.choice(
            "EDGE_OBS_REQUEST_ID_POLICY",
            &["accept", "reject"],
            "expected one of: accept, reject",
        )];
        let format = [IdFormat::UuidV7, IdFormat::UuidV4][self.choice(
            "EDGE_OBS_REQUEST_ID_FORMAT",
            &["uuid-v7", "uuid-v4"],
            "expected one of: uuid-v7, uuid-v4",
        )];
        RequestIdConfig {
            header,
            aliases,
            max_len,
            policy,
            format,
        }
    }

    fn security(&mut self) -> SecurityHeaders {
        let enabled = self.switch("EDGE_OBS_SECURITY_HEADERS", true);
        let mode = [Mode::Override, Mode::IfAbsent][self.choice(
            "EDGE_OBS_SECURITY_HEADERS_MODE",
            &["override", "if-absent"],
            "expected one of: override, if-absent",
        )];
        let profile = Profile::ALL[self.choice(
            "EDGE_OBS_SECURITY_PROFILE",
            &["website", "api", "strict"],
            "expected one of: website, api, strict",
        )];
        let mut headers = Vec::with_capacity(BASELINE.len());
        for b in &BASELINE {
            let raw = self.take(b.variable);
            let default = b.value(profile);
            let value = match raw.as_deref().map(header_rules::trim) {
                None => match default {
                    Some(v) => v,
                    None => continue,
                },
                Some(v) if v.eq_ignore_ascii_case("off") => continue,
                Some(v) if !v.is_empty() && http::HeaderValue::from_str(v).is_ok() => v,
                Some(_) => {
                    self.issue(
                        b.variable,
                        raw.as_deref().unwrap_or(""),
                        "expected a non-empty header value without control characters, or off",
                        default.unwrap_or("not sent"),
                    );
                    match default {
                        Some(v) => v,
                        None => continue,
                    }
                }
            };
            if let Ok(v) = http::HeaderValue::from_str(value) {
                headers.push((b.name.clone(), v));
            }
        }
        SecurityHeaders {
            enabled,
            mode,
            headers,
        }
    }

    /// Set, append and remove rules from the three variables `names`.
    fn rules(
        &mut self,
        names: [&str; 3],
        managed: &dyn Fn(&HeaderName) -> Option<&'static str>,
    ) -> HeaderRules {
        let mut rules = HeaderRules::default();
        for (kind, name) in names[..2].iter().enumerate() {
            let text = self.list_text(name, "");
            for entry in header_rules::split_entries(&text) {
                let shown = header_rules::entry_for_display(entry);
                match header_rules::parse_entry(entry) {
                    Err(e) => self.issue(name, &shown, e.as_str(), ENTRY_IGNORED),
                    Ok((h, v)) => match managed(&h) {
                        Some(why) => self.issue(name, &shown, why, ENTRY_IGNORED),
                        None if kind == 0 => rules.set.push((h, v)),
                        None => rules.append.push((h, v)),
                    },
                }
            }
        }
        rules.remove = self.header_names(names[2], "", managed);
        rules
    }

    fn log(&mut self) -> LogConfig {
        let enabled = self.switch("EDGE_OBS_LOG", true);
        let format = [LogFormat::Json, LogFormat::Pretty][self.choice(
            "EDGE_OBS_LOG_FORMAT",
            &["json", "pretty"],
            "expected one of: json, pretty",
        )];
        let level = [
            Level::Info,
            Level::Debug,
            Level::Warn,
            Level::Error,
            Level::Warn,
        ][self.choice(
            "EDGE_OBS_LOG_LEVEL",
            &["info", "debug", "warn", "error", "warning"],
            "expected one of: debug, info, warn, error",
        )];
        let sample_rate_ppm = self.rate("EDGE_OBS_LOG_SAMPLE_RATE");
        let follow_trace = self.switch("EDGE_OBS_LOG_FOLLOW_TRACE", false);
        let slow_ms = self.number(
            "EDGE_OBS_LOG_SLOW_MS",
            (0, 3_600_000),
            1000,
            "expected an integer from 0 to 3600000",
            "1000",
        );
        const SKIP: &str = "EDGE_OBS_LOG_SKIP_PATHS";
        const SKIP_DEFAULT: &str = "/livez,/readyz,/healthz,/startupz";
        let mut text = self.list_text(SKIP, SKIP_DEFAULT);
        let skip_paths = loop {
            let first_issue = self.issues.len();
            let mut skip_paths = Vec::new();
            for entry in header_rules::split_list(&text) {
                if entry.starts_with('/')
                    && entry.bytes().all(|b| b.is_ascii_graphic())
                    && !entry.contains('?')
                {
                    skip_paths.push(entry.to_owned());
                } else {
                    self.issue(
                        SKIP,
                        entry,
                        "expected a path starting with '/' (no query, no spaces)",
                        ENTRY_IGNORED,
                    );
                }
            }
            if !self.all_invalid(first_issue, skip_paths.len(), SKIP_DEFAULT) {
                break skip_paths;
            }
            text = SKIP_DEFAULT.to_owned();
        };
        let start_line = self.switch("EDGE_OBS_LOG_START", false);
        let user_agent_max = self.number(
            "EDGE_OBS_LOG_USER_AGENT_MAX",
            (0, USER_AGENT_MAX_LIMIT as u64),
            256,
            "expected an integer from 0 to 1024",
            "256",
        ) as usize;
        let request_headers = self.logged_headers("EDGE_OBS_LOG_REQUEST_HEADERS");
        let response_headers = self.logged_headers("EDGE_OBS_LOG_RESPONSE_HEADERS");
        LogConfig {
            enabled,
            format,
            level,
            sample_rate_ppm,
            follow_trace,
            slow_ms,
            skip_paths,
            start_line,
            user_agent_max,
            request_headers,
            response_headers,
        }
    }

    fn logged_headers(&mut self, name: &str) -> Vec<HeaderName> {
        let mut list = self.header_names(name, "", &|_| None);
        for extra in list.split_off(list.len().min(MAX_LOGGED_HEADERS)) {
            self.issue(
                name,
                extra.as_str(),
                "at most 16 headers are logged per direction",
                ENTRY_IGNORED,
            );
        }
        list
    }

    /// A rate from 0 to 1 in millionths; 1 when unset or invalid.
    fn rate(&mut self, name: &str) -> u32 {
        let Some(raw) = self.take(name) else {
            return 1_000_000;
        };
        parse_rate(&raw).unwrap_or_else(|| {
            self.issue(
                name,
                &raw,
                "expected a decimal number from 0.0 to 1.0",
                "1.0",
            );
            1_000_000
        })
    }

    fn routes(&mut self) -> Vec<RouteTemplate> {
        const NAME: &str = "EDGE_OBS_ROUTES";
        let text = self.list_text(NAME, "");
        let mut routes: Vec<RouteTemplate> = Vec::new();
        for entry in header_rules::split_list(&text) {
            match RouteTemplate::parse(entry) {
                Ok(r) => routes.push(r),
                Err(e) => self.issue(NAME, entry, e.as_str(), ENTRY_IGNORED),
            }
        }
        routes
    }
}

/// Parses a rate from 0 to 1 written as a plain decimal (`1`, `0.25`, `.5`), into millionths.
/// Written by hand because float parsing would add code size for one setting; digits after
/// the sixth decimal are ignored (but `1.0000001` is still over 1).
pub fn parse_rate(s: &str) -> Option<u32> {
    let s = header_rules::trim(s);
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let one = match whole {
        "1" => true,
        "0" => false,
        "" if !frac.is_empty() => false,
        _ => return None,
    };
    let mut ppm: u32 = 0;
    for (i, b) in frac.bytes().enumerate() {
        if !b.is_ascii_digit() || (one && b != b'0') {
            return None;
        }
        if i < 6 {
            ppm += u32::from(b - b'0') * 10u32.pow(5 - i as u32);
        }
    }
    Some(if one { 1_000_000 } else { ppm })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> (Config, Vec<ConfigIssue>) {
        Config::from_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn one_issue(var: &str, value: &str) -> (Config, ConfigIssue) {
        let (c, issues) = parse(&[(var, value)]);
        assert_eq!(issues.len(), 1, "{var}={value:?}: {issues:?}");
        assert_eq!(issues[0].variable, var);
        (c, issues.into_iter().next().unwrap())
    }

    #[test]
    fn defaults() {
        let (c, issues) = parse(&[]);
        assert!(issues.is_empty());
        assert!(c.enabled);
        assert_eq!(c.service_name, None);
        assert_eq!(c.body_size_mode, BodySizeMode::Count);
        assert_eq!(c.request_id.header, "x-request-id");
        assert_eq!(c.request_id.aliases, ["x-correlation-id"]);
        assert_eq!(c.request_id.max_len, 128);
        assert_eq!(c.request_id.policy, Policy::Accept);
        assert_eq!(c.request_id.format, IdFormat::UuidV7);
        assert!(c.trace_context);
        assert!(c.security.enabled);
        assert_eq!(c.security.mode, Mode::Override);
        assert_eq!(c.security.headers.len(), 9);
        assert_eq!(c.remove_response_headers.len(), 4);
        assert!(c.server_timing);
        assert!(c.request_rules.is_empty() && c.response_rules.is_empty());
        assert!(c.log.enabled);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, Level::Info);
        assert_eq!(c.log.sample_rate_ppm, 1_000_000);
        assert_eq!(c.log.slow_ms, 1000);
        assert_eq!(
            c.log.skip_paths,
            ["/livez", "/readyz", "/healthz", "/startupz"]
        );
        assert!(!c.log.start_line);
        assert_eq!(c.log.user_agent_max, 256);
        assert!(c.log.request_headers.is_empty() && c.log.response_headers.is_empty());
        assert!(c.redaction.headers.is_empty());
        assert_eq!(c.redaction.query_params.len(), 20);
        assert!(c.metrics);
        assert!(c.routes.is_empty());
        assert_eq!(c.client_addr.trusted_hops, 0);
        assert_eq!(c.client_addr.source, Source::Auto);
        assert!(c.counts_body_bytes());
    }

    #[test]
    fn valid_values_are_applied() {
        let (c, issues) = parse(&[
            ("EDGE_OBS_ENABLED", " TRUE "),
            ("EDGE_OBS_SERVICE_NAME", "shop"),
            ("EDGE_OBS_BODY_SIZE", "Content-Length"),
            ("EDGE_OBS_REQUEST_ID_HEADER", "X-Req"),
            ("EDGE_OBS_REQUEST_ID_ALIASES", "x-a, X-Req ,x-b"),
            ("EDGE_OBS_REQUEST_ID_MAX_LEN", "1024"),
            ("EDGE_OBS_REQUEST_ID_POLICY", "reject"),
            ("EDGE_OBS_REQUEST_ID_FORMAT", "uuid-v4"),
            ("EDGE_OBS_TRACE_CONTEXT", "off"),
            ("EDGE_OBS_SECURITY_HEADERS", "no"),
            ("EDGE_OBS_SECURITY_HEADERS_MODE", "if-absent"),
            ("EDGE_OBS_SECURITY_X_FRAME_OPTIONS", "off"),
            (
                "EDGE_OBS_SECURITY_CONTENT_SECURITY_POLICY",
                "default-src 'self'",
            ),
            ("EDGE_OBS_REMOVE_RESPONSE_HEADERS", ""),
            ("EDGE_OBS_SERVER_TIMING", "0"),
            ("EDGE_OBS_REQUEST_SET_HEADERS", "x-a: 1|x-b: 2"),
            ("EDGE_OBS_REQUEST_APPEND_HEADERS", "x-c: 3\nx-d: 4"),
            ("EDGE_OBS_REQUEST_REMOVE_HEADERS", "x-e"),
            (
                "EDGE_OBS_RESPONSE_SET_HEADERS",
                "content-security-policy: default-src 'none'",
            ),
            ("EDGE_OBS_RESPONSE_APPEND_HEADERS", "x-f: 5"),
            ("EDGE_OBS_RESPONSE_REMOVE_HEADERS", "x-g,x-h"),
            ("EDGE_OBS_LOG", "on"),
            ("EDGE_OBS_LOG_FORMAT", "PRETTY"),
            ("EDGE_OBS_LOG_LEVEL", "debug"),
            ("EDGE_OBS_LOG_SAMPLE_RATE", "0.25"),
            ("EDGE_OBS_LOG_SLOW_MS", "0"),
            ("EDGE_OBS_LOG_SKIP_PATHS", ""),
            ("EDGE_OBS_LOG_START", "on"),
            ("EDGE_OBS_LOG_USER_AGENT_MAX", "0"),
            ("EDGE_OBS_LOG_REQUEST_HEADERS", "Accept,authorization"),
            ("EDGE_OBS_LOG_RESPONSE_HEADERS", "content-type"),
            ("EDGE_OBS_REDACT_HEADERS", "x-secret"),
            ("EDGE_OBS_REDACT_QUERY_PARAMS", "OTP, pin"),
            ("EDGE_OBS_METRICS", "off"),
            ("EDGE_OBS_ROUTES", "/users/{id}, /static/*"),
            ("EDGE_OBS_TRUSTED_PROXY_HOPS", "2"),
            ("EDGE_OBS_CLIENT_ADDRESS_HEADER", "x-forwarded-for"),
            ("PATH", "/usr/bin"),
            ("HOME", "whatever\n"),
        ]);
        assert!(issues.is_empty(), "{issues:?}");
        assert!(c.enabled);
        assert_eq!(c.service_name.as_deref(), Some("shop"));
        assert_eq!(c.body_size_mode, BodySizeMode::ContentLength);
        assert!(!c.counts_body_bytes());
        assert_eq!(c.request_id.header, "x-req");
        assert_eq!(c.request_id.aliases, ["x-a", "x-b"]);
        assert_eq!(c.request_id.max_len, 1024);
        assert_eq!(c.request_id.policy, Policy::Reject);
        assert_eq!(c.request_id.format, IdFormat::UuidV4);
        assert!(!c.trace_context);
        assert!(!c.security.enabled);
        assert_eq!(c.security.mode, Mode::IfAbsent);
        assert_eq!(c.security.headers.len(), 8);
        assert!(
            c.security
                .headers
                .iter()
                .all(|(n, _)| n != "x-frame-options")
        );
        let csp = c
            .security
            .headers
            .iter()
            .find(|(n, _)| n == "content-security-policy")
            .unwrap();
        assert_eq!(csp.1, "default-src 'self'");
        assert!(c.remove_response_headers.is_empty());
        assert!(!c.server_timing);
        assert_eq!(c.request_rules.set.len(), 2);
        assert_eq!(c.request_rules.append.len(), 2);
        assert_eq!(c.request_rules.remove, ["x-e"]);
        assert_eq!(c.response_rules.set.len(), 1);
        assert_eq!(c.response_rules.append.len(), 1);
        assert_eq!(c.response_rules.remove.len(), 2);
        assert_eq!(c.log.format, LogFormat::Pretty);
        assert_eq!(c.log.level, Level::Debug);
        assert_eq!(c.log.sample_rate_ppm, 250_000);
        assert_eq!(c.log.slow_ms, 0);
        assert!(c.log.skip_paths.is_empty());
        assert!(c.log.start_line);
        assert_eq!(c.log.user_agent_max, 0);
        assert_eq!(c.log.request_headers, ["accept", "authorization"]);
        assert_eq!(c.log.response_headers, ["content-type"]);
        assert_eq!(c.redaction.headers, ["x-secret"]);
        assert_eq!(c.redaction.query_params, ["otp", "pin"]);
        assert!(!c.metrics);
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[1].as_str(), "/static/*");
        assert_eq!(c.client_addr.trusted_hops, 2);
        assert_eq!(c.client_addr.source, Source::XForwardedFor);
    }

    #[test]
    fn malformed_switches() {
        for var in [
            "EDGE_OBS_ENABLED",
            "EDGE_OBS_TRACE_CONTEXT",
            "EDGE_OBS_SECURITY_HEADERS",
            "EDGE_OBS_SERVER_TIMING",
            "EDGE_OBS_LOG",
            "EDGE_OBS_LOG_START",
            "EDGE_OBS_METRICS",
        ] {
            for bad in ["", "maybe", "2", "on!", "o n"] {
                let (_, issue) = one_issue(var, bad);
                assert_eq!(issue.reason, SWITCH_REASON);
                assert_eq!(issue.value, bad);
                let expected = if var == "EDGE_OBS_LOG_START" {
                    "off"
                } else {
                    "on"
                };
                assert_eq!(issue.default_used, expected);
            }
        }
        let (c, _) = one_issue("EDGE_OBS_METRICS", "nope");
        assert!(c.metrics);
        let (c, _) = one_issue("EDGE_OBS_LOG_START", "nope");
        assert!(!c.log.start_line);
    }

    #[test]
    fn malformed_choices() {
        let cases = [
            ("EDGE_OBS_BODY_SIZE", "bytes", "count"),
            ("EDGE_OBS_REQUEST_ID_POLICY", "trust", "accept"),
            ("EDGE_OBS_REQUEST_ID_FORMAT", "uuid-v1", "uuid-v7"),
            ("EDGE_OBS_SECURITY_HEADERS_MODE", "merge", "override"),
            ("EDGE_OBS_SECURITY_PROFILE", "paranoid", "website"),
            ("EDGE_OBS_LOG_FORMAT", "xml", "json"),
            ("EDGE_OBS_LOG_LEVEL", "verbose", "info"),
            ("EDGE_OBS_CLIENT_ADDRESS_HEADER", "x-real-ip", "auto"),
        ];
        for (var, bad, default) in cases {
            for value in [bad, ""] {
                let (_, issue) = one_issue(var, value);
                assert_eq!(issue.default_used, default, "{var}");
                assert!(
                    issue.reason.starts_with("expected one of: "),
                    "{}",
                    issue.reason
                );
                assert!(issue.reason.contains(default));
            }
        }
        let (c, _) = one_issue("EDGE_OBS_LOG_LEVEL", "verbose");
        assert_eq!(c.log.level, Level::Info);
    }

    #[test]
    fn malformed_numbers() {
        let cases = [
            (
                "EDGE_OBS_REQUEST_ID_MAX_LEN",
                &["0", "1025", "-1", "12a", "", "1e3", "99999999999999999999"][..],
                "128",
            ),
            (
                "EDGE_OBS_LOG_SLOW_MS",
                &["-5", "3600001", "1.5", "fast"],
                "1000",
            ),
            ("EDGE_OBS_LOG_USER_AGENT_MAX", &["1025", "x"], "256"),
            ("EDGE_OBS_TRUSTED_PROXY_HOPS", &["33", "-1", "one"], "0"),
        ];
        for (var, bads, default) in cases {
            for bad in bads {
                let (_, issue) = one_issue(var, bad);
                assert_eq!(issue.default_used, default);
                assert!(issue.reason.starts_with("expected an integer"));
            }
        }
        let (c, _) = one_issue("EDGE_OBS_REQUEST_ID_MAX_LEN", "0");
        assert_eq!(c.request_id.max_len, 128);
    }

    #[test]
    fn sample_rates() {
        assert_eq!(parse_rate("1"), Some(1_000_000));
        assert_eq!(parse_rate("1.0"), Some(1_000_000));
        assert_eq!(parse_rate("1.000000000"), Some(1_000_000));
        assert_eq!(parse_rate("0"), Some(0));
        assert_eq!(parse_rate("0.0"), Some(0));
        assert_eq!(parse_rate(".5"), Some(500_000));
        assert_eq!(parse_rate("0.25"), Some(250_000));
        assert_eq!(parse_rate(" 0.000001 "), Some(1));
        assert_eq!(parse_rate("0.1234567"), Some(123_456));
        for bad in [
            "",
            ".",
            "1.5",
            "2",
            "1.0000001",
            "-0.1",
            "0.5.1",
            "NaN",
            "1e-3",
            "abc",
            "0,5",
            "+0.5",
            "99999999999999999999",
        ] {
            assert_eq!(parse_rate(bad), None, "{bad}");
            let (c, issue) = one_issue("EDGE_OBS_LOG_SAMPLE_RATE", bad);
            assert_eq!(c.log.sample_rate_ppm, 1_000_000);
            assert_eq!(issue.default_used, "1.0");
        }
    }

    #[test]
    fn malformed_service_name() {
        for bad in ["", "  ", "a\nb", "a\u{7f}"] {
            let (c, issue) = one_issue("EDGE_OBS_SERVICE_NAME", bad);
            assert_eq!(c.service_name, None);
            assert_eq!(issue.default_used, "unset");
        }
        let long = "s".repeat(129);
        let (_, issue) = one_issue("EDGE_OBS_SERVICE_NAME", &long);
        assert_eq!(
            issue.value,
            format!("{}{}", "s".repeat(128), json::TRUNCATION_MARKER)
        );
    }

    #[test]
    fn malformed_request_id_headers() {
        for bad in ["", "x request id", "x-requést", "x\u{1}"] {
            let (c, issue) = one_issue("EDGE_OBS_REQUEST_ID_HEADER", bad);
            assert_eq!(c.request_id.header, "x-request-id");
            assert_eq!(issue.default_used, "x-request-id");
        }
        for reserved in [
            "authorization",
            "Cookie",
            "traceparent",
            "content-length",
            "x-api-key",
        ] {
            let (c, issue) = one_issue("EDGE_OBS_REQUEST_ID_HEADER", reserved);
            assert_eq!(c.request_id.header, "x-request-id");
            assert!(issue.reason.starts_with("reserved header"));
        }
        // A header redacted by configuration is reserved too.
        let (_, issues) = parse(&[
            ("EDGE_OBS_REDACT_HEADERS", "x-token"),
            ("EDGE_OBS_REQUEST_ID_HEADER", "x-token"),
        ]);
        assert_eq!(issues.len(), 1);
        let (c, issues) = parse(&[(
            "EDGE_OBS_REQUEST_ID_ALIASES",
            "x-ok, bad name, authorization",
        )]);
        assert_eq!(c.request_id.aliases, ["x-ok"]);
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].value, "bad name");
        assert_eq!(issues[1].value, "authorization");
        assert!(issues[1].reason.starts_with("reserved header"));
        assert_eq!(issues[1].default_used, "entry ignored");
    }

    #[test]
    fn malformed_security_overrides() {
        for b in &BASELINE {
            for bad in ["", "a\u{1}b", "x\ny"] {
                let (c, issue) = one_issue(b.variable, bad);
                assert_eq!(
                    issue.default_used,
                    b.value(Profile::Website).unwrap_or("not sent")
                );
                let sent = c.security.headers.iter().find(|(n, _)| *n == b.name);
                assert_eq!(
                    sent.map(|(_, v)| v.to_str().unwrap()),
                    b.value(Profile::Website)
                );
            }
        }
    }

    #[test]
    fn security_profiles_and_overrides() {
        let (c, issues) = parse(&[("EDGE_OBS_SECURITY_PROFILE", "api")]);
        assert!(issues.is_empty(), "{issues:?}");
        let sent = |c: &Config, name: &str| {
            c.security
                .headers
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(sent(&c, "cache-control").as_deref(), Some("no-store"));
        assert_eq!(sent(&c, "permissions-policy"), None);
        assert_eq!(c.security.headers.len(), 6);
        // A per-header variable still wins, and adds a header the profile leaves out.
        let (c, _) = parse(&[
            ("EDGE_OBS_SECURITY_PROFILE", "api"),
            ("EDGE_OBS_SECURITY_CACHE_CONTROL", "off"),
            ("EDGE_OBS_SECURITY_PERMISSIONS_POLICY", "camera=()"),
        ]);
        assert_eq!(sent(&c, "cache-control"), None);
        assert_eq!(sent(&c, "permissions-policy").as_deref(), Some("camera=()"));
        let (c, _) = parse(&[("EDGE_OBS_SECURITY_PROFILE", "strict")]);
        assert_eq!(
            sent(&c, "cross-origin-embedder-policy").as_deref(),
            Some("require-corp")
        );
        assert_eq!(c.security.headers.len(), 11);
        let (c, issues) = parse(&[("EDGE_OBS_SECURITY_PROFILE", "paranoid")]);
        assert_eq!(issues.len(), 1);
        assert_eq!(c.security.headers.len(), 9, "the default profile");
    }

    #[test]
    fn malformed_header_lists() {
        for var in [
            "EDGE_OBS_REMOVE_RESPONSE_HEADERS",
            "EDGE_OBS_REQUEST_REMOVE_HEADERS",
            "EDGE_OBS_RESPONSE_REMOVE_HEADERS",
            "EDGE_OBS_LOG_REQUEST_HEADERS",
            "EDGE_OBS_LOG_RESPONSE_HEADERS",
            "EDGE_OBS_REDACT_HEADERS",
        ] {
            let (_, issue) = one_issue(var, "x-good, bad header ,x-also-good");
            assert_eq!(issue.value, "bad header");
            assert_eq!(issue.reason, "invalid header name");
            assert_eq!(issue.default_used, "entry ignored");
        }
        let (c, _) = one_issue("EDGE_OBS_LOG_REQUEST_HEADERS", "accept,{bad}");
        assert_eq!(c.log.request_headers, ["accept"]);
    }

    #[test]
    fn lists_with_only_invalid_entries_fall_back_to_the_default() {
        let (c, issues) = parse(&[("EDGE_OBS_REDACT_QUERY_PARAMS", "tökén, a=b")]);
        assert_eq!(
            c.redaction.query_params.len(),
            20,
            "a typo must not disable redaction"
        );
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].default_used, redact::DEFAULT_QUERY_PARAMS);
        let (c, _) = parse(&[("EDGE_OBS_LOG_SKIP_PATHS", "healthz")]);
        assert_eq!(c.log.skip_paths.len(), 4);
        let (c, _) = parse(&[("EDGE_OBS_REMOVE_RESPONSE_HEADERS", "bad name")]);
        assert_eq!(c.remove_response_headers.len(), 4);
        let (c, _) = parse(&[("EDGE_OBS_REQUEST_ID_ALIASES", "authorization")]);
        assert_eq!(c.request_id.aliases, ["x-correlation-id"]);
        // An explicitly empty value is an empty list.
        let (c, issues) = parse(&[("EDGE_OBS_REDACT_QUERY_PARAMS", "")]);
        assert!(c.redaction.query_params.is_empty() && issues.is_empty());
    }

    #[test]
    fn too_many_logged_headers() {
        let names: Vec<String> = (0..20).map(|i| format!("x-h{i}")).collect();
        let (c, issues) = parse(&[("EDGE_OBS_LOG_REQUEST_HEADERS", &names.join(","))]);
        assert_eq!(c.log.request_headers.len(), 16);
        assert_eq!(issues.len(), 4);
        assert_eq!(issues[0].value, "x-h16");
    }

    #[test]
    fn malformed_header_rules_never_show_values() {
        for var in [
            "EDGE_OBS_REQUEST_SET_HEADERS",
            "EDGE_OBS_REQUEST_APPEND_HEADERS",
            "EDGE_OBS_RESPONSE_SET_HEADERS",
            "EDGE_OBS_RESPONSE_APPEND_HEADERS",
        ] {
            let (c, issues) = parse(&[(
                var,
                "x-ok: 1|Bearer supersecret|bad name: supersecret|content-length: 5",
            )]);
            assert_eq!(issues.len(), 3, "{issues:?}");
            for i in &issues {
                assert!(!i.value.contains("supersecret"), "{i:?}");
                assert!(!i.to_string().contains("supersecret"));
            }
            assert_eq!(issues[0].value, "[REDACTED]");
            assert_eq!(issues[1].value, "bad name: [REDACTED]");
            let rules = if var.contains("REQUEST") {
                &c.request_rules
            } else {
                &c.response_rules
            };
            assert_eq!(rules.set.len() + rules.append.len(), 1);
        }
    }

    #[test]
    fn rules_cannot_touch_managed_headers() {
        let (c, issues) = parse(&[
            (
                "EDGE_OBS_REQUEST_SET_HEADERS",
                "x-request-id: forged|traceparent: x",
            ),
            ("EDGE_OBS_REQUEST_REMOVE_HEADERS", "tracestate"),
            ("EDGE_OBS_RESPONSE_APPEND_HEADERS", "X-Request-Id: again"),
        ]);
        assert_eq!(issues.len(), 4, "{issues:?}");
        assert!(
            issues
                .iter()
                .all(|i| i.reason.starts_with("managed by the middleware"))
        );
        assert!(c.request_rules.is_empty() && c.response_rules.is_empty());
    }

    #[test]
    fn malformed_paths_params_and_routes() {
        let (c, issue) = one_issue("EDGE_OBS_LOG_SKIP_PATHS", "/livez, healthz");
        assert_eq!(c.log.skip_paths, ["/livez"]);
        assert_eq!(issue.value, "healthz");
        one_issue("EDGE_OBS_LOG_SKIP_PATHS", "/a?b");
        let (c, issue) = one_issue("EDGE_OBS_REDACT_QUERY_PARAMS", "token, a=b");
        assert_eq!(c.redaction.query_params, ["token"]);
        assert_eq!(issue.value, "a=b");
        one_issue("EDGE_OBS_REDACT_QUERY_PARAMS", "tökén");
        let (c, issue) = one_issue("EDGE_OBS_ROUTES", "/users/{id},users/{id}");
        assert_eq!(c.routes.len(), 1);
        assert_eq!(issue.value, "users/{id}");
        assert_eq!(issue.reason, "a route template must start with '/'");
        one_issue("EDGE_OBS_ROUTES", "/a/{x}/{x}");
        one_issue("EDGE_OBS_ROUTES", "/a/*/b");
    }

    #[test]
    fn unknown_variables_are_reported() {
        let (_, issues) = parse(&[
            ("EDGE_OBS_LOG_LEVL", "debug"),
            ("EDGE_OBS_WHATEVER_THIS_IS", "token-abc"),
            ("edge_obs_log", "on"),
            ("NOT_EDGE_OBS_LOG", "x"),
        ]);
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert_eq!(issues[0].variable, "EDGE_OBS_LOG_LEVL");
        assert_eq!(issues[2].variable, "edge_obs_log");
        for i in &issues {
            assert_eq!(i.reason, "unknown variable");
            assert_eq!(
                i.value, "[REDACTED]",
                "values of unknown variables may be secrets"
            );
            assert_eq!(i.default_used, "ignored");
        }
    }

    #[test]
    fn issue_values_are_truncated_and_displayed_escaped() {
        let huge = format!("\"\n{}", "x".repeat(64 * 1024));
        let (_, issue) = one_issue("EDGE_OBS_LOG_LEVEL", &huge);
        assert_eq!(
            issue.value.chars().count(),
            ISSUE_VALUE_MAX_CHARS + json::TRUNCATION_MARKER.len()
        );
        let shown = issue.to_string();
        assert!(
            shown.starts_with("EDGE_OBS_LOG_LEVEL=\"\\\"\\u000axxx"),
            "{shown}"
        );
        assert!(!shown.contains('\n'));
        assert!(shown.ends_with("; using info"));
    }

    #[test]
    fn last_definition_wins() {
        let (c, issues) = parse(&[
            ("EDGE_OBS_LOG_LEVEL", "bogus"),
            ("EDGE_OBS_LOG_LEVEL", "warn"),
        ]);
        assert!(issues.is_empty());
        assert_eq!(c.log.level, Level::Warn);
    }

    #[test]
    fn every_variable_reports_a_malformed_value() {
        // A control character is invalid in every kind of value: switch, choice, number,
        // rate, name, header name, header value, rule entry, path, route, parameter name.
        let bad = "bad\u{1}value";
        for var in KNOWN_VARIABLES {
            let (c, issues) = parse(&[(var, bad)]);
            assert_eq!(issues.len(), 1, "{var}: {issues:?}");
            assert_eq!(issues[0].variable, *var);
            assert!(
                issues[0].value == bad || issues[0].value == "[REDACTED]",
                "{var}"
            );
            assert!(!issues[0].reason.is_empty() && !issues[0].default_used.is_empty());
            // The configuration falls back to what it would be without the variable.
            let (d, _) = parse(&[]);
            assert_eq!(format!("{c:?}"), format!("{d:?}"), "{var}");
        }
    }

    #[test]
    fn every_variable_is_documented_in_the_table() {
        let src = include_str!("config.rs");
        let table: Vec<&str> = src
            .lines()
            .filter(|l| l.starts_with("//! | `EDGE_OBS_"))
            .collect();
        assert_eq!(table.len(), KNOWN_VARIABLES.len());
        for v in KNOWN_VARIABLES {
            assert!(
                table.iter().any(|l| l.starts_with(&format!("//! | `{v}`"))),
                "{v}"
            );
        }
        for b in &BASELINE {
            assert!(KNOWN_VARIABLES.contains(&b.variable));
        }
    }

    fn otel(vars: &[(&str, &str)]) -> (OtlpConfig, Vec<ConfigIssue>) {
        let (c, issues) = parse(vars);
        (c.otlp, issues)
    }

    #[test]
    fn otlp_export_is_off_without_an_endpoint_and_on_with_one() {
        let (c, issues) = parse(&[("OTEL_SERVICE_NAME", "shop"), ("OTEL_TRACES_SAMPLER", "x")]);
        assert!(
            issues.is_empty(),
            "other OTEL_ names are the host's: {issues:?}"
        );
        assert!(!c.otlp.enabled());
        assert!(c.spans && c.metrics, "event lines stay on without export");

        let (c, issues) = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
        assert!(issues.is_empty(), "{issues:?}");
        let paths: Vec<_> = c
            .otlp
            .endpoints
            .iter()
            .map(|e| e.as_ref().unwrap().path_with_query.as_str())
            .collect();
        assert_eq!(paths, ["/v1/traces", "/v1/metrics", "/v1/logs"]);
        assert_eq!(c.otlp.service_name, "unknown_service");
        assert_eq!(c.otlp.timeout, std::time::Duration::from_secs(10));
        assert_eq!(
            (c.otlp.batch_items, c.otlp.max_items, c.otlp.max_bytes),
            (512, 2048, 1 << 20)
        );
        // The component exports spans and metrics itself: their stdout lines are off...
        assert!(!c.spans && !c.metrics);
        assert!(c.counts_body_bytes());
        // ...unless turned on explicitly.
        let (c, _) = parse(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("EDGE_OBS_SPANS", "on"),
            ("EDGE_OBS_METRICS", "on"),
        ]);
        assert!(c.spans && c.metrics);
    }

    #[test]
    fn per_signal_endpoints_and_signal_selection() {
        let (c, issues) = otel(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://tempo:4318/traces",
            ),
            ("EDGE_OBS_OTLP_SIGNALS", "traces, logs"),
        ]);
        assert!(issues.is_empty(), "{issues:?}");
        let t = c.endpoints[0].as_ref().unwrap();
        assert!(t.https && t.path_with_query == "/traces");
        assert!(!c.exports(Signal::Metrics));
        assert_eq!(c.endpoints[2].as_ref().unwrap().authority, "collector:4318");
        // A per-signal endpoint alone exports that signal only.
        let (c, _) = otel(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:1/v1/logs")]);
        assert!(c.exports(Signal::Logs) && !c.exports(Signal::Traces));
        // Turned off as a whole.
        for (k, v) in [
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ] {
            let (c, _) = otel(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), (k, v)]);
            assert!(!c.enabled(), "{k}={v}");
        }
        let (c, issues) = otel(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SDK_DISABLED", "false"),
        ]);
        assert!(c.enabled() && issues.is_empty());
    }

    #[test]
    fn otlp_headers_are_parsed_and_never_shown_in_issues() {
        let (c, issues) = otel(&[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=s3cr3t-one,Authorization=Bearer%20tok%2Ctwo,bad name=s3cr3t-three,content-type=s3cr3t-four,novalue",
        )]);
        assert_eq!(c.headers.0.len(), 2);
        assert_eq!(c.headers.0[1].0, "authorization");
        assert_eq!(c.headers.0[1].1, "Bearer tok,two");
        assert_eq!(issues.len(), 3, "{issues:?}");
        let shown = format!(
            "{issues:?} {c:?} {}",
            issues.iter().map(|i| i.to_string()).collect::<String>()
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok"),
            "{shown}"
        );
        assert!(issues[0].value.starts_with("entry 3"), "{:?}", issues[0]);
    }

    #[test]
    fn otlp_resource_and_service_name() {
        let (c, issues) = otel(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-res,deployment.environment.name=prod%20eu,service.instance.id=x,=v",
        )]);
        assert_eq!(issues.len(), 2, "{issues:?}");
        assert_eq!(c.service_name, "from-res");
        assert_eq!(
            c.resource,
            [(
                "deployment.environment.name".to_owned(),
                "prod eu".to_owned()
            )]
        );
        let (c, _) = otel(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-res"),
            ("OTEL_SERVICE_NAME", "from-otel"),
            ("EDGE_OBS_SERVICE_NAME", "from-edge"),
        ]);
        assert_eq!(c.service_name, "from-otel");
        let (c, _) = otel(&[("EDGE_OBS_SERVICE_NAME", "from-edge")]);
        assert_eq!(c.service_name, "from-edge");
    }

    #[test]
    fn otlp_bounds_are_checked() {
        for (var, bad) in [
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "60001"),
            ("EDGE_OBS_OTLP_BATCH_SIZE", "0"),
            ("EDGE_OBS_OTLP_BATCH_SIZE", "4097"),
            ("EDGE_OBS_OTLP_BATCH_AGE_MS", "60001"),
            ("EDGE_OBS_OTLP_MAX_QUEUE", "0"),
            ("EDGE_OBS_OTLP_MAX_BYTES", "1000"),
            ("EDGE_OBS_OTLP_MAX_BYTES", "67108865"),
            ("OTEL_SDK_DISABLED", "maybe"),
            ("OTEL_SERVICE_NAME", ""),
            ("EDGE_OBS_OTLP_SIGNALS", "spans"),
        ] {
            let (c, issue) = one_issue(var, bad);
            assert_eq!(
                format!("{:?}", c.otlp),
                format!("{:?}", OtlpConfig::default()),
                "{var}={bad}"
            );
            assert!(!issue.default_used.is_empty());
        }
        let (c, issues) = otel(&[
            ("EDGE_OBS_OTLP_BATCH_SIZE", "100"),
            ("EDGE_OBS_OTLP_MAX_QUEUE", "10"),
        ]);
        assert_eq!((c.batch_items, c.max_items), (10, 10));
        assert_eq!(issues.len(), 1);
        let (c, issues) = otel(&[("EDGE_OBS_OTLP_BATCH_AGE_MS", "0")]);
        assert!(issues.is_empty() && c.batch_age.is_zero());
    }

    #[test]
    fn bad_endpoints_are_reported_without_their_secrets() {
        let (c, issue) = one_issue("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318");
        assert!(!c.otlp.enabled());
        assert_eq!(issue.value, "collector:4318");
        let (_, issue) = one_issue("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://u:pw@c/");
        assert_eq!(issue.value, "[REDACTED]");
        let (_, issue) = one_issue("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "ftp://c/?key=abc");
        assert_eq!(issue.value, "[REDACTED]");
    }

    #[test]
    fn every_otel_variable_is_documented_and_reports_a_malformed_value() {
        let src = include_str!("config.rs");
        let table: Vec<&str> = src
            .lines()
            .filter(|l| l.starts_with("//! | `OTEL_"))
            .collect();
        for v in OTEL_VARIABLES {
            let short = v.replace("OTEL_EXPORTER_OTLP_", "..._");
            assert!(
                table
                    .iter()
                    .any(|l| l.contains(&format!("`{v}`")) || l.contains(&format!("`{short}`"))),
                "{v}"
            );
            let (c, issues) = parse(&[(v, "bad\u{1}value")]);
            assert_eq!(issues.len(), 1, "{v}: {issues:?}");
            assert!(
                !issues[0].value.contains("bad") || !v.contains("HEADERS"),
                "{v}"
            );
            assert_eq!(
                format!("{:?}", c.otlp),
                format!("{:?}", OtlpConfig::default()),
                "{v}"
            );
        }
    }
}

//! Configuration from `EDGE_OBS_*` environment variables.
//!
//! Parsing never fails: a malformed value falls back to its default and is reported as a
//! [`ConfigIssue`], so a typo degrades one feature instead of taking the service down. Unknown
//! `EDGE_OBS_*` names are reported too (with a "did you mean" hint), since a misspelled
//! variable would otherwise be silently ignored. Other variables are ignored.
//!
//! Switches accept `on`/`off` (also `true`/`false`, `1`/`0`, `yes`/`no`); choices and switches
//! are case-insensitive; surrounding whitespace is ignored. For list variables an invalid entry
//! is reported and skipped while the valid entries are used; an empty value means an empty
//! list.
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
//! | `EDGE_OBS_SECURITY_HEADERS` | `on` \| `off` | `on` | Add the security header baseline to responses. |
//! | `EDGE_OBS_SECURITY_HEADERS_MODE` | `override` \| `if-absent` | `override` | `override` replaces app values (never duplicates); `if-absent` keeps them. |
//! | `EDGE_OBS_SECURITY_STRICT_TRANSPORT_SECURITY` | value \| `off` | `max-age=63072000; includeSubDomains` | HSTS value; `off` drops just this header. |
//! | `EDGE_OBS_SECURITY_X_CONTENT_TYPE_OPTIONS` | value \| `off` | `nosniff` | |
//! | `EDGE_OBS_SECURITY_X_FRAME_OPTIONS` | value \| `off` | `DENY` | |
//! | `EDGE_OBS_SECURITY_REFERRER_POLICY` | value \| `off` | `no-referrer` | |
//! | `EDGE_OBS_SECURITY_CONTENT_SECURITY_POLICY` | value \| `off` | `frame-ancestors 'none'; object-src 'none'; base-uri 'self'` | Does not restrict scripts/styles, so apps using CDNs keep working. |
//! | `EDGE_OBS_SECURITY_PERMISSIONS_POLICY` | value \| `off` | `camera=(), microphone=(), geolocation=(), payment=(), usb=()` | |
//! | `EDGE_OBS_SECURITY_CROSS_ORIGIN_OPENER_POLICY` | value \| `off` | `same-origin` | |
//! | `EDGE_OBS_SECURITY_CROSS_ORIGIN_RESOURCE_POLICY` | value \| `off` | `same-origin` | |
//! | `EDGE_OBS_SECURITY_X_XSS_PROTECTION` | value \| `off` | `0` | `0` disables the legacy XSS auditor, as OWASP recommends. |
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
//! | `EDGE_OBS_CLIENT_ADDRESS_HEADER` | `auto` \| `forwarded` \| `x-forwarded-for` | `auto` | Header with the client address; `auto` prefers `Forwarded`. Set it to the one your proxy writes. |

use std::fmt;

use http::HeaderName;

use crate::access_log::{
    Level, LogConfig, LogFormat, MAX_LOGGED_HEADERS, SERVICE_NAME_MAX_CHARS, USER_AGENT_MAX_LIMIT,
};
use crate::client_addr::{ClientAddrConfig, MAX_TRUSTED_HOPS, Source};
use crate::header_rules::{self, FORBIDDEN_TO_SET, HeaderRules};
use crate::json;
use crate::redact::{self, ALWAYS_REDACTED_HEADERS, Redaction};
use crate::request_id::{IdFormat, MAX_LEN_LIMIT, Policy, RequestIdConfig};
use crate::route::RouteTemplate;
use crate::security_headers::{self, BASELINE, Mode, SecurityHeaders};
use crate::trace_context::{TRACEPARENT, TRACESTATE};

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
    "EDGE_OBS_SECURITY_HEADERS",
    "EDGE_OBS_SECURITY_HEADERS_MODE",
    "EDGE_OBS_SECURITY_STRICT_TRANSPORT_SECURITY",
    "EDGE_OBS_SECURITY_X_CONTENT_TYPE_OPTIONS",
    "EDGE_OBS_SECURITY_X_FRAME_OPTIONS",
    "EDGE_OBS_SECURITY_REFERRER_POLICY",
    "EDGE_OBS_SECURITY_CONTENT_SECURITY_POLICY",
    "EDGE_OBS_SECURITY_PERMISSIONS_POLICY",
    "EDGE_OBS_SECURITY_CROSS_ORIGIN_OPENER_POLICY",
    "EDGE_OBS_SECURITY_CROSS_ORIGIN_RESOURCE_POLICY",
    "EDGE_OBS_SECURITY_X_XSS_PROTECTION",
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
];

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
            && (self.log.enabled || self.metrics)
    }

    /// Parses the configuration from environment variables. Never fails; see the module docs.
    pub fn from_env<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> (Config, Vec<ConfigIssue>) {
        let mut env = Env::default();
        for (name, value) in vars {
            if !name.to_ascii_uppercase().starts_with(PREFIX) {
                continue;
            }
            match KNOWN_VARIABLES.iter().position(|k| *k == name) {
                Some(i) => env.set(i, value),
                None => {
                    let reason = match suggest(&name) {
                        Some(s) => format!("unknown variable (did you mean {s}?)"),
                        None => "unknown variable".to_owned(),
                    };
                    // The value of an unknown variable is not shown: we cannot know whether
                    // it is a secret (e.g. a misspelled header rule with a token).
                    env.issues
                        .push(ConfigIssue::new(&name, json::REDACTED, reason, "ignored"));
                }
            }
        }
        let config = env.build();
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
    fn new(
        variable: &str,
        value: &str,
        reason: impl Into<String>,
        default_used: impl Into<String>,
    ) -> Self {
        let mut v: String = value.chars().take(ISSUE_VALUE_MAX_CHARS).collect();
        if value.chars().nth(ISSUE_VALUE_MAX_CHARS).is_some() {
            v.push_str(json::TRUNCATION_MARKER);
        }
        ConfigIssue {
            variable: variable.to_owned(),
            value: v,
            reason: reason.into(),
            default_used: default_used.into(),
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

/// The known variable closest to `name` (edit distance at most 3), for typo hints.
fn suggest(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    KNOWN_VARIABLES
        .iter()
        .map(|k| (edit_distance(upper.as_bytes(), k.as_bytes()), *k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Collected variable values and issues while parsing.
#[derive(Default)]
struct Env {
    values: Vec<(usize, String)>,
    issues: Vec<ConfigIssue>,
}

const SWITCH_REASON: &str = "expected on or off";

impl Env {
    fn set(&mut self, index: usize, value: String) {
        // Last definition wins, as in a shell.
        self.values.retain(|(i, _)| *i != index);
        self.values.push((index, value));
    }

    fn get(&self, name: &str) -> Option<&str> {
        let index = KNOWN_VARIABLES.iter().position(|k| *k == name)?;
        self.values
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, v)| v.as_str())
    }

    fn issue(
        &mut self,
        name: &str,
        value: &str,
        reason: impl Into<String>,
        default_used: impl Into<String>,
    ) {
        self.issues
            .push(ConfigIssue::new(name, value, reason, default_used));
    }

    fn switch(&mut self, name: &str, default: bool) -> bool {
        let Some(raw) = self.get(name) else {
            return default;
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => true,
            "off" | "false" | "0" | "no" => false,
            _ => {
                let raw = raw.to_owned();
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

    /// One of `options` (case-insensitive); `options[0]` is the default.
    fn choice<T: Copy>(&mut self, name: &str, options: &[(&str, T)]) -> T {
        let Some(raw) = self.get(name) else {
            return options[0].1;
        };
        let wanted = raw.trim();
        if let Some((_, v)) = options.iter().find(|(n, _)| n.eq_ignore_ascii_case(wanted)) {
            return *v;
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let raw = raw.to_owned();
        self.issue(
            name,
            &raw,
            format!("expected one of: {}", names.join(", ")),
            options[0].0,
        );
        options[0].1
    }

    fn number(&mut self, name: &str, min: u64, max: u64, default: u64) -> u64 {
        let Some(raw) = self.get(name) else {
            return default;
        };
        match raw.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                let raw = raw.to_owned();
                self.issue(
                    name,
                    &raw,
                    format!("expected an integer from {min} to {max}"),
                    default.to_string(),
                );
                default
            }
        }
    }

    /// The raw list text (value or default), owned so entries can be reported while parsing.
    fn list_text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// A comma list of header names; invalid or `reserved` names are reported and skipped.
    fn header_names(
        &mut self,
        name: &str,
        default: &str,
        reserved: &dyn Fn(&HeaderName) -> Option<&'static str>,
    ) -> Vec<HeaderName> {
        let text = self.list_text(name, default);
        let mut out: Vec<HeaderName> = Vec::new();
        for entry in header_rules::split_list(&text) {
            match header_rules::parse_name(entry) {
                None => self.issue(name, entry, "invalid header name", "entry ignored"),
                Some(h) => match reserved(&h) {
                    Some(why) => self.issue(name, entry, why, "entry ignored"),
                    None if out.contains(&h) => {}
                    None => out.push(h),
                },
            }
        }
        out
    }

    fn build(&mut self) -> Config {
        let enabled = self.switch("EDGE_OBS_ENABLED", true);
        let service_name = self.service_name();
        let body_size_mode = self.choice(
            "EDGE_OBS_BODY_SIZE",
            &[
                ("count", BodySizeMode::Count),
                ("content-length", BodySizeMode::ContentLength),
            ],
        );
        let redaction = self.redaction();
        let request_id = self.request_id(&redaction);
        let trace_context = self.switch("EDGE_OBS_TRACE_CONTEXT", true);
        let security = self.security();
        let remove_response_headers = self.header_names(
            "EDGE_OBS_REMOVE_RESPONSE_HEADERS",
            security_headers::DEFAULT_REMOVE,
            &|_| None,
        );
        let server_timing = self.switch("EDGE_OBS_SERVER_TIMING", true);
        let id_header = request_id.header.clone();
        let request_managed = move |h: &HeaderName| -> Option<&'static str> {
            (*h == id_header || *h == TRACEPARENT || *h == TRACESTATE)
                .then_some("managed by the middleware (request id / trace context)")
        };
        let request_rules = self.rules("REQUEST", &request_managed);
        let id_header = request_id.header.clone();
        let response_managed = move |h: &HeaderName| -> Option<&'static str> {
            (*h == id_header).then_some("managed by the middleware (request id)")
        };
        let response_rules = self.rules("RESPONSE", &response_managed);
        let log = self.log();
        let metrics = self.switch("EDGE_OBS_METRICS", true);
        let routes = self.routes();
        let client_addr = ClientAddrConfig {
            trusted_hops: self.number("EDGE_OBS_TRUSTED_PROXY_HOPS", 0, MAX_TRUSTED_HOPS as u64, 0)
                as usize,
            source: self.choice(
                "EDGE_OBS_CLIENT_ADDRESS_HEADER",
                &[
                    ("auto", Source::Auto),
                    ("forwarded", Source::Forwarded),
                    ("x-forwarded-for", Source::XForwardedFor),
                ],
            ),
        };
        Config {
            enabled,
            service_name,
            body_size_mode,
            request_id,
            trace_context,
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
        }
    }

    fn service_name(&mut self) -> Option<String> {
        const NAME: &str = "EDGE_OBS_SERVICE_NAME";
        let raw = self.get(NAME)?.to_owned();
        let v = raw.trim();
        let reason = if v.is_empty() {
            "empty value"
        } else if v.chars().count() > SERVICE_NAME_MAX_CHARS {
            "longer than 128 characters"
        } else if v.chars().any(char::is_control) {
            "control characters are not allowed"
        } else {
            return Some(v.to_owned());
        };
        self.issue(NAME, &raw, reason, "unset");
        None
    }

    fn redaction(&mut self) -> Redaction {
        let headers = self.header_names("EDGE_OBS_REDACT_HEADERS", "", &|_| None);
        const NAME: &str = "EDGE_OBS_REDACT_QUERY_PARAMS";
        let text = self.list_text(NAME, redact::DEFAULT_QUERY_PARAMS);
        let mut query_params: Vec<String> = Vec::new();
        for entry in header_rules::split_list(&text) {
            if entry
                .bytes()
                .any(|b| matches!(b, b'&' | b'=' | b';' | b'#' | b'?') || !b.is_ascii_graphic())
            {
                self.issue(NAME, entry, "invalid parameter name", "entry ignored");
            } else {
                let lower = entry.to_ascii_lowercase();
                if !query_params.contains(&lower) {
                    query_params.push(lower);
                }
            }
        }
        Redaction {
            headers,
            query_params,
        }
    }

    fn request_id(&mut self, redaction: &Redaction) -> RequestIdConfig {
        let defaults = RequestIdConfig::default();
        // Reading a secret header as request id would copy credentials into logs and to other
        // services; trace and framing headers have their own meaning.
        let reserved = |h: &HeaderName| -> Option<&'static str> {
            let n = h.as_str();
            (redaction.is_secret_header(h)
                || *h == TRACEPARENT
                || *h == TRACESTATE
                || FORBIDDEN_TO_SET.contains(&n)
                || ALWAYS_REDACTED_HEADERS.contains(&n))
            .then_some("reserved header (secret, trace context or framing)")
        };
        const HEADER: &str = "EDGE_OBS_REQUEST_ID_HEADER";
        let header = match self.get(HEADER).map(str::to_owned) {
            None => defaults.header.clone(),
            Some(raw) => match header_rules::parse_name(&raw) {
                None => {
                    self.issue(
                        HEADER,
                        &raw,
                        "invalid header name",
                        defaults.header.as_str(),
                    );
                    defaults.header.clone()
                }
                Some(h) => match reserved(&h) {
                    Some(why) => {
                        self.issue(HEADER, &raw, why, defaults.header.as_str());
                        defaults.header.clone()
                    }
                    None => h,
                },
            },
        };
        let mut aliases =
            self.header_names("EDGE_OBS_REQUEST_ID_ALIASES", "x-correlation-id", &reserved);
        aliases.retain(|a| *a != header);
        let max_len = self.number(
            "EDGE_OBS_REQUEST_ID_MAX_LEN",
            1,
            MAX_LEN_LIMIT as u64,
            defaults.max_len as u64,
        ) as usize;
        let policy = self.choice(
            "EDGE_OBS_REQUEST_ID_POLICY",
            &[("accept", Policy::Accept), ("reject", Policy::Reject)],
        );
        let format = self.choice(
            "EDGE_OBS_REQUEST_ID_FORMAT",
            &[("uuid-v7", IdFormat::UuidV7), ("uuid-v4", IdFormat::UuidV4)],
        );
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
        let mode = self.choice(
            "EDGE_OBS_SECURITY_HEADERS_MODE",
            &[("override", Mode::Override), ("if-absent", Mode::IfAbsent)],
        );
        let mut headers = Vec::with_capacity(BASELINE.len());
        for b in BASELINE {
            let default = http::HeaderValue::from_static(b.default);
            let value = match self.get(b.variable).map(str::to_owned) {
                None => Some(default),
                Some(raw) => {
                    let v = raw.trim();
                    if v.eq_ignore_ascii_case("off") {
                        None
                    } else {
                        match http::HeaderValue::from_str(v) {
                            Ok(hv) if !v.is_empty() => Some(hv),
                            _ => {
                                self.issue(
                                    b.variable,
                                    &raw,
                                    "expected a non-empty header value without control characters, or off",
                                    b.default,
                                );
                                Some(default)
                            }
                        }
                    }
                }
            };
            if let Some(v) = value {
                headers.push((HeaderName::from_static(b.name), v));
            }
        }
        SecurityHeaders {
            enabled,
            mode,
            headers,
        }
    }

    fn rules(
        &mut self,
        direction: &str,
        managed: &dyn Fn(&HeaderName) -> Option<&'static str>,
    ) -> HeaderRules {
        let mut rules = HeaderRules::default();
        for (kind, target) in [("SET", 0), ("APPEND", 1)] {
            let name = format!("EDGE_OBS_{direction}_{kind}_HEADERS");
            let text = self.list_text(&name, "");
            for entry in header_rules::split_entries(&text) {
                let shown = header_rules::entry_for_display(entry);
                match header_rules::parse_entry(entry) {
                    Err(e) => self.issue(&name, &shown, e.as_str(), "entry ignored"),
                    Ok((h, v)) => match managed(&h) {
                        Some(why) => self.issue(&name, &shown, why, "entry ignored"),
                        None if target == 0 => rules.set.push((h, v)),
                        None => rules.append.push((h, v)),
                    },
                }
            }
        }
        let name = format!("EDGE_OBS_{direction}_REMOVE_HEADERS");
        rules.remove = self.header_names(&name, "", managed);
        rules
    }

    fn log(&mut self) -> LogConfig {
        let d = LogConfig::default();
        let enabled = self.switch("EDGE_OBS_LOG", true);
        let format = self.choice(
            "EDGE_OBS_LOG_FORMAT",
            &[("json", LogFormat::Json), ("pretty", LogFormat::Pretty)],
        );
        let level = self.choice(
            "EDGE_OBS_LOG_LEVEL",
            &[
                ("info", Level::Info),
                ("debug", Level::Debug),
                ("warn", Level::Warn),
                ("error", Level::Error),
                ("warning", Level::Warn),
            ],
        );
        let sample_rate_ppm = self.sample_rate();
        let slow_ms = self.number("EDGE_OBS_LOG_SLOW_MS", 0, 3_600_000, d.slow_ms);
        const SKIP: &str = "EDGE_OBS_LOG_SKIP_PATHS";
        let text = self.list_text(SKIP, "/livez,/readyz,/healthz,/startupz");
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
                    "entry ignored",
                );
            }
        }
        let start_line = self.switch("EDGE_OBS_LOG_START", false);
        let user_agent_max = self.number(
            "EDGE_OBS_LOG_USER_AGENT_MAX",
            0,
            USER_AGENT_MAX_LIMIT as u64,
            d.user_agent_max as u64,
        ) as usize;
        let request_headers = self.logged_headers("EDGE_OBS_LOG_REQUEST_HEADERS");
        let response_headers = self.logged_headers("EDGE_OBS_LOG_RESPONSE_HEADERS");
        LogConfig {
            enabled,
            format,
            level,
            sample_rate_ppm,
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
        if list.len() > MAX_LOGGED_HEADERS {
            for extra in list.drain(MAX_LOGGED_HEADERS..).collect::<Vec<_>>() {
                self.issue(
                    name,
                    extra.as_str(),
                    "at most 16 headers are logged per direction",
                    "entry ignored",
                );
            }
        }
        list
    }

    fn sample_rate(&mut self) -> u32 {
        const NAME: &str = "EDGE_OBS_LOG_SAMPLE_RATE";
        let Some(raw) = self.get(NAME) else {
            return 1_000_000;
        };
        match parse_rate(raw) {
            Some(ppm) => ppm,
            None => {
                let raw = raw.to_owned();
                self.issue(
                    NAME,
                    &raw,
                    "expected a decimal number from 0.0 to 1.0",
                    "1.0",
                );
                1_000_000
            }
        }
    }

    fn routes(&mut self) -> Vec<RouteTemplate> {
        const NAME: &str = "EDGE_OBS_ROUTES";
        let text = self.list_text(NAME, "");
        let mut routes: Vec<RouteTemplate> = Vec::new();
        for entry in header_rules::split_list(&text) {
            match RouteTemplate::parse(entry) {
                Ok(r) => routes.push(r),
                Err(e) => self.issue(NAME, entry, e.as_str(), "entry ignored"),
            }
        }
        routes
    }
}

/// Parses a rate from 0 to 1 written as a plain decimal (`1`, `0.25`, `.5`), into millionths.
/// Written by hand because float parsing would add code size for one setting; digits after
/// the sixth decimal are ignored.
pub fn parse_rate(s: &str) -> Option<u32> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole_value: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut ppm: u64 = 0;
    for (i, b) in frac.bytes().take(6).enumerate() {
        ppm += u64::from(b - b'0') * 10u64.pow(5 - i as u32);
    }
    let total = whole_value.checked_mul(1_000_000)?.checked_add(ppm)?;
    // 1.0000001 is over 1 even though the seventh digit is otherwise ignored.
    let beyond = frac.bytes().skip(6).any(|b| b != b'0');
    (total < 1_000_000 || (total == 1_000_000 && !beyond)).then_some(total as u32)
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
        for b in BASELINE {
            for bad in ["", "a\u{1}b", "x\ny"] {
                let (c, issue) = one_issue(b.variable, bad);
                assert_eq!(issue.default_used, b.default);
                let (_, v) = c
                    .security
                    .headers
                    .iter()
                    .find(|(n, _)| n == b.name)
                    .unwrap();
                assert_eq!(v, b.default);
            }
        }
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
    fn unknown_variables_are_reported_with_hints() {
        let (_, issues) = parse(&[
            ("EDGE_OBS_LOG_LEVL", "debug"),
            ("EDGE_OBS_WHATEVER_THIS_IS", "token-abc"),
            ("edge_obs_log", "on"),
            ("NOT_EDGE_OBS_LOG", "x"),
        ]);
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert_eq!(
            issues[0].reason,
            "unknown variable (did you mean EDGE_OBS_LOG_LEVEL?)"
        );
        assert_eq!(issues[1].reason, "unknown variable");
        assert_eq!(
            issues[2].reason,
            "unknown variable (did you mean EDGE_OBS_LOG?)"
        );
        for i in &issues {
            assert_eq!(i.value, "[REDACTED]");
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
        for b in BASELINE {
            assert!(KNOWN_VARIABLES.contains(&b.variable));
        }
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
        assert_eq!(edit_distance(b"", b"abc"), 3);
        assert_eq!(edit_distance(b"same", b"same"), 0);
    }
}

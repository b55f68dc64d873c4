//! The span event line, schema `edge_obs.span.v1` (see `docs/span-event.md`).
//!
//! One line per sampled request reports this hop's server span, so the span id the middleware
//! forwards in `traceparent` reaches a tracing backend (runtime-host exports it over OTLP). It
//! does not depend on the log level or log sampling. Attributes are the access log's, written
//! by the same code, so redaction is the same.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;

use crate::access_log::hex;
use crate::access_log::{self, MAX_LINE_BYTES, Record};
use crate::json::ObjectLine;
use crate::metrics::standard_method;
use crate::trace_context::TraceIds;

/// Schema name.
pub const SCHEMA: &str = "edge_obs.span.v1";

/// Every span line starts with this, so consumers can tell it from other lines by prefix.
pub const LINE_PREFIX: &str = "{\"schema\":\"edge_obs.span.v1\"";

/// `kind` of every span the middleware reports.
pub const KIND_SERVER: &str = "server";
/// `status` of a span whose request failed (5xx or no complete response, see [`status`]).
pub const STATUS_ERROR: &str = "error";
/// `status` of any other span (OpenTelemetry leaves 4xx of a server span unset).
pub const STATUS_UNSET: &str = "unset";

/// Longest span name written (method plus route template).
const NAME_MAX_CHARS: usize = 16 + 1 + crate::route::MAX_TEMPLATE_LEN;

/// One finished server span.
#[derive(Clone, Copy, Debug)]
pub struct SpanEvent<'a> {
    /// This hop's ids (span id, trace id, the caller's span id when continued).
    pub trace: &'a TraceIds,
    /// The request method (for the name).
    pub method: &'a Method,
    /// When the request arrived.
    pub start: SystemTime,
    /// How long the exchange took.
    pub duration: Duration,
    /// The fields shared with the access log (route, status, `error.type`, sizes, ...).
    pub record: &'a Record<'a>,
}

/// Unix time in nanoseconds (0 before 1970, saturating far in the future).
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The span name the OpenTelemetry HTTP conventions give a server span: `{method} {route}`,
/// or `{method}` without a route; an unknown method is `HTTP`.
pub fn name(method: &Method, route: Option<&str>) -> String {
    let m = match standard_method(method) {
        "_OTHER" => "HTTP",
        m => m,
    };
    // Concatenated by hand: `format!` would pull `core::fmt` into this path.
    let mut out = String::with_capacity(m.len() + route.map_or(0, |r| r.len() + 1));
    out.push_str(m);
    if let Some(r) = route {
        out.push(' ');
        out.push_str(r);
    }
    out
}

/// The span status: an error for a failure (`error.type` set) unless the answer is a 4xx,
/// which OpenTelemetry's HTTP conventions leave unset for a server span (the client's
/// mistake, e.g. a 429 over the rate limit, is not the server's error).
pub fn status(http_status: Option<u16>, error_type: Option<&str>) -> &'static str {
    let client_error = http_status.is_some_and(|s| (400..500).contains(&s));
    if error_type.is_some() && !client_error {
        STATUS_ERROR
    } else {
        STATUS_UNSET
    }
}

/// Appends the span line (ending in `\n`) to `out`.
pub fn write(ev: &SpanEvent<'_>, out: &mut String) {
    let t = ev.trace;
    let mut line = ObjectLine::begin(out, MAX_LINE_BYTES);
    line.plain("schema", SCHEMA);
    line.plain("trace_id", hex(&t.trace_id).as_str());
    line.plain("span_id", hex(&t.span_id).as_str());
    if let Some(p) = t.parent_span_id {
        line.plain("parent_span_id", hex(&p).as_str());
    }
    line.str("name", &name(ev.method, ev.record.route), NAME_MAX_CHARS);
    line.plain("kind", KIND_SERVER);
    let start = unix_nanos(ev.start);
    line.u64("start_time_unix_nano", start);
    line.u64(
        "end_time_unix_nano",
        start.saturating_add(u64::try_from(ev.duration.as_nanos()).unwrap_or(u64::MAX)),
    );
    line.plain("status", status(ev.record.status, ev.record.error_type));
    line.begin_object("attributes");
    access_log::write_attributes(ev.record, &mut line);
    line.end_object();
    line.finish();
}

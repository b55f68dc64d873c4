//! What the product adds to a `GET /hello` with its default settings, as constants: the two
//! request headers it forwards, the eleven response headers it sets and the three stdout lines
//! it writes (access log, metric event, span event), captured from one request through
//! runtime-host. The "same output" floor sends exactly these, so that the benchmarks can tell
//! what any middleware producing that output must pay from what the product's own code costs.

/// Request headers the product sets (request id and trace context).
pub const REQUEST_HEADERS: [(&str, &str); 2] = [
    ("x-request-id", "01a222b8-eb18-7527-be3b-8c75022a62c9"),
    (
        "traceparent",
        "00-135dd3db62d52a8b301ad652fb3fc68d-3df4d55b213b957f-01",
    ),
];

/// Response headers the product sets (security baseline, request id, `Server-Timing`).
pub const RESPONSE_HEADERS: [(&str, &str); 11] = [
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
    ),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-xss-protection", "0"),
    ("x-request-id", "01a222b8-eb04-75d0-b274-213d2e2ea03f"),
    ("server-timing", "app;dur=0.307"),
];

/// The three lines, as the product writes them: one write per line, and the metric event
/// with the ids of the reported span (its exemplar).
pub const LINES: &str = concat!(
    r#"{"timestamp":"2026-11-28T15:14:33.860Z","level":"info","event":"http.request","request_id":"01a222b8-eb04-75d0-b274-213d2e2ea03f","trace_id":"7e553c2586f95fc91255967f72acf896","span_id":"6193e1ed0d2b39f8","http.request.method":"GET","url.scheme":"http","http.response.status_code":200,"duration_ms":0.835,"http.request.body.size":0,"http.response.body.size":6,"client.address":"127.0.0.1","server.address":"127.0.0.1:18080","url.path":"/hello","user_agent.original":"curl/7.88.1"}"#,
    "\n",
    r#"{"schema":"edge_obs.metric.v1","time":"2026-11-28T15:14:33.860Z","duration_s":0.000835,"request_body_bytes":0,"response_body_bytes":6,"trace_id":"7e553c2586f95fc91255967f72acf896","span_id":"6193e1ed0d2b39f8","attributes":{"http.request.method":"GET","url.scheme":"http","http.response.status_code":200}}"#,
    "\n",
    r#"{"schema":"edge_obs.span.v1","trace_id":"7e553c2586f95fc91255967f72acf896","span_id":"6193e1ed0d2b39f8","name":"GET","kind":"server","start_time_unix_nano":1795878873859000000,"end_time_unix_nano":1795878873860000000,"status":"unset","attributes":{"request_id":"01a222b8-eb04-75d0-b274-213d2e2ea03f","http.request.method":"GET","url.scheme":"http","http.response.status_code":200,"http.request.body.size":0,"http.response.body.size":6,"client.address":"127.0.0.1","server.address":"127.0.0.1:18080","url.path":"/hello","user_agent.original":"curl/7.88.1"}}"#,
    "\n",
);

use super::*;
use crate::json::{REDACTED, TRUNCATION_MARKER};
use serde_json::Value;

const RND: [u8; 48] = [0x42; 48];
const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A middleware with these settings; span lines are off unless asked for, so the tests of
/// the other lines see only those.
fn mw(vars: &[(&str, &str)]) -> Middleware {
    let spans = if vars.iter().any(|(k, _)| *k == "EDGE_OBS_SPANS") {
        None
    } else {
        Some(("EDGE_OBS_SPANS", "off"))
    };
    let (m, issues) = Middleware::from_env(
        vars.iter()
            .copied()
            .chain(spans)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    assert!(issues.is_empty(), "{issues:?}");
    m
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    h
}

fn start(m: &Middleware, method: &Method, target: &str, h: &mut HeaderMap) -> Exchange {
    let head = RequestHead {
        method,
        scheme: Some("https"),
        authority: Some("example.com"),
        path_with_query: target,
    };
    m.start_with(&head, h, Some(Instant::now()), SystemTime::now(), &RND)
}

/// Runs a whole exchange: request headers, app response status/headers, completion.
fn run(
    m: &Middleware,
    target: &str,
    req: &[(&str, &[u8])],
    status: u16,
    resp: &[(&str, &[u8])],
) -> (HeaderMap, HeaderMap, Vec<Value>) {
    let mut fwd = headers(req);
    let mut ex = start(m, &Method::GET, target, &mut fwd);
    let mut rh = headers(resp);
    ex.on_response(
        StatusCode::from_u16(status).unwrap(),
        &mut rh,
        Duration::from_micros(12_345),
    );
    let out = ex.finish_after(Completion::default(), Duration::from_millis(5));
    (fwd, rh, lines(&out))
}

/// Every line must be one JSON object; returns them parsed.
fn lines(out: &str) -> Vec<Value> {
    if out.is_empty() {
        return Vec::new();
    }
    assert!(out.ends_with('\n'), "{out:?}");
    out.lines()
        .map(|l| {
            assert!(l.len() < 4000);
            assert!(
                !l.bytes().any(|b| b < 0x20 || b == 0x7f),
                "raw control char in {l:?}"
            );
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v.is_object());
            v
        })
        .collect()
}

fn log_line(v: &[Value]) -> &Value {
    v.iter()
        .find(|l| l.get("event").is_some())
        .expect("log line")
}

fn metric_line(v: &[Value]) -> &Value {
    v.iter()
        .find(|l| l.get("schema").is_some())
        .expect("metric line")
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

#[test]
fn generates_an_id_and_starts_a_trace_when_the_request_has_none() {
    let (fwd, resp, out) = run(&mw(&[]), "/hello", &[], 200, &[]);
    let id = fwd["x-request-id"].to_str().unwrap();
    assert!(is_uuid(id));
    assert_eq!(resp["x-request-id"], id);
    let tp = trace_context::parse_traceparent(fwd["traceparent"].as_bytes()).unwrap();
    assert_eq!(tp.trace_id, [0x42; 16]);
    assert_eq!(tp.parent_id, [0x42; 8]);
    assert_eq!(tp.flags, 1);
    assert_eq!(out.len(), 2);
    let log = log_line(&out);
    assert_eq!(log["request_id"], id);
    assert_eq!(log["trace_id"], "42".repeat(16));
    assert_eq!(log["span_id"], "42".repeat(8));
    assert!(log.get("parent_span_id").is_none());
    assert!(log.get("request_id.replaced").is_none());
}

#[test]
fn a_valid_client_id_is_kept_verbatim_everywhere() {
    let (fwd, resp, out) = run(
        &mw(&[]),
        "/",
        &[("x-request-id", b"Client-ID_123:abc")],
        200,
        &[("x-request-id", b"app-set"), ("x-request-id", b"app-set-2")],
    );
    assert_eq!(
        fwd.get_all("x-request-id").iter().collect::<Vec<_>>(),
        ["Client-ID_123:abc"]
    );
    assert_eq!(
        resp.get_all("x-request-id").iter().collect::<Vec<_>>(),
        ["Client-ID_123:abc"]
    );
    assert_eq!(log_line(&out)["request_id"], "Client-ID_123:abc");
}

#[test]
fn an_alias_id_is_forwarded_under_the_primary_name_and_the_alias_kept() {
    let (fwd, _, out) = run(&mw(&[]), "/", &[("x-correlation-id", b"corr-1")], 200, &[]);
    assert_eq!(fwd["x-request-id"], "corr-1");
    assert_eq!(fwd["x-correlation-id"], "corr-1");
    assert_eq!(log_line(&out)["request_id"], "corr-1");
}

#[test]
fn bad_client_ids_are_replaced_and_reported() {
    let long = vec![b'a'; 129];
    let huge = vec![b'b'; 64 * 1024];
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "empty"),
        (&long, "too long"),
        (&huge, "too long"),
        (b"a\tb", "invalid character"),
        (b"a b", "invalid character"),
        (b"\"quoted\"", "invalid character"),
        (b"back\\slash", "invalid character"),
        (b"caf\xc3\xa9", "invalid character"),
        (b"\xff\xfe\x80", "invalid character"),
        (
            br#"{"level":"error","request_id":"x"}"#,
            "invalid character",
        ),
        (b"id\x7f", "invalid character"),
    ];
    for (value, reason) in cases {
        // HeaderValue refuses CR/LF/NUL and DEL; those cannot reach us through a HeaderMap.
        let Ok(hv) = HeaderValue::from_bytes(value) else {
            assert!(value.contains(&0x7f));
            continue;
        };
        let mut fwd = HeaderMap::new();
        fwd.insert("x-request-id", hv);
        let mut ex = start(&mw(&[]), &Method::GET, "/", &mut fwd);
        ex.on_response(StatusCode::OK, &mut HeaderMap::new(), Duration::ZERO);
        let out = ex.finish_after(Completion::default(), Duration::ZERO);
        let v = lines(&out);
        let log = log_line(&v);
        let id = fwd["x-request-id"].to_str().unwrap();
        assert!(is_uuid(id), "{value:?}");
        assert_eq!(log["request_id"], id);
        assert_eq!(log["request_id.replaced"], reason, "{value:?}");
        let received = log["request_id.received"].as_str().unwrap();
        let expected: String = String::from_utf8_lossy(value).chars().take(64).collect();
        if String::from_utf8_lossy(value).chars().count() > 64 {
            assert_eq!(received, format!("{expected}{TRUNCATION_MARKER}"));
        } else {
            assert_eq!(received, expected);
        }
        assert!(out.len() < 2 * 4000);
    }
}

#[test]
fn several_id_headers_are_ambiguous() {
    let (fwd, _, out) = run(
        &mw(&[]),
        "/",
        &[("x-request-id", b"a"), ("x-request-id", b"b")],
        200,
        &[],
    );
    assert_eq!(fwd.get_all("x-request-id").iter().count(), 1);
    assert!(is_uuid(fwd["x-request-id"].to_str().unwrap()));
    assert_eq!(log_line(&out)["request_id.replaced"], "multiple values");
}

#[test]
fn reject_policy_replaces_even_valid_ids() {
    let m = mw(&[
        ("EDGE_OBS_REQUEST_ID_POLICY", "reject"),
        ("EDGE_OBS_REQUEST_ID_FORMAT", "uuid-v4"),
    ]);
    let (fwd, _, out) = run(&m, "/", &[("x-request-id", b"good")], 200, &[]);
    let id = fwd["x-request-id"].to_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    let log = log_line(&out);
    assert_eq!(log["request_id.replaced"], "policy");
    assert_eq!(log["request_id.received"], "good");
}

#[test]
fn a_valid_traceparent_is_continued() {
    let (fwd, _, out) = run(
        &mw(&[]),
        "/",
        &[("traceparent", TP.as_bytes()), ("tracestate", b"vendor=1")],
        200,
        &[],
    );
    assert_eq!(
        fwd["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-4242424242424242-01"
    );
    assert_eq!(fwd["tracestate"], "vendor=1");
    let log = log_line(&out);
    assert_eq!(log["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(log["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(log["span_id"], "4242424242424242");
}

#[test]
fn invalid_traceparents_start_a_new_trace_and_drop_tracestate() {
    let invalid = [
        "",
        "garbage",
        &TP.replacen("00", "ff", 1),
        &TP.to_uppercase(),
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        &format!("{TP}-x"),
        &TP[..54],
    ];
    for tp in invalid {
        let (fwd, _, out) = run(
            &mw(&[]),
            "/",
            &[("traceparent", tp.as_bytes()), ("tracestate", b"v=1")],
            200,
            &[],
        );
        assert!(fwd.get("tracestate").is_none(), "{tp}");
        let log = log_line(&out);
        assert_eq!(log["trace_id"], "42".repeat(16), "{tp}");
        assert!(log.get("parent_span_id").is_none());
    }
    // Two traceparent headers.
    let (fwd, _, out) = run(
        &mw(&[]),
        "/",
        &[
            ("traceparent", TP.as_bytes()),
            ("traceparent", TP.as_bytes()),
        ],
        200,
        &[],
    );
    assert_eq!(fwd.get_all("traceparent").iter().count(), 1);
    assert_eq!(log_line(&out)["trace_id"], "42".repeat(16));
    // tracestate alone.
    let (fwd, _, _) = run(&mw(&[]), "/", &[("tracestate", b"v=1")], 200, &[]);
    assert!(fwd.get("tracestate").is_none());
}

#[test]
fn trace_context_off_leaves_trace_headers_alone() {
    let m = mw(&[("EDGE_OBS_TRACE_CONTEXT", "off")]);
    let (fwd, _, out) = run(
        &m,
        "/",
        &[("traceparent", b"garbage"), ("tracestate", b"v=1")],
        200,
        &[],
    );
    assert_eq!(fwd["traceparent"], "garbage");
    assert_eq!(fwd["tracestate"], "v=1");
    let log = log_line(&out);
    assert!(log.get("trace_id").is_none() && log.get("span_id").is_none());
}

#[test]
fn response_headers_are_decorated() {
    let (_, resp, _) = run(
        &mw(&[]),
        "/",
        &[],
        200,
        &[
            ("server", b"nginx"),
            ("x-powered-by", b"PHP"),
            ("x-frame-options", b"SAMEORIGIN"),
            ("server-timing", b"db;dur=3"),
            ("content-type", b"text/html"),
        ],
    );
    assert!(resp.get("server").is_none() && resp.get("x-powered-by").is_none());
    assert_eq!(
        resp.get_all("x-frame-options").iter().collect::<Vec<_>>(),
        ["DENY"]
    );
    assert_eq!(
        resp["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    assert_eq!(resp["x-content-type-options"], "nosniff");
    assert_eq!(resp["content-type"], "text/html");
    let timing: Vec<_> = resp.get_all("server-timing").iter().collect();
    assert_eq!(timing, ["db;dur=3", "app;dur=12.345"]);
    assert_eq!(resp.get_all("x-request-id").iter().count(), 1);
}

#[test]
fn response_options_are_honoured() {
    let m = mw(&[
        ("EDGE_OBS_SECURITY_HEADERS_MODE", "if-absent"),
        ("EDGE_OBS_SECURITY_X_XSS_PROTECTION", "off"),
        ("EDGE_OBS_SERVER_TIMING", "off"),
        ("EDGE_OBS_REMOVE_RESPONSE_HEADERS", "x-internal"),
        (
            "EDGE_OBS_RESPONSE_SET_HEADERS",
            "content-security-policy: default-src 'none'",
        ),
        ("EDGE_OBS_RESPONSE_APPEND_HEADERS", "x-edge: 1"),
        ("EDGE_OBS_RESPONSE_REMOVE_HEADERS", "x-debug"),
        ("EDGE_OBS_REQUEST_SET_HEADERS", "x-forwarded-proto: https"),
        ("EDGE_OBS_REQUEST_APPEND_HEADERS", "x-via: edge"),
        ("EDGE_OBS_REQUEST_REMOVE_HEADERS", "x-drop"),
    ]);
    let (fwd, resp, _) = run(
        &m,
        "/",
        &[
            ("x-forwarded-proto", b"http"),
            ("x-via", b"a"),
            ("x-drop", b"1"),
        ],
        200,
        &[
            ("x-frame-options", b"SAMEORIGIN"),
            ("server", b"kept"),
            ("x-internal", b"1"),
            ("x-debug", b"1"),
        ],
    );
    assert_eq!(fwd["x-forwarded-proto"], "https");
    assert_eq!(
        fwd.get_all("x-via").iter().collect::<Vec<_>>(),
        ["a", "edge"]
    );
    assert!(fwd.get("x-drop").is_none());
    assert_eq!(resp["x-frame-options"], "SAMEORIGIN");
    assert!(resp.get("x-xss-protection").is_none());
    assert!(resp.get("server-timing").is_none());
    assert_eq!(resp["server"], "kept");
    assert!(resp.get("x-internal").is_none() && resp.get("x-debug").is_none());
    assert_eq!(resp["content-security-policy"], "default-src 'none'");
    assert_eq!(resp["x-edge"], "1");
}

#[test]
fn security_headers_off() {
    let (_, resp, _) = run(
        &mw(&[("EDGE_OBS_SECURITY_HEADERS", "off")]),
        "/",
        &[],
        200,
        &[],
    );
    assert!(resp.get("strict-transport-security").is_none());
    assert!(resp.get("x-request-id").is_some());
}

#[test]
fn failures_answer_with_problem_json() {
    for (error, status) in [
        (ErrorType::Timeout, 504),
        (ErrorType::ConnectionRefused, 502),
        (ErrorType::DestinationUnavailable, 502),
        (ErrorType::Internal, 502),
        (ErrorType::Other, 502),
    ] {
        let m = mw(&[("EDGE_OBS_LOG_RESPONSE_HEADERS", "content-type")]);
        let mut fwd = headers(&[("x-request-id", b"req-9")]);
        let mut ex = start(&m, &Method::POST, "/api", &mut fwd);
        let f = ex.on_failure(error);
        assert_eq!(f.status.as_u16(), status);
        assert_eq!(f.headers["content-type"], "application/problem+json");
        assert_eq!(f.headers["cache-control"], "no-store");
        assert_eq!(
            f.headers["content-length"],
            f.body.len().to_string().as_str()
        );
        assert_eq!(f.headers["x-request-id"], "req-9");
        assert_eq!(f.headers["x-frame-options"], "DENY");
        assert!(
            f.headers["server-timing"]
                .to_str()
                .unwrap()
                .starts_with("app;dur=")
        );
        let body: Value = serde_json::from_slice(&f.body).unwrap();
        assert_eq!(body["status"], status);
        assert_eq!(body["request_id"], "req-9");
        let out = ex.finish_after(
            Completion {
                response_body_bytes: Some(f.body.len() as u64),
                ..Completion::default()
            },
            Duration::from_millis(30),
        );
        let v = lines(&out);
        let log = log_line(&v);
        assert_eq!(log["level"], "error");
        assert_eq!(log["error.type"], error.as_str());
        assert_eq!(log["http.response.status_code"], status);
        assert_eq!(
            log["http.response.header.content-type"],
            "application/problem+json"
        );
        let metric = metric_line(&v);
        assert_eq!(metric["attributes"]["error.type"], error.as_str());
        assert_eq!(metric["attributes"]["http.response.status_code"], status);
        assert_eq!(metric["response_body_bytes"], f.body.len() as u64);
    }
}

#[test]
fn error_type_strings() {
    let all = [
        (ErrorType::Timeout, "timeout"),
        (ErrorType::ConnectionRefused, "connection_refused"),
        (ErrorType::DestinationUnavailable, "destination_unavailable"),
        (ErrorType::ResponseBodyError, "response_body_error"),
        (ErrorType::RequestBodyError, "request_body_error"),
        (ErrorType::Internal, "internal_error"),
        (ErrorType::Other, "_OTHER"),
    ];
    for (e, s) in all {
        assert_eq!(e.as_str(), s);
    }
}

#[test]
fn a_successful_request_gets_a_full_log_line_and_metric() {
    let m = mw(&[
        ("EDGE_OBS_ROUTES", "/users/{id}"),
        ("EDGE_OBS_SERVICE_NAME", "shop"),
    ]);
    let mut fwd = headers(&[("user-agent", b"curl/8.0"), ("content-length", b"3")]);
    let mut ex = start(&m, &Method::PUT, "/users/42?a=1", &mut fwd);
    let mut rh = headers(&[("content-length", b"512")]);
    ex.on_response(StatusCode::CREATED, &mut rh, Duration::from_millis(1));
    let out = ex.finish_after(Completion::default(), Duration::from_micros(1234));
    let v = lines(&out);
    assert_eq!(v.len(), 2);
    let log = &v[0];
    assert!(out.starts_with("{\"timestamp\":\""));
    assert_eq!(log["level"], "info");
    assert_eq!(log["event"], "http.request");
    assert_eq!(log["service.name"], "shop");
    assert_eq!(log["http.request.method"], "PUT");
    assert_eq!(log["url.scheme"], "https");
    assert_eq!(log["server.address"], "example.com");
    assert_eq!(log["url.path"], "/users/42");
    assert_eq!(log["url.query"], "a=1");
    assert_eq!(log["http.route"], "/users/{id}");
    assert_eq!(log["http.response.status_code"], 201);
    assert_eq!(log["duration_ms"].as_f64(), Some(1.234));
    assert_eq!(log["http.request.body.size"], 3);
    assert_eq!(log["http.response.body.size"], 512);
    assert_eq!(log["user_agent.original"], "curl/8.0");
    assert!(log.get("error.type").is_none());
    assert!(log.get("client.address").is_none());
    let metric_text = out.lines().nth(1).unwrap();
    assert!(metric_text.starts_with(metrics::LINE_PREFIX));
    let metric = &v[1];
    assert_eq!(metric["duration_s"].as_f64(), Some(0.001234));
    assert_eq!(metric["request_body_bytes"], 3);
    assert_eq!(metric["response_body_bytes"], 512);
    assert_eq!(
        metric["attributes"],
        serde_json::json!({"http.request.method":"PUT","http.route":"/users/{id}","http.response.status_code":201,"url.scheme":"https"})
    );
    assert_eq!(metric["time"], log["timestamp"]);
}

#[test]
fn unknown_methods_are_other_in_metrics_but_real_in_logs() {
    for m in ["get", "PROPFIND", "Patch", "X-CUSTOM"] {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let mut fwd = HeaderMap::new();
        let mut ex = start(&mw(&[]), &method, "/", &mut fwd);
        ex.on_response(StatusCode::OK, &mut HeaderMap::new(), Duration::ZERO);
        let v = lines(&ex.finish_after(Completion::default(), Duration::ZERO));
        assert_eq!(log_line(&v)["http.request.method"], m);
        assert_eq!(
            metric_line(&v)["attributes"]["http.request.method"],
            "_OTHER"
        );
    }
}

#[test]
fn unmatched_paths_have_no_route() {
    let (_, _, out) = run(
        &mw(&[("EDGE_OBS_ROUTES", "/users/{id}")]),
        "/orders/1",
        &[],
        200,
        &[],
    );
    assert!(log_line(&out).get("http.route").is_none());
    assert!(metric_line(&out)["attributes"].get("http.route").is_none());
    assert!(
        !serde_json::to_string(metric_line(&out))
            .unwrap()
            .contains("/orders/1")
    );
}

#[test]
fn levels_follow_the_status() {
    let (_, _, out) = run(&mw(&[]), "/", &[], 404, &[]);
    assert_eq!(log_line(&out)["level"], "warn");
    assert!(metric_line(&out)["attributes"].get("error.type").is_none());
    let (_, _, out) = run(&mw(&[]), "/", &[], 503, &[]);
    assert_eq!(log_line(&out)["level"], "error");
    assert_eq!(log_line(&out)["error.type"], "503");
    assert_eq!(metric_line(&out)["attributes"]["error.type"], "503");
}

#[test]
fn body_errors_after_the_head_are_failures() {
    let mut fwd = HeaderMap::new();
    let mut ex = start(&mw(&[]), &Method::GET, "/", &mut fwd);
    ex.on_response(StatusCode::OK, &mut HeaderMap::new(), Duration::ZERO);
    let end = Completion {
        request_body_bytes: Some(0),
        response_body_bytes: Some(100),
        error: Some(ErrorType::ResponseBodyError),
    };
    let v = lines(&ex.finish_after(end, Duration::ZERO));
    let log = log_line(&v);
    assert_eq!(log["level"], "error");
    assert_eq!(log["error.type"], "response_body_error");
    assert_eq!(log["http.response.status_code"], 200);
    assert_eq!(log["http.response.body.size"], 100);
    assert_eq!(
        metric_line(&v)["attributes"]["error.type"],
        "response_body_error"
    );
}

#[test]
fn finishing_without_a_response_is_an_error() {
    let mut fwd = HeaderMap::new();
    let ex = start(&mw(&[]), &Method::GET, "/", &mut fwd);
    let v = lines(&ex.finish_after(Completion::default(), Duration::ZERO));
    let log = log_line(&v);
    assert_eq!(log["level"], "error");
    assert_eq!(log["error.type"], "_OTHER");
    assert!(log.get("http.response.status_code").is_none());
    assert!(
        metric_line(&v)["attributes"]
            .get("http.response.status_code")
            .is_none()
    );
}

#[test]
fn body_sizes_fall_back_to_content_length() {
    let mut fwd = headers(&[("content-length", b"10")]);
    let mut ex = start(&mw(&[]), &Method::HEAD, "/", &mut fwd);
    ex.on_response(
        StatusCode::OK,
        &mut headers(&[("content-length", b"999")]),
        Duration::ZERO,
    );
    let v = lines(&ex.finish_after(Completion::default(), Duration::ZERO));
    assert_eq!(metric_line(&v)["request_body_bytes"], 10);
    assert_eq!(
        metric_line(&v)["response_body_bytes"],
        0,
        "HEAD has no body"
    );
    // Invalid or duplicate content-length: unknown.
    let mut fwd = headers(&[("content-length", b"10"), ("content-length", b"11")]);
    let mut ex = start(&mw(&[]), &Method::GET, "/", &mut fwd);
    ex.on_response(
        StatusCode::OK,
        &mut headers(&[("content-length", b"-1")]),
        Duration::ZERO,
    );
    let v = lines(&ex.finish_after(Completion::default(), Duration::ZERO));
    assert!(metric_line(&v).get("request_body_bytes").is_none());
    assert!(metric_line(&v).get("response_body_bytes").is_none());
    assert!(log_line(&v).get("http.response.body.size").is_none());
    // Counted sizes win over headers.
    let mut fwd = headers(&[("content-length", b"10")]);
    let mut ex = start(&mw(&[]), &Method::GET, "/", &mut fwd);
    ex.on_response(
        StatusCode::NO_CONTENT,
        &mut HeaderMap::new(),
        Duration::ZERO,
    );
    let end = Completion {
        request_body_bytes: Some(7),
        response_body_bytes: None,
        error: None,
    };
    let v = lines(&ex.finish_after(end, Duration::ZERO));
    assert_eq!(metric_line(&v)["request_body_bytes"], 7);
    assert_eq!(metric_line(&v)["response_body_bytes"], 0);
}

#[test]
fn log_level_filter_keeps_metrics() {
    let m = mw(&[("EDGE_OBS_LOG_LEVEL", "warn")]);
    let (_, _, out) = run(&m, "/", &[], 200, &[]);
    assert_eq!(out.len(), 1);
    metric_line(&out);
    let (_, _, out) = run(&m, "/", &[], 400, &[]);
    assert_eq!(out.len(), 2);
    let m = mw(&[("EDGE_OBS_LOG_LEVEL", "error")]);
    let (_, _, out) = run(&m, "/", &[], 400, &[]);
    assert_eq!(out.len(), 1);
}

#[test]
fn sampling_applies_only_to_fast_successes() {
    let m = mw(&[("EDGE_OBS_LOG_SAMPLE_RATE", "0")]);
    let (_, _, out) = run(&m, "/", &[], 200, &[]);
    assert_eq!(out.len(), 1, "sampled out, metric kept");
    metric_line(&out);
    let (_, _, out) = run(&m, "/", &[], 500, &[]);
    assert_eq!(out.len(), 2);
    let (_, _, out) = run(&m, "/", &[], 404, &[]);
    assert_eq!(out.len(), 2);
    // Slow requests are always logged.
    let mut fwd = HeaderMap::new();
    let mut ex = start(&m, &Method::GET, "/", &mut fwd);
    ex.on_response(StatusCode::OK, &mut HeaderMap::new(), Duration::ZERO);
    let v = lines(&ex.finish_after(Completion::default(), Duration::from_millis(1500)));
    assert_eq!(v.len(), 2);
    // The draw of RND (0x42424242) is about 0.258: kept at 0.3, dropped at 0.25.
    let (_, _, out) = run(
        &mw(&[("EDGE_OBS_LOG_SAMPLE_RATE", "0.3")]),
        "/",
        &[],
        200,
        &[],
    );
    assert_eq!(out.len(), 2);
    let (_, _, out) = run(
        &mw(&[("EDGE_OBS_LOG_SAMPLE_RATE", "0.25")]),
        "/",
        &[],
        200,
        &[],
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn skip_paths_skip_only_successes() {
    let m = mw(&[]);
    let (_, _, out) = run(&m, "/healthz", &[], 200, &[]);
    assert_eq!(out.len(), 1);
    metric_line(&out);
    let (_, _, out) = run(&m, "/readyz?verbose=1", &[], 200, &[]);
    assert_eq!(out.len(), 1);
    let (_, _, out) = run(&m, "/readyz", &[], 503, &[]);
    assert_eq!(out.len(), 2);
    let (_, _, out) = run(&m, "/healthz/deep", &[], 200, &[]);
    assert_eq!(out.len(), 2, "exact match only");
}

#[test]
fn switches_turn_outputs_off() {
    let (_, _, out) = run(&mw(&[("EDGE_OBS_LOG", "off")]), "/", &[], 500, &[]);
    assert_eq!(out.len(), 1);
    metric_line(&out);
    let (_, _, out) = run(&mw(&[("EDGE_OBS_METRICS", "off")]), "/", &[], 200, &[]);
    assert_eq!(out.len(), 1);
    log_line(&out);
    let (_, _, out) = run(
        &mw(&[("EDGE_OBS_METRICS", "off"), ("EDGE_OBS_LOG", "off")]),
        "/",
        &[],
        500,
        &[],
    );
    assert!(out.is_empty());
}

#[test]
fn disabled_middleware_touches_nothing() {
    let m = mw(&[("EDGE_OBS_ENABLED", "off")]);
    let req: &[(&str, &[u8])] = &[("x-request-id", b"bad id"), ("traceparent", b"x")];
    let resp: &[(&str, &[u8])] = &[("server", b"nginx")];
    let (fwd, rh, out) = run(&m, "/", req, 200, resp);
    assert_eq!(fwd, headers(req));
    assert_eq!(rh, headers(resp));
    assert!(out.is_empty());
    assert!(!m.config().counts_body_bytes());
}

#[test]
fn secrets_never_appear_in_output() {
    let m = mw(&[
        (
            "EDGE_OBS_LOG_REQUEST_HEADERS",
            "authorization,proxy-authorization,cookie,x-api-key,x-session,accept",
        ),
        ("EDGE_OBS_LOG_RESPONSE_HEADERS", "set-cookie,x-session"),
        ("EDGE_OBS_REDACT_HEADERS", "x-session"),
    ]);
    for format in ["json", "pretty"] {
        let m = if format == "json" {
            m.clone()
        } else {
            mw(&[
                ("EDGE_OBS_LOG_FORMAT", "pretty"),
                (
                    "EDGE_OBS_LOG_REQUEST_HEADERS",
                    "authorization,cookie,x-api-key,x-session",
                ),
                ("EDGE_OBS_LOG_RESPONSE_HEADERS", "set-cookie"),
                ("EDGE_OBS_REDACT_HEADERS", "x-session"),
            ])
        };
        let mut fwd = headers(&[
            ("authorization", b"Bearer SECRET1"),
            ("proxy-authorization", b"Basic SECRET2"),
            ("cookie", b"sid=SECRET3"),
            ("x-api-key", b"SECRET4"),
            ("x-session", b"SECRET5"),
            ("accept", b"text/html"),
        ]);
        let mut ex = start(
            &m,
            &Method::GET,
            "/p?token=SECRET6&Access_Token=SECRET7&X-Amz-Signature=SECRET8&ok=1",
            &mut fwd,
        );
        let mut rh = headers(&[("set-cookie", b"sid=SECRET9"), ("x-session", b"SECRET5")]);
        ex.on_response(StatusCode::OK, &mut rh, Duration::ZERO);
        let out = ex.finish_after(Completion::default(), Duration::ZERO);
        assert!(!out.contains("SECRET"), "{out}");
        if format == "json" {
            let v = lines(&out);
            let log = log_line(&v);
            for h in [
                "authorization",
                "proxy-authorization",
                "cookie",
                "x-api-key",
                "x-session",
            ] {
                assert_eq!(log[format!("http.request.header.{h}")], REDACTED, "{h}");
            }
            assert_eq!(log["http.request.header.accept"], "text/html");
            assert_eq!(log["http.response.header.set-cookie"], REDACTED);
            assert_eq!(log["http.response.header.x-session"], REDACTED);
            assert_eq!(
                log["url.query"],
                "token=[REDACTED]&Access_Token=[REDACTED]&X-Amz-Signature=[REDACTED]&ok=1"
            );
        } else {
            assert!(
                out.contains("http.request.header.authorization=[REDACTED]"),
                "{out}"
            );
        }
        // The app still receives the credentials: redaction is for logs only.
        assert_eq!(fwd["authorization"], "Bearer SECRET1");
    }
}

#[test]
fn client_address_needs_trusted_hops() {
    let req: &[(&str, &[u8])] = &[("x-forwarded-for", b"203.0.113.9, 10.0.0.1")];
    let (_, _, out) = run(&mw(&[]), "/", req, 200, &[]);
    assert!(log_line(&out).get("client.address").is_none());
    let (_, _, out) = run(
        &mw(&[("EDGE_OBS_TRUSTED_PROXY_HOPS", "1")]),
        "/",
        req,
        200,
        &[],
    );
    assert_eq!(log_line(&out)["client.address"], "10.0.0.1");
    let (_, _, out) = run(
        &mw(&[("EDGE_OBS_TRUSTED_PROXY_HOPS", "2")]),
        "/",
        req,
        200,
        &[],
    );
    assert_eq!(log_line(&out)["client.address"], "203.0.113.9");
    let req: &[(&str, &[u8])] = &[("x-forwarded-for", b"\"><script>")];
    let (_, _, out) = run(
        &mw(&[("EDGE_OBS_TRUSTED_PROXY_HOPS", "1")]),
        "/",
        req,
        200,
        &[],
    );
    assert!(log_line(&out).get("client.address").is_none());
}

#[test]
fn a_client_forwarded_header_does_not_decide_the_logged_address_behind_an_xff_proxy() {
    // The proxy (10.0.0.2, one trusted hop) appends only X-Forwarded-For; the client sent
    // its own Forwarded header claiming 1.2.3.4.
    let req: &[(&str, &[u8])] = &[
        ("spin-client-addr", b"10.0.0.2:40000"),
        ("forwarded", b"for=1.2.3.4"),
        ("x-forwarded-for", b"198.51.100.7"),
    ];
    let hops = mw(&[("EDGE_OBS_TRUSTED_PROXY_HOPS", "1")]);
    let (_, _, out) = run(&hops, "/", req, 200, &[]);
    assert_eq!(log_line(&out)["client.address"], "10.0.0.2");
    // With the header named, the proxy's entry is the client.
    let named = mw(&[
        ("EDGE_OBS_TRUSTED_PROXY_HOPS", "1"),
        ("EDGE_OBS_CLIENT_ADDRESS_HEADER", "x-forwarded-for"),
    ]);
    let (_, _, out) = run(&named, "/", req, 200, &[]);
    assert_eq!(log_line(&out)["client.address"], "198.51.100.7");
    // Without the forged header, `auto` reads the proxy's X-Forwarded-For as before.
    let (_, _, out) = run(&hops, "/", &[req[0], req[2]], 200, &[]);
    assert_eq!(log_line(&out)["client.address"], "198.51.100.7");
}

#[test]
fn user_agent_is_truncated_and_sanitised() {
    let ua = [b"Mozilla/5.0 \xff\"".as_slice(), &[b'x'; 300]].concat();
    let (_, _, out) = run(&mw(&[]), "/", &[("user-agent", &ua)], 200, &[]);
    let got = log_line(&out)["user_agent.original"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(got.starts_with("Mozilla/5.0 \u{FFFD}\"xxx"));
    assert_eq!(got.chars().count(), 256 + TRUNCATION_MARKER.len());
    let (_, _, out) = run(
        &mw(&[("EDGE_OBS_LOG_USER_AGENT_MAX", "0")]),
        "/",
        &[("user-agent", &ua)],
        200,
        &[],
    );
    assert!(log_line(&out).get("user_agent.original").is_none());
}

#[test]
fn logged_header_values_are_joined_and_truncated() {
    let m = mw(&[("EDGE_OBS_LOG_REQUEST_HEADERS", "accept,x-long,x-missing")]);
    let long = vec![b'y'; 400];
    let (_, _, out) = run(
        &m,
        "/",
        &[("accept", b"a"), ("accept", b"b\xe9"), ("x-long", &long)],
        200,
        &[],
    );
    let log = log_line(&out);
    assert_eq!(log["http.request.header.accept"], "a, b\u{FFFD}");
    assert_eq!(
        log["http.request.header.x-long"].as_str().unwrap().len(),
        256 + TRUNCATION_MARKER.len()
    );
    assert!(log.get("http.request.header.x-missing").is_none());
}

#[test]
fn long_paths_and_queries_are_truncated() {
    let target = format!("/{}?q={}", "p".repeat(3000), "v".repeat(3000));
    let (_, _, out) = run(&mw(&[]), &target, &[], 200, &[]);
    let log = log_line(&out);
    let path = log["url.path"].as_str().unwrap();
    assert_eq!(path.len(), 1024 + TRUNCATION_MARKER.len());
    assert!(path.ends_with(TRUNCATION_MARKER));
    let query = log["url.query"].as_str().unwrap();
    assert!(query.starts_with("q=vvv") && query.ends_with(TRUNCATION_MARKER));
    // An empty query is absent.
    let (_, _, out) = run(&mw(&[]), "/a?", &[], 200, &[]);
    assert!(log_line(&out).get("url.query").is_none());
}

#[test]
fn a_long_path_does_not_cut_the_query_short_without_a_marker() {
    for path_len in [8000, 70_000] {
        let target = format!(
            "/{}?q={}&token=s3cr3t",
            "p".repeat(path_len),
            "v".repeat(2000)
        );
        let (_, _, out) = run(&mw(&[]), &target, &[], 200, &[]);
        let log = log_line(&out);
        assert!(
            log["url.path"]
                .as_str()
                .unwrap()
                .ends_with(TRUNCATION_MARKER)
        );
        let query = log["url.query"].as_str().unwrap();
        assert_eq!(query.len(), 1024 + TRUNCATION_MARKER.len(), "{query}");
        assert!(query.starts_with("q=vvv") && query.ends_with(TRUNCATION_MARKER));
    }
    // A short query after a long path is kept whole.
    let target = format!("/{}?page=2", "p".repeat(8000));
    let (_, _, out) = run(&mw(&[]), &target, &[], 200, &[]);
    assert_eq!(log_line(&out)["url.query"], "page=2");
}

#[test]
fn hostile_request_lines_cannot_forge_fields() {
    let target = "/a\"b\\c\n{\"level\":\"info\"}\r\u{0}\u{1b}[2J\u{2028}?x=\"}\n";
    let (_, _, out) = run(&mw(&[]), target, &[], 200, &[]);
    let log = log_line(&out);
    assert_eq!(
        log["url.path"],
        "/a\"b\\c\n{\"level\":\"info\"}\r\u{0}\u{1b}[2J\u{2028}"
    );
    assert_eq!(log["url.query"], "x=\"}\n");
    assert_eq!(log["level"], "info");
}

#[test]
fn start_line_needs_debug_level_and_switch() {
    let mut fwd = HeaderMap::new();
    let ex = start(
        &mw(&[("EDGE_OBS_LOG_START", "on")]),
        &Method::GET,
        "/",
        &mut fwd,
    );
    assert!(ex.start_line().is_none());
    let ex = start(
        &mw(&[("EDGE_OBS_LOG_LEVEL", "debug")]),
        &Method::GET,
        "/",
        &mut fwd,
    );
    assert!(ex.start_line().is_none());
    let m = mw(&[
        ("EDGE_OBS_LOG_START", "on"),
        ("EDGE_OBS_LOG_LEVEL", "debug"),
        ("EDGE_OBS_LOG_REQUEST_HEADERS", "accept"),
        ("EDGE_OBS_LOG_RESPONSE_HEADERS", "content-type"),
    ]);
    let mut fwd = headers(&[("accept", b"*/*")]);
    let mut ex = start(&m, &Method::GET, "/x?y=1", &mut fwd);
    let line = ex.start_line().unwrap();
    let v = lines(&line);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["level"], "debug");
    assert_eq!(v[0]["event"], "http.request.start");
    assert_eq!(v[0]["url.path"], "/x");
    assert_eq!(v[0]["request_id"], ex.request_id());
    assert_eq!(v[0]["http.request.header.accept"], "*/*");
    assert!(v[0].get("http.response.status_code").is_none());
    assert!(v[0].get("duration_ms").is_none());
    // After the response, the start line still only has request headers.
    ex.on_response(
        StatusCode::OK,
        &mut headers(&[("content-type", b"text/plain")]),
        Duration::ZERO,
    );
    let v = lines(&ex.start_line().unwrap());
    assert!(v[0].get("http.response.header.content-type").is_none());
    let out = ex.finish_after(Completion::default(), Duration::ZERO);
    let v = lines(&out);
    assert_eq!(
        log_line(&v)["http.response.header.content-type"],
        "text/plain"
    );
}

#[test]
fn pretty_format_is_one_human_line() {
    let m = mw(&[("EDGE_OBS_LOG_FORMAT", "pretty")]);
    let mut fwd = headers(&[("x-request-id", b"abc")]);
    let mut ex = start(&m, &Method::GET, "/path", &mut fwd);
    ex.on_response(StatusCode::OK, &mut HeaderMap::new(), Duration::ZERO);
    let out = ex.finish_after(Completion::default(), Duration::from_micros(1234));
    let mut it = out.lines();
    let pretty = it.next().unwrap();
    assert_eq!(
        &pretty[24..],
        " INFO GET /path 200 1.234ms id=abc trace=42424242424242424242424242424242 span=4242424242424242 host=example.com"
    );
    assert!(pretty[..24].ends_with('Z'));
    assert!(it.next().unwrap().starts_with(metrics::LINE_PREFIX));
    assert!(it.next().is_none());
}

#[test]
fn everything_huge_still_gives_short_lines() {
    let m = mw(&[
        (
            "EDGE_OBS_LOG_REQUEST_HEADERS",
            &(0..16)
                .map(|i| format!("x-h{i}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "EDGE_OBS_LOG_RESPONSE_HEADERS",
            &(0..16)
                .map(|i| format!("x-r{i}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("EDGE_OBS_LOG_USER_AGENT_MAX", "1024"),
        ("EDGE_OBS_REQUEST_ID_MAX_LEN", "1024"),
        ("EDGE_OBS_SERVICE_NAME", &"s".repeat(128)),
    ]);
    let big = vec![0xffu8; 3000];
    let mut req: Vec<(String, Vec<u8>)> =
        (0..16).map(|i| (format!("x-h{i}"), big.clone())).collect();
    req.push(("user-agent".into(), big.clone()));
    req.push(("x-request-id".into(), vec![b'r'; 1024]));
    let req: Vec<(&str, &[u8])> = req
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let resp: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| (format!("x-r{i}"), vec![b'"'; 3000]))
        .collect();
    let resp: Vec<(&str, &[u8])> = resp
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let target = format!("/{}?{}", "\u{1}".repeat(5000), "\\".repeat(5000));
    let mut fwd = headers(&req);
    let head = RequestHead {
        method: &Method::from_bytes(&[b'M'; 200]).unwrap(),
        scheme: Some(&"\u{7f}".repeat(100)),
        authority: Some(&"\"".repeat(3000)),
        path_with_query: &target,
    };
    let mut ex = m.start_with(
        &head,
        &mut fwd,
        Some(Instant::now()),
        SystemTime::now(),
        &RND,
    );
    ex.on_response(StatusCode::OK, &mut headers(&resp), Duration::ZERO);
    let out = ex.finish_after(Completion::default(), Duration::ZERO);
    let v = lines(&out);
    assert_eq!(v.len(), 2);
    assert_eq!(log_line(&v)["request_id"], "r".repeat(1024));
    assert_eq!(log_line(&v)["http.response.status_code"], 200);
}

#[test]
fn config_issue_lines_are_json() {
    let (m, issues) = Middleware::from_env([
        ("EDGE_OBS_LOG_LEVEL".to_string(), "ver\"bose\n".to_string()),
        ("EDGE_OBS_SERVICE_NAME".to_string(), "svc".to_string()),
        ("EDGE_OBS_ROUTES".to_string(), "nope".to_string()),
        ("EDGE_OBS_TYPO".to_string(), "secret-value".to_string()),
    ]);
    assert_eq!(issues.len(), 3);
    let out = m.config_issue_lines(&issues);
    let v = lines(&out);
    assert_eq!(v.len(), 3);
    let typo = v.iter().find(|l| l["variable"] == "EDGE_OBS_TYPO").unwrap();
    assert_eq!(typo["value"], REDACTED);
    let level = v
        .iter()
        .find(|l| l["variable"] == "EDGE_OBS_LOG_LEVEL")
        .unwrap();
    assert_eq!(level["level"], "error");
    assert_eq!(level["event"], "config.invalid");
    assert_eq!(level["service.name"], "svc");
    assert_eq!(level["value"], "ver\"bose\n");
    assert_eq!(level["default_used"], "info");
    assert!(level["reason"].as_str().unwrap().contains("debug"));
    assert!(!out.contains("secret-value"));
    assert!(m.config_issue_lines(&[]).is_empty());
}

#[test]
fn real_start_and_finish_use_the_clock_and_randomness() {
    let m = Middleware::default();
    let mut a = HeaderMap::new();
    let mut b = HeaderMap::new();
    let head = RequestHead {
        method: &Method::GET,
        scheme: None,
        authority: None,
        path_with_query: "/",
    };
    let ea = m.start(&head, &mut a);
    let eb = m.start(&head, &mut b);
    assert_ne!(ea.request_id(), eb.request_id());
    assert_ne!(a["traceparent"], b["traceparent"]);
    let v = lines(&ea.finish(Completion::default()));
    assert_eq!(log_line(&v)["url.scheme"], "http");
    assert!(log_line(&v).get("server.address").is_none());
}

#[test]
fn fallback_randomness_differs_between_calls() {
    let mut a = [0u8; 48];
    let mut b = [0u8; 48];
    fallback_random(&mut a);
    fallback_random(&mut b);
    assert_ne!(a, b);
    assert_ne!(a, [0; 48]);
}

#[test]
fn helpers() {
    assert_eq!(cut("héllo", 2), "h");
    assert_eq!(cut("héllo", 3), "hé");
    assert_eq!(cut("abc", 10), "abc");
    assert_eq!(split_target("/a?b?c"), ("/a", Some("b?c")));
    assert_eq!(split_target("/a"), ("/a", None));
}

#[test]
fn pooled_randomness_never_repeats() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        assert!(seen.insert(random_bytes()));
    }
}

const CORS: &[(&str, &str)] = &[
    ("EDGE_OBS_CORS_ALLOW_ORIGINS", "https://app.example.com"),
    ("EDGE_OBS_CORS_ALLOW_METHODS", "GET,PUT"),
    ("EDGE_OBS_CORS_MAX_AGE", "600"),
];

#[test]
fn a_preflight_is_answered_logged_and_counted() {
    let m = mw(CORS);
    let mut fwd = headers(&[
        ("origin", b"https://app.example.com"),
        ("access-control-request-method", b"PUT"),
    ]);
    let mut ex = start(&m, &Method::OPTIONS, "/api/items", &mut fwd);
    let answer = ex.preflight().expect("a preflight");
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let h = &answer.headers;
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET, PUT");
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h.contains_key("x-request-id"));
    assert!(h.contains_key("x-content-type-options"));
    let v = lines(&ex.finish_after(Completion::default(), Duration::from_millis(1)));
    let log = log_line(&v);
    assert_eq!(log["http.request.method"], "OPTIONS");
    assert_eq!(log["http.response.status_code"], 204);
    assert_eq!(log["http.response.body.size"], 0);
    assert_eq!(
        metric_line(&v)["attributes"]["http.response.status_code"],
        204
    );
}

#[test]
fn preflights_of_disallowed_origins_get_no_cors_headers() {
    let m = mw(CORS);
    let mut fwd = headers(&[
        ("origin", b"https://evil.example.com"),
        ("access-control-request-method", b"PUT"),
    ]);
    let mut ex = start(&m, &Method::OPTIONS, "/", &mut fwd);
    let answer = ex.preflight().unwrap();
    assert!(
        answer
            .headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-"))
    );
    assert!(answer.headers.contains_key("vary"));
}

#[test]
fn no_preflight_without_cors_or_for_plain_options() {
    for (vars, req) in [
        (
            &[][..],
            &[
                ("origin", &b"https://app.example.com"[..]),
                ("access-control-request-method", b"PUT"),
            ][..],
        ),
        (CORS, &[("origin", &b"https://app.example.com"[..])][..]),
    ] {
        let m = mw(vars);
        let mut fwd = headers(req);
        let mut ex = start(&m, &Method::OPTIONS, "/", &mut fwd);
        assert!(ex.preflight().is_none());
    }
}

#[test]
fn actual_requests_get_cors_headers() {
    let m = mw(CORS);
    let (_, rh, _) = run(
        &m,
        "/",
        &[("origin", b"https://app.example.com")],
        200,
        &[("access-control-allow-origin", b"*")],
    );
    assert_eq!(rh["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(rh.get_all("access-control-allow-origin").iter().count(), 1);
    assert_eq!(rh["vary"], "origin");
    let (_, rh, _) = run(&m, "/", &[("origin", b"null")], 200, &[]);
    assert!(rh.get("access-control-allow-origin").is_none());
    assert_eq!(rh["vary"], "origin");
    // CORS off (the default): nothing CORS-related is added.
    let (_, rh, _) = run(
        &mw(&[]),
        "/",
        &[("origin", b"https://app.example.com")],
        200,
        &[],
    );
    assert!(rh.get("vary").is_none() && rh.get("access-control-allow-origin").is_none());
}

#[test]
fn failure_answers_carry_cors_headers_for_allowed_origins() {
    let m = mw(CORS);
    let mut fwd = headers(&[("origin", b"https://app.example.com")]);
    let mut ex = start(&m, &Method::GET, "/", &mut fwd);
    let f = ex.on_failure(ErrorType::ConnectionRefused);
    assert_eq!(
        f.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[test]
fn log_context_moves_into_the_line_and_leaves_the_response() {
    let (_, rh, v) = run(
        &mw(&[("EDGE_OBS_REDACT_HEADERS", "x-tenant-secret")]),
        "/",
        &[],
        200,
        &[
            ("obs-context-user-id", b"42"),
            ("obs-context-x-tenant-secret", b"s3cr3t"),
            ("content-type", b"text/plain"),
        ],
    );
    assert!(rh.keys().all(|k| !k.as_str().starts_with("obs-context-")));
    let log = log_line(&v);
    assert_eq!(log["context.user-id"], "42");
    assert_eq!(log["context.x-tenant-secret"], REDACTED);
    // Off: the headers pass through and nothing is logged.
    let (_, rh, v) = run(
        &mw(&[("EDGE_OBS_LOG_CONTEXT", "off")]),
        "/",
        &[],
        200,
        &[("obs-context-user-id", b"42")],
    );
    assert_eq!(rh["obs-context-user-id"], "42");
    assert!(log_line(&v).get("context.user-id").is_none());
    // Logging off: still removed from the response.
    let (_, rh, _) = run(
        &mw(&[("EDGE_OBS_LOG", "off")]),
        "/",
        &[],
        200,
        &[("obs-context-user-id", b"42")],
    );
    assert!(rh.get("obs-context-user-id").is_none());
}

fn span_lines(v: &[Value]) -> Vec<&Value> {
    v.iter()
        .filter(|l| l["schema"] == crate::span::SCHEMA)
        .collect()
}

const SPANS_ON: (&str, &str) = ("EDGE_OBS_SPANS", "on");

#[test]
fn a_sampled_request_gets_one_server_span_continuing_the_callers() {
    let m = mw(&[SPANS_ON, ("EDGE_OBS_ROUTES", "/users/{id}")]);
    let (fwd, _, out) = run(
        &m,
        "/users/42?token=s3cret&x=1",
        &[
            ("traceparent", TP.as_bytes()),
            ("x-request-id", b"req-1"),
            ("authorization", b"Bearer abc"),
        ],
        200,
        &[],
    );
    let spans = span_lines(&out);
    assert_eq!(spans.len(), 1, "{out:?}");
    let s = spans[0];
    let forwarded = trace_context::parse_traceparent(fwd["traceparent"].as_bytes()).unwrap();
    assert_eq!(s["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(s["parent_span_id"], "00f067aa0ba902b7");
    // The span reported is the one the app sees as its parent.
    let mut span_hex = String::new();
    trace_context::push_hex(&mut span_hex, &forwarded.parent_id);
    assert_eq!(s["span_id"], span_hex.as_str());
    assert_eq!(s["name"], "GET /users/{id}");
    assert_eq!(s["kind"], "server");
    assert_eq!(s["status"], "unset");
    let start = s["start_time_unix_nano"].as_u64().unwrap();
    let end = s["end_time_unix_nano"].as_u64().unwrap();
    assert_eq!(end - start, 5_000_000);
    let a = &s["attributes"];
    assert_eq!(a["request_id"], "req-1");
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["http.route"], "/users/{id}");
    assert_eq!(a["http.response.status_code"], 200);
    assert_eq!(a["url.scheme"], "https");
    assert_eq!(a["url.path"], "/users/42");
    assert_eq!(a["url.query"], format!("token={REDACTED}&x=1"));
    assert_eq!(a["server.address"], "example.com");
    assert!(a.get("trace_id").is_none() && a.get("duration_ms").is_none());
    let text = serde_json::to_string(&out).unwrap();
    assert!(!text.contains("s3cret") && !text.contains("Bearer"));
    // The log line and the metric line are still there.
    assert_eq!(out.len(), 3);
}

#[test]
fn span_names_and_error_status() {
    let m = mw(&[SPANS_ON]);
    let (_, _, out) = run(&m, "/x", &[], 503, &[]);
    let s = span_lines(&out)[0];
    assert_eq!(s["name"], "GET");
    assert_eq!(s["status"], "error");
    assert_eq!(s["attributes"]["error.type"], "503");
    assert!(s.get("parent_span_id").is_none());
    let (_, _, out) = run(&m, "/x", &[], 404, &[]);
    assert_eq!(span_lines(&out)[0]["status"], "unset");

    let mut h = HeaderMap::new();
    let mut ex = start(&m, &Method::from_bytes(b"PURGE").unwrap(), "/x", &mut h);
    ex.on_failure(ErrorType::Timeout);
    let out = lines(&ex.finish_after(Completion::default(), Duration::from_millis(1)));
    let s = span_lines(&out)[0];
    assert_eq!(s["name"], "HTTP");
    assert_eq!(s["status"], "error");
    assert_eq!(s["attributes"]["error.type"], "timeout");
    assert_eq!(s["attributes"]["http.response.status_code"], 504);

    // A host's 4xx answer carries error.type, but a client error is not a server span's.
    let mut h = HeaderMap::new();
    let mut ex = start(&m, &Method::GET, "/x", &mut h);
    ex.on_failure(ErrorType::RateLimited);
    let out = lines(&ex.finish_after(Completion::default(), Duration::from_millis(1)));
    let s = span_lines(&out)[0];
    assert_eq!(s["status"], "unset");
    assert_eq!(s["attributes"]["error.type"], "rate_limited");
    assert_eq!(s["attributes"]["http.response.status_code"], 429);
}

#[test]
fn span_carries_the_log_context_even_with_logging_off() {
    let m = mw(&[SPANS_ON, ("EDGE_OBS_LOG", "off")]);
    let (_, rh, out) = run(
        &m,
        "/",
        &[("traceparent", TP.as_bytes())],
        200,
        &[
            ("obs-context-user-id", b"42"),
            ("obs-context-token", b"s3cret"),
        ],
    );
    assert!(rh.get("obs-context-user-id").is_none());
    let spans = span_lines(&out);
    assert_eq!(spans.len(), 1, "{out:?}");
    assert_eq!(spans[0]["attributes"]["context.user-id"], "42");
    assert_eq!(spans[0]["attributes"]["context.token"], REDACTED);
    assert!(
        !out.iter().any(|l| l.get("event").is_some()),
        "no access line"
    );
}

#[test]
fn unsampled_traces_get_no_span_and_forward_their_decision() {
    let m = mw(&[SPANS_ON]);
    let unsampled = TP.replace("-01", "-00");
    let (fwd, _, out) = run(&m, "/", &[("traceparent", unsampled.as_bytes())], 200, &[]);
    assert!(span_lines(&out).is_empty());
    assert!(fwd["traceparent"].to_str().unwrap().ends_with("-00"));

    let m = mw(&[SPANS_ON, ("EDGE_OBS_TRACE_SAMPLE_RATIO", "0")]);
    let (fwd, _, out) = run(&m, "/", &[], 200, &[]);
    assert!(span_lines(&out).is_empty());
    assert!(fwd["traceparent"].to_str().unwrap().ends_with("-00"));
    // The log and metric lines do not depend on the trace decision by default.
    assert_eq!(out.len(), 2);
    // A caller's sampled trace is still reported at ratio 0.
    let (fwd, _, out) = run(&m, "/", &[("traceparent", TP.as_bytes())], 200, &[]);
    assert_eq!(span_lines(&out).len(), 1);
    assert!(fwd["traceparent"].to_str().unwrap().ends_with("-01"));
}

#[test]
fn spans_do_not_depend_on_log_settings_and_can_be_switched_off() {
    let m = mw(&[
        SPANS_ON,
        ("EDGE_OBS_LOG", "off"),
        ("EDGE_OBS_METRICS", "off"),
    ]);
    let (_, _, out) = run(&m, "/", &[], 200, &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(span_lines(&out).len(), 1);
    let m = mw(&[("EDGE_OBS_SPANS", "off")]);
    let (_, _, out) = run(&m, "/", &[("traceparent", TP.as_bytes())], 200, &[]);
    assert!(span_lines(&out).is_empty());
    let m = mw(&[SPANS_ON, ("EDGE_OBS_TRACE_CONTEXT", "off")]);
    let (_, _, out) = run(&m, "/", &[("traceparent", TP.as_bytes())], 200, &[]);
    assert!(span_lines(&out).is_empty());
    // Spans are on by default.
    let (m, _) = Middleware::from_env(std::iter::empty());
    let (_, _, out) = run(&m, "/", &[], 200, &[]);
    assert_eq!(span_lines(&out).len(), 1);
}

#[test]
fn log_sampling_can_follow_the_trace() {
    let m = mw(&[
        ("EDGE_OBS_LOG_FOLLOW_TRACE", "on"),
        ("EDGE_OBS_LOG_SAMPLE_RATE", "0"),
    ]);
    let (_, _, out) = run(&m, "/", &[("traceparent", TP.as_bytes())], 200, &[]);
    assert!(
        out.iter().any(|l| l.get("event").is_some()),
        "sampled trace is logged"
    );
    let unsampled = TP.replace("-01", "-00");
    let (_, _, out) = run(&m, "/", &[("traceparent", unsampled.as_bytes())], 200, &[]);
    assert!(
        out.iter().all(|l| l.get("event").is_none()),
        "unsampled: no log"
    );
    let (_, _, out) = run(&m, "/", &[("traceparent", unsampled.as_bytes())], 500, &[]);
    assert!(
        out.iter().any(|l| l.get("event").is_some()),
        "errors are always logged"
    );
}

#[test]
fn span_line_matches_the_documented_example() {
    use crate::access_log::{Level, Record};
    let redaction = crate::Config::default().redaction;
    let trace = TraceIds {
        trace_id: [0x4b; 16],
        span_id: [0xa1; 8],
        parent_span_id: Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
        flags: 1,
    };
    let r = Record {
        timestamp: "",
        level: Level::Info,
        event: crate::access_log::EVENT_REQUEST,
        service_name: None,
        request_id: "0193a5b2-7c1d-7e2f-8a3b-4c5d6e7f8091",
        trace: Some(&trace),
        method: "GET",
        scheme: "https",
        route: Some("/users/{id}"),
        status: Some(200),
        duration: Some(Duration::from_micros(1234)),
        request_body_size: Some(0),
        response_body_size: Some(512),
        error_type: None,
        client_address: None,
        replaced: None,
        authority: Some("example.com"),
        path: "/users/42",
        query: None,
        redaction: &redaction,
        user_agent: Some(b"curl/8.5.0"),
        user_agent_max: 256,
        headers: &[],
        context: None,
    };
    let ev = SpanEvent {
        trace: &trace,
        method: &Method::GET,
        start: UNIX_EPOCH + Duration::from_nanos(1_795_000_000_123_456_789),
        duration: Duration::from_micros(1234),
        record: &r,
    };
    let mut s = String::new();
    span::write(&ev, &mut s);
    let doc = include_str!("../../docs/span-event.md");
    let example = doc
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .unwrap();
    assert_eq!(s.trim_end(), example);
    assert!(s.starts_with(crate::span::LINE_PREFIX));
}

#[test]
fn each_stdout_write_holds_exactly_one_complete_line() {
    // Access line, span event and metric event of one request, with a hostile header value.
    let m = mw(&[
        ("EDGE_OBS_SPANS", "on"),
        ("EDGE_OBS_LOG_REQUEST_HEADERS", "x-evil"),
    ]);
    let mut fwd = headers(&[("traceparent", TP.as_bytes()), ("x-evil", b"a\\nb\"}{")]);
    let mut ex = start(&m, &Method::GET, "/x?q=1%0A2", &mut fwd);
    ex.on_response(StatusCode::OK, &mut HeaderMap::new(), Duration::ZERO);
    let out = ex.finish_after(Completion::default(), Duration::from_millis(1));
    // The writes the glue makes, and the same found by searching for line ends.
    let writes: Vec<&str> = out.writes().collect();
    assert_eq!(writes, stdout_writes(&out).collect::<Vec<_>>());
    assert_eq!(writes.len(), 3, "{out}");
    for w in &writes {
        assert_eq!(w.matches('\n').count(), 1, "{w:?}");
        assert!(w.ends_with('\n'));
        serde_json::from_str::<Value>(w).unwrap();
    }
    assert_eq!(writes.concat(), &*out);
    assert_eq!(stdout_writes("").count(), 0);
}

/// With every output that carries time off, the exchange is not timed (no clock read) and
/// still does its header work; any one of them turns timing back on.
#[test]
fn only_exchanges_whose_output_carries_time_are_timed() {
    let untimed = [
        ("EDGE_OBS_LOG", "off"),
        ("EDGE_OBS_METRICS", "off"),
        ("EDGE_OBS_SERVER_TIMING", "off"),
    ];
    let m = mw(&untimed);
    assert!(!m.config().times_exchanges());
    let head = RequestHead {
        method: &Method::GET,
        scheme: Some("https"),
        authority: Some("example.com"),
        path_with_query: "/a",
    };
    let mut fwd = headers(&[]);
    let mut ex = m.start(&head, &mut fwd);
    assert!(ex.app_start().instant().is_none());
    let id = ex.request_id().to_owned();
    assert_eq!(fwd["x-request-id"], id.as_str());
    let mut rh = headers(&[("content-type", b"text/plain")]);
    ex.on_response(StatusCode::OK, &mut rh, Duration::ZERO);
    assert_eq!(rh["x-request-id"], id.as_str());
    assert!(rh.get("server-timing").is_none());
    assert_eq!(ex.finish(Completion::default()), "");

    for on in [
        ("EDGE_OBS_LOG", "on"),
        ("EDGE_OBS_METRICS", "on"),
        ("EDGE_OBS_SERVER_TIMING", "on"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
    ] {
        let vars: Vec<_> = untimed
            .iter()
            .copied()
            .filter(|(k, _)| *k != on.0)
            .chain([on])
            .collect();
        assert!(mw(&vars).config().times_exchanges(), "{on:?}");
    }
    // Spans need trace context to have a trace.
    let spans = [("EDGE_OBS_SPANS", "on"), ("EDGE_OBS_TRACE_CONTEXT", "off")];
    let spans_only: Vec<_> = untimed.iter().chain(&spans).copied().collect();
    assert!(!mw(&spans_only).config().times_exchanges());
    let spans_only: Vec<_> = untimed.iter().chain(&spans[..1]).copied().collect();
    assert!(mw(&spans_only).config().times_exchanges());
    let m = mw(&[("EDGE_OBS_LOG", "off"), ("EDGE_OBS_METRICS", "off")]);
    let mut fwd = headers(&[]);
    let mut ex = m.start(&head, &mut fwd);
    let app_start = ex.app_start();
    assert!(app_start.instant().is_some());
    let mut rh = headers(&[]);
    ex.on_response(StatusCode::OK, &mut rh, app_start.elapsed());
    assert!(
        rh["server-timing"]
            .to_str()
            .unwrap()
            .starts_with("app;dur=")
    );
}

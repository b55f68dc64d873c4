//! Hostile input, end to end: malformed request ids, trace context, paths, methods, headers,
//! secrets and configuration, sent as raw bytes to the real runtime-host with the real
//! middleware and demo app. Every case checks what the client, the log and /metrics show, and
//! that the next request is served normally.

mod common;

use common::{Conn, Host, Response, get, metric_sum, promtool_check, send, unique};
use serde_json::Value;

const UUID_LEN: usize = 36;

/// A GET of `/` with `extra` (raw header lines, each ending in `\r\n`).
fn get_with_raw_headers(host: &Host, extra: &[u8]) -> Response {
    let mut raw = b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n".to_vec();
    raw.extend_from_slice(extra);
    raw.extend_from_slice(b"\r\n");
    send(host.addr, &raw)
}

/// The request id was replaced by a generated UUID; returns the log line.
fn assert_replaced(host: &Host, response: &Response, reason: &str) -> Value {
    assert_eq!(response.status, 200);
    let id = response.request_id();
    assert_eq!(id.len(), UUID_LEN, "a generated UUID: {id}");
    assert_eq!(response.json()["headers"]["x-request-id"], id.as_str());
    let log = host.log_line(&id);
    assert_eq!(log["request_id.replaced"], reason, "{log}");
    assert_eq!(log["level"], "info");
    log
}

/// Waits until `runtime_host_rejected_requests_total{reason}` reaches `count` (the host counts
/// a rejection when the connection ends, just after the client got its answer).
fn wait_rejected(host: &Host, reason: &str, count: f64) -> String {
    host.wait_metrics(&format!("{count} rejections for {reason}"), |text| {
        metric_sum(
            text,
            "runtime_host_rejected_requests_total",
            &[("reason", reason)],
        ) == count
    })
}

/// The access lines with this `error.type`, once there are `count` of them.
fn lines_with_error(host: &Host, error_type: &str, count: usize) -> Vec<serde_json::Value> {
    let with_error = |l: &serde_json::Value| l["error.type"] == error_type;
    host.wait_log_lines(|lines| lines.iter().filter(|l| with_error(l)).count() >= count)
        .into_iter()
        .filter(with_error)
        .collect()
}

/// The host still serves a normal request.
fn assert_still_serving(host: &Host) {
    let response = get(host.addr, "/hello", &[("x-request-id", "after-hostile")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.request_id(), "after-hostile");
    assert_eq!(response.text(), "hello\n");
}

/// Every stdout line the host printed is one JSON object without raw control characters.
fn assert_log_lines_are_clean(host: &Host) {
    for line in host.stdout() {
        assert!(
            !line.bytes().any(|b| b < 0x20 || b == 0x7f),
            "raw control byte in {line:?}"
        );
        assert!(line.len() < 4000, "line of {} bytes", line.len());
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.is_object());
    }
}

// ----- request ids -------------------------------------------------------------------------

#[test]
fn empty_request_id_is_replaced() {
    let host = Host::start(&[]);
    let response = get_with_raw_headers(&host, b"x-request-id: \r\n");
    let log = assert_replaced(&host, &response, "empty");
    assert_eq!(log["request_id.received"], "");
    assert_still_serving(&host);
}

#[test]
fn request_id_of_129_characters_is_replaced_and_128_is_kept() {
    let host = Host::start(&[]);
    let kept = "k".repeat(128);
    assert_eq!(
        get(host.addr, "/", &[("x-request-id", &kept)]).request_id(),
        kept
    );
    let long = "a".repeat(129);
    let response = get(host.addr, "/", &[("x-request-id", &long)]);
    let log = assert_replaced(&host, &response, "too long");
    // The received value is logged, cut to 64 characters.
    assert_eq!(
        log["request_id.received"],
        format!("{}...[truncated]", "a".repeat(64))
    );
    assert_still_serving(&host);
}

#[test]
fn request_id_of_64_kib_is_replaced_without_bloating_the_log() {
    // The default header limit (64 KiB) would answer 431; let the id through to the middleware.
    let host = Host::start(&["--max-header-bytes", "256KiB"]);
    let huge = "b".repeat(64 * 1024);
    let response = get(host.addr, "/", &[("x-request-id", &huge)]);
    let log = assert_replaced(&host, &response, "too long");
    assert_eq!(
        log["request_id.received"],
        format!("{}...[truncated]", "b".repeat(64))
    );
    assert_log_lines_are_clean(&host);
    assert_still_serving(&host);
}

#[test]
fn header_section_over_the_limit_gets_431_and_is_counted() {
    let host = Host::start(&["--max-header-bytes", "16KiB"]);
    let response = get(host.addr, "/", &[("x-request-id", &"c".repeat(20 * 1024))]);
    assert_eq!(response.status, 431);
    // The host's answer: the 20 KiB id is replaced, never echoed, and the request is logged.
    let id = response.request_id();
    assert!(id.len() < 64, "{id}");
    assert_eq!(
        response.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let line = host.log_line(&id);
    assert_eq!(line["error.type"], "request_header_too_large");
    assert_eq!(line["request_id.replaced"], "too long");
    wait_rejected(&host, "header_too_large", 1.0);
    assert_still_serving(&host);
    // Beyond twice the limit hyper cuts the head itself: still a 431, logged as far as known.
    let response = get(host.addr, "/", &[("x-padding", &"c".repeat(40 * 1024))]);
    assert_eq!(response.status, 431);
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    wait_rejected(&host, "header_too_large", 2.0);
}

#[test]
fn control_bytes_in_a_request_id_get_400_from_the_host() {
    let host = Host::start(&[]);
    // CR and LF alone, NUL, other C0 controls, ESC sequences, DEL: not allowed in a header
    // value by HTTP, so hyper answers 400 before anything reaches a component.
    let cases: [&[u8]; 7] = [
        b"x-request-id: ab\rcd\r\n",
        b"x-request-id: ab\ncd\r\n",
        b"x-request-id: ab\0cd\r\n",
        b"x-request-id: ab\x01cd\r\n",
        b"x-request-id: \x1b[31mred\r\n",
        b"x-request-id: ab\x7fcd\r\n",
        // CRLF injection: the second line is not a header.
        b"x-request-id: ab\r\n\"level\" \"error\"\r\n",
    ];
    for raw in cases {
        let response = get_with_raw_headers(&host, raw);
        assert_eq!(response.status, 400, "{raw:?}");
        assert_eq!(response.header("connection").as_deref(), Some("close"));
        assert!(response.body.is_empty());
    }
    assert_still_serving(&host);
    host.log_line("after-hostile");
    let metrics = wait_rejected(&host, "bad_request", cases.len() as f64);
    // hyper answered before the head was read: no id reached anyone, but each rejection is
    // logged and counted as far as is known, and no hostile byte reached a line.
    let rejected = lines_with_error(&host, "bad_request", cases.len());
    assert_eq!(rejected.len(), cases.len());
    for line in &rejected {
        assert_eq!(line["http.response.status_code"], 400);
        assert!(!line.to_string().contains("red"), "{line}");
    }
    assert_eq!(
        metric_sum(
            &metrics,
            "http_server_requests_total",
            &[
                ("http_response_status_code", "400"),
                ("error_type", "bad_request")
            ]
        ),
        cases.len() as f64,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "http_server_requests_total",
            &[("http_response_status_code", "200")]
        ),
        1.0,
        "{metrics}"
    );
}

#[test]
fn tab_quotes_and_backslashes_in_a_request_id_are_replaced_and_escaped() {
    let host = Host::start(&[]);
    for (raw, received) in [
        (&b"x-request-id: a\"b\\c\r\n"[..], "a\"b\\c"),
        (b"x-request-id: a\tb\r\n", "a\tb"),
        (b"x-request-id: it's\r\n", "it's"),
        (b"x-request-id: <script>\r\n", "<script>"),
    ] {
        let response = get_with_raw_headers(&host, raw);
        let log = assert_replaced(&host, &response, "invalid character");
        assert_eq!(log["request_id.received"], received);
    }
    assert_log_lines_are_clean(&host);
    assert_still_serving(&host);
}

#[test]
fn non_ascii_and_invalid_utf8_request_ids_are_replaced() {
    let host = Host::start(&[]);
    let response = get_with_raw_headers(&host, "x-request-id: café-☕\r\n".as_bytes());
    let log = assert_replaced(&host, &response, "invalid character");
    assert_eq!(log["request_id.received"], "café-☕");

    let response = get_with_raw_headers(&host, b"x-request-id: id-\xff\xfe-\xc3\r\n");
    let log = assert_replaced(&host, &response, "invalid character");
    // Invalid UTF-8 is logged as U+FFFD, never as raw bytes.
    assert_eq!(log["request_id.received"], "id-\u{fffd}\u{fffd}-\u{fffd}");
    assert_log_lines_are_clean(&host);
    assert_still_serving(&host);
}

#[test]
fn several_request_id_headers_are_ambiguous_and_replaced() {
    let host = Host::start(&[]);
    let response = get_with_raw_headers(&host, b"x-request-id: first\r\nx-request-id: second\r\n");
    let log = assert_replaced(&host, &response, "multiple values");
    assert_eq!(log["request_id.received"], "first");
    assert_ne!(response.request_id(), "first");
    assert_ne!(response.request_id(), "second");
    assert_still_serving(&host);
}

#[test]
fn request_ids_that_look_like_json_or_log_fields_cannot_forge_fields() {
    let host = Host::start(&[]);
    // Rejected: quotes, braces with quotes, spaces.
    for forged in [
        r#"{"level":"error"}"#,
        r#"x","level":"debug","request_id":"y"#,
        "a level=error msg=forged",
    ] {
        let response = get(host.addr, "/", &[("x-request-id", forged)]);
        let log = assert_replaced(&host, &response, "invalid character");
        assert_eq!(log["request_id.received"], forged);
    }
    // Accepted verbatim: only id characters, so it stays one harmless string value.
    let lookalike = "level=error&status=500{x:1}[0]";
    let response = get(host.addr, "/", &[("x-request-id", lookalike)]);
    assert_eq!(response.request_id(), lookalike);
    let log = host.log_line(lookalike);
    assert_eq!(log["level"], "info");
    assert_eq!(log["http.response.status_code"], 200);
    assert!(log.get("request_id.replaced").is_none());
    assert_log_lines_are_clean(&host);
    assert_still_serving(&host);
}

// ----- trace context -----------------------------------------------------------------------

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// Sends `traceparent` lines (raw) with a tracestate; returns what the app received and the log.
fn traced(host: &Host, traceparent_lines: &[u8]) -> (Value, Value) {
    let mut extra = traceparent_lines.to_vec();
    extra.extend_from_slice(b"tracestate: vendor=abc\r\n");
    let response = get_with_raw_headers(host, &extra);
    assert_eq!(response.status, 200);
    let log = host.log_line(&response.request_id());
    (response.json()["headers"].clone(), log)
}

#[test]
fn every_invalid_traceparent_starts_a_new_trace_and_drops_tracestate() {
    let host = Host::start(&[]);
    let valid = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let invalid: Vec<(&str, String)> = vec![
        ("version ff is forbidden", valid.replacen("00", "ff", 1)),
        ("version is not hex", valid.replacen("00", "0g", 1)),
        ("uppercase hex", valid.to_uppercase()),
        (
            "all-zero trace id",
            format!("00-{}-{PARENT_ID}-01", "0".repeat(32)),
        ),
        (
            "all-zero parent id",
            format!("00-{TRACE_ID}-{}-01", "0".repeat(16)),
        ),
        ("too short", valid[..54].to_owned()),
        ("version 00 with more fields", format!("{valid}-extra")),
        ("version 00 one character too long", format!("{valid}1")),
        ("wrong separator", valid.replace('-', "_")),
        (
            "trace id too short",
            format!("00-{}-{PARENT_ID}-01", &TRACE_ID[..31]),
        ),
        ("non-hex trace id", valid.replacen("4bf9", "4bz9", 1)),
        ("non-hex parent id", valid.replacen("00f0", "00x0", 1)),
        ("non-hex flags", format!("00-{TRACE_ID}-{PARENT_ID}-0x")),
        ("space inside", valid.replacen('-', " -", 1)),
        ("empty", String::new()),
    ];
    for (what, value) in &invalid {
        let (app, log) = traced(&host, format!("traceparent: {value}\r\n").as_bytes());
        let forwarded = app["traceparent"].as_str().unwrap();
        assert_eq!(forwarded.len(), 55, "{what}: {forwarded}");
        assert!(forwarded.starts_with("00-"), "{what}: {forwarded}");
        assert!(!forwarded.contains(TRACE_ID), "{what}: a new trace id");
        assert!(
            app.get("tracestate").is_none(),
            "{what}: tracestate dropped"
        );
        assert_eq!(
            log["trace_id"].as_str().unwrap(),
            &forwarded[3..35],
            "{what}"
        );
        assert!(log.get("parent_span_id").is_none(), "{what}: {log}");
    }
    // Two traceparent headers are ambiguous: a new trace as well.
    let line = format!("traceparent: {valid}\r\n");
    let (app, log) = traced(&host, format!("{line}{line}").as_bytes());
    assert!(!app["traceparent"].as_str().unwrap().contains(TRACE_ID));
    assert!(app.get("tracestate").is_none());
    assert!(log.get("parent_span_id").is_none());
    assert_log_lines_are_clean(&host);
    assert_still_serving(&host);
}

#[test]
fn valid_and_future_version_traceparents_are_continued() {
    let host = Host::start(&[]);
    for value in [
        format!("00-{TRACE_ID}-{PARENT_ID}-01"),
        // A future version may append fields after a `-`.
        format!("cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-holds"),
    ] {
        let (app, log) = traced(&host, format!("traceparent: {value}\r\n").as_bytes());
        let forwarded = app["traceparent"].as_str().unwrap();
        assert!(
            forwarded.starts_with(&format!("00-{TRACE_ID}-")),
            "{forwarded}"
        );
        assert!(forwarded.ends_with("-01"));
        assert_eq!(app["tracestate"], "vendor=abc");
        assert_eq!(log["trace_id"], TRACE_ID);
        assert_eq!(log["parent_span_id"], PARENT_ID);
        assert_eq!(log["span_id"].as_str().unwrap(), &forwarded[36..52]);
    }
}

#[test]
fn oversized_tracestate_is_dropped_but_the_trace_continues() {
    let host = Host::start(&[]);
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let too_long = format!("vendor={}", "x".repeat(600));
    let too_many: Vec<String> = (0..33).map(|i| format!("v{i}=1")).collect();
    for tracestate in [too_long, too_many.join(",")] {
        let response = get(
            host.addr,
            "/",
            &[("traceparent", &traceparent), ("tracestate", &tracestate)],
        );
        let app = &response.json()["headers"];
        assert!(app.get("tracestate").is_none(), "dropped");
        assert!(
            app["traceparent"]
                .as_str()
                .unwrap()
                .starts_with(&format!("00-{TRACE_ID}-")),
            "the trace continues"
        );
    }
    // 32 members of up to 512 characters are forwarded untouched.
    let fine: Vec<String> = (0..32).map(|i| format!("v{i}=1")).collect();
    let response = get(
        host.addr,
        "/",
        &[
            ("traceparent", &traceparent),
            ("tracestate", &fine.join(",")),
        ],
    );
    assert_eq!(
        response.json()["headers"]["tracestate"],
        fine.join(",").as_str()
    );
}

#[test]
fn tracestate_off_the_w3c_grammar_is_dropped_whole() {
    let host = Host::start(&[]);
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let long_key = format!("{}=1", "k".repeat(300));
    for bad in [
        "foo =1",
        "@foo=1",
        long_key.as_str(),
        "foo=bar=baz",
        "vendor=abc,foo =1",
        "Vendor=abc",
        "foo.bar=1",
    ] {
        let response = get(
            host.addr,
            "/",
            &[("traceparent", &traceparent), ("tracestate", bad)],
        );
        let app = &response.json()["headers"];
        assert!(app.get("tracestate").is_none(), "{bad:?} was forwarded");
        assert!(
            app["traceparent"]
                .as_str()
                .unwrap()
                .starts_with(&format!("00-{TRACE_ID}-")),
            "the trace continues"
        );
    }
    // Keys with `@` anywhere after the first character (up to 256 characters), optional
    // whitespace and duplicated keys are fine, and forwarded untouched (the current W3C
    // grammar; duplicates are the owning vendor's business).
    let key_244 = format!("{}@v=1", "t".repeat(242));
    for good in [
        "tenant@vendor=a b, congo=t61rcWkgMzE",
        "foo@=1,bar=2",
        key_244.as_str(),
        "a=1,a=2",
    ] {
        let response = get(
            host.addr,
            "/",
            &[("traceparent", &traceparent), ("tracestate", good)],
        );
        assert_eq!(response.json()["headers"]["tracestate"], good, "{good:?}");
    }
}

#[test]
fn tracestate_without_traceparent_is_dropped() {
    let host = Host::start(&[]);
    let response = get(host.addr, "/", &[("tracestate", "vendor=orphan")]);
    assert_eq!(response.status, 200);
    let app = &response.json()["headers"];
    assert!(app.get("tracestate").is_none());
    let traceparent = app["traceparent"].as_str().unwrap();
    let log = host.log_line(&response.request_id());
    assert_eq!(log["trace_id"].as_str().unwrap(), &traceparent[3..35]);
    assert!(log.get("parent_span_id").is_none());
}

// ----- paths and queries -------------------------------------------------------------------

#[test]
fn very_long_path_is_served_and_logged_truncated() {
    let host = Host::start(&[]);
    let path = format!("/{}", "p".repeat(8000));
    let query = format!("q={}", "v".repeat(8000));
    let response = get(host.addr, &format!("{path}?{query}"), &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["path"], path.as_str());
    let log = host.log_line(&response.request_id());
    let logged = log["url.path"].as_str().unwrap();
    assert_eq!(logged, format!("{}...[truncated]", &path[..1024]));
    assert!(
        log["url.query"]
            .as_str()
            .unwrap()
            .ends_with("...[truncated]")
    );
    assert_log_lines_are_clean(&host);
    assert_still_serving(&host);
}

#[test]
fn path_over_the_uri_limit_gets_414() {
    let host = Host::start(&["--max-header-bytes", "256KiB"]);
    let response = get(host.addr, &format!("/{}", "u".repeat(70_000)), &[]);
    assert_eq!(response.status, 414);
    wait_rejected(&host, "header_too_large", 1.0);
    let lines = lines_with_error(&host, "uri_too_long", 1);
    assert_eq!(lines.len(), 1);
    assert_eq!(host.log_lines().len(), 1);
    assert_eq!(lines[0]["error.type"], "uri_too_long");
    assert_eq!(lines[0]["http.response.status_code"], 414);
    assert_still_serving(&host);
}

#[test]
fn percent_encoded_control_characters_stay_encoded() {
    let host = Host::start(&[]);
    let response = get(
        host.addr,
        "/a%00b%0D%0A%1b%7F%E2%80%A8?q=%0a%22%5c&x=%00",
        &[],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["path"], "/a%00b%0D%0A%1b%7F%E2%80%A8");
    let log = host.log_line(&response.request_id());
    // Logged exactly as received: encoded, never decoded into raw control characters.
    assert_eq!(log["url.path"], "/a%00b%0D%0A%1b%7F%E2%80%A8");
    assert_eq!(log["url.query"], "q=%0a%22%5c&x=%00");
    assert_log_lines_are_clean(&host);
    assert_still_serving(&host);
}

#[test]
fn thousands_of_distinct_paths_and_label_sets_keep_metrics_bounded() {
    let host = Host::start(&["--env", "EDGE_OBS_ROUTES=/users/{id},/status/{code}"]);
    let mut sent = 0usize;
    // 2000 distinct raw paths: one label set per route template, never a raw path.
    let mut conn = Conn::open(host.addr);
    for i in 0..1000 {
        assert_eq!(conn.get(&format!("/users/{i}"), &[]).status, 200);
        assert_eq!(conn.get(&format!("/raw/{i}/x"), &[]).status, 200);
        sent += 2;
    }
    // 6 methods x 400 status codes = 2400 distinct label sets, over the host's cap of 2000.
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
    std::thread::scope(|scope| {
        for method in methods {
            let addr = host.addr;
            scope.spawn(move || {
                let mut conn = Conn::open(addr);
                for code in 200..600 {
                    let response = conn.request(method, &format!("/status/{code}"), &[], b"");
                    assert_eq!(response.status, code);
                }
            });
        }
    });
    sent += methods.len() * 400;

    let metrics = host.wait_metrics("every request counted", |text| {
        metric_sum(text, "http_server_requests_total", &[]) as usize == sent
    });
    let label_sets = common::series(&metrics, "http_server_requests_total").count();
    assert!(
        label_sets <= 2000 + 500 + 1,
        "{label_sets} label sets exceed the cap"
    );
    assert!(
        metric_sum(&metrics, "runtime_host_metric_label_overflow_total", &[]) >= 400.0,
        "the overflow is counted"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "http_server_requests_total",
            &[("http_route", "/users/{id}")]
        ),
        1000.0
    );
    for raw in ["/users/1\"", "/raw/", "/users/999"] {
        assert!(!metrics.contains(raw), "raw path {raw} in /metrics");
    }
    // About 7.5 KB per label set (three histograms and a counter).
    assert!(
        metrics.len() < 24 << 20,
        "scrape of {} bytes",
        metrics.len()
    );
    promtool_check(&metrics);
    assert_still_serving(&host);
}

// ----- methods -----------------------------------------------------------------------------

#[test]
fn unknown_and_lowercase_methods_are_served_and_counted_as_other() {
    let host = Host::start(&[]);
    for method in ["get", "FOO", "PROPFIND", "M-SEARCH"] {
        let response = send(
            host.addr,
            format!("{method} /m HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(response.status, 200, "{method}");
        assert_eq!(response.json()["method"], method);
        let log = host.log_line(&response.request_id());
        assert_eq!(log["http.request.method"], method, "logged as sent");
    }
    let metrics = host.wait_metrics("4 _OTHER requests", |text| {
        metric_sum(
            text,
            "http_server_requests_total",
            &[("http_request_method", "_OTHER")],
        ) == 4.0
    });
    for method in ["get", "FOO", "PROPFIND", "M-SEARCH"] {
        assert!(
            !metrics.contains(&format!("\"{method}\"")),
            "{method} became a label"
        );
    }
    assert_still_serving(&host);
}

#[test]
fn trace_method_is_served_and_counted_as_trace() {
    let host = Host::start(&[]);
    let response = send(
        host.addr,
        b"TRACE /t HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["method"], "TRACE");
    assert_eq!(
        host.log_line(&response.request_id())["http.request.method"],
        "TRACE"
    );
    host.wait_metrics("a TRACE request", |text| {
        metric_sum(
            text,
            "http_server_requests_total",
            &[("http_request_method", "TRACE")],
        ) == 1.0
    });
}

#[test]
fn connect_gets_501_from_the_host() {
    let host = Host::start(&[]);
    let response = send(
        host.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
    );
    assert_eq!(response.status, 501);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(response.json()["status"], 501);
    host.wait_metrics("the CONNECT request", |text| {
        metric_sum(
            text,
            "http_server_requests_total",
            &[
                ("http_request_method", "CONNECT"),
                ("http_response_status_code", "501"),
            ],
        ) == 1.0
    });
    assert_still_serving(&host);
}

// ----- headers -----------------------------------------------------------------------------

#[test]
fn a_hundred_headers_are_served_and_more_get_431() {
    let allow_list: Vec<String> = (0..16).map(|i| format!("x-h{i}")).collect();
    let allow_list = allow_list.join(",");
    let host = Host::start(&[
        "--env",
        &format!("EDGE_OBS_LOG_REQUEST_HEADERS={allow_list}"),
    ]);
    // 95 headers of 500 bytes (48 KB): within both limits.
    let value = "v".repeat(500);
    let many: String = (0..95).map(|i| format!("x-h{i}: {value}\r\n")).collect();
    let response = get_with_raw_headers(&host, many.as_bytes());
    assert_eq!(response.status, 200);
    let log = host.log_line(&response.request_id());
    // Logged header values are cut to 256 characters and the line stays under 4 KB.
    assert_eq!(
        log["http.request.header.x-h0"],
        format!("{}...[truncated]", &value[..256])
    );
    assert_log_lines_are_clean(&host);

    // hyper's limit is 100 header lines.
    let too_many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    assert_eq!(get_with_raw_headers(&host, too_many.as_bytes()).status, 431);
    wait_rejected(&host, "header_too_large", 1.0);
    assert_still_serving(&host);
}

#[test]
fn obs_text_header_values_are_logged_as_valid_utf8() {
    let host = Host::start(&[
        "--env",
        "EDGE_OBS_LOG_REQUEST_HEADERS=x-custom,accept-language",
    ]);
    let response = get_with_raw_headers(
        &host,
        b"x-custom: caf\xe9 \xff\"}\\\r\nuser-agent: bot/\x80\x81\r\naccept-language: d\xc3\xa9j\xc3\xa0\r\n",
    );
    assert_eq!(response.status, 200);
    let log = host.log_line(&response.request_id());
    assert_eq!(
        log["http.request.header.x-custom"],
        "caf\u{fffd} \u{fffd}\"}\\"
    );
    assert_eq!(log["user_agent.original"], "bot/\u{fffd}\u{fffd}");
    assert_eq!(log["http.request.header.accept-language"], "déjà");
    assert_log_lines_are_clean(&host);
    assert_still_serving(&host);
}

// ----- secrets -----------------------------------------------------------------------------

#[test]
fn secrets_never_reach_logs_or_metrics() {
    let host = Host::start(&[
        "--env",
        "EDGE_OBS_LOG_REQUEST_HEADERS=authorization,proxy-authorization,cookie,set-cookie,x-api-key,x-internal-token,x-trace-me",
        "--env",
        "EDGE_OBS_LOG_RESPONSE_HEADERS=set-cookie,x-internal-token",
        "--env",
        "EDGE_OBS_REDACT_HEADERS=x-internal-token",
        // The demo app's /headers takes the response headers from the query string.
        "--env",
        "EDGE_OBS_REDACT_QUERY_PARAMS=token,access_token,api_key,password,set-cookie,x-internal-token",
        "--env",
        "EDGE_OBS_LOG_START=on",
        "--env",
        "EDGE_OBS_LOG_LEVEL=debug",
        "--env",
        "EDGE_OBS_ROUTES=/users/{id}",
    ]);
    let secrets: Vec<String> = (0..12).map(|_| unique("SeCrEt")).collect();
    let s = |i: usize| secrets[i].as_str();
    let headers = [
        ("authorization", format!("Bearer {}", s(0))),
        ("proxy-authorization", format!("Basic {}", s(1))),
        ("cookie", format!("sid={}; theme=dark", s(2))),
        ("set-cookie", format!("sid={}", s(3))),
        ("x-api-key", s(4).to_owned()),
        ("x-internal-token", s(5).to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let query = format!(
        "token={}&ACCESS_TOKEN={}&api%5Fkey={}&password={}&page=2",
        s(6),
        s(7),
        s(8),
        s(9)
    );
    // A normal request, an app error, a trap (answered by the host) and a response that
    // sets secret headers, each carrying every secret header and query parameter.
    let normal = get(host.addr, &format!("/users/42?{query}"), &headers);
    assert_eq!(normal.status, 200);
    let app_error = get(host.addr, &format!("/status/500?{query}"), &headers);
    assert_eq!(app_error.status, 500);
    let trap = get(host.addr, &format!("/trap?{query}"), &headers);
    assert_eq!(trap.status, 500);
    let set_cookie = get(
        host.addr,
        &format!(
            "/headers?set-cookie=sid%3D{}&x-internal-token={}",
            s(10),
            s(11)
        ),
        &headers,
    );
    assert_eq!(set_cookie.status, 200);

    let log = host.log_line(&normal.request_id());
    // Proxy-Authorization is a hop-by-hop header: the host drops it before the components.
    assert!(log.get("http.request.header.proxy-authorization").is_none());
    for name in [
        "authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-internal-token",
    ] {
        assert_eq!(
            log[format!("http.request.header.{name}")],
            "[REDACTED]",
            "{name}"
        );
    }
    assert_eq!(
        log["url.query"],
        "token=[REDACTED]&ACCESS_TOKEN=[REDACTED]&api%5Fkey=[REDACTED]&password=[REDACTED]&page=2"
    );
    assert_eq!(
        host.log_line(&app_error.request_id())["url.query"],
        log["url.query"]
    );
    let log = host.log_line(&set_cookie.request_id());
    assert_eq!(log["http.response.header.set-cookie"], "[REDACTED]");
    assert_eq!(log["http.response.header.x-internal-token"], "[REDACTED]");
    host.wait_stderr("the trap", |l| l.contains("guest trapped"));

    let metrics = host.metrics();
    let mut captured = host.stdout();
    captured.extend(host.stderr());
    captured.push(metrics);
    let captured = captured.join("\n");
    for secret in &secrets {
        assert!(
            !captured.contains(secret.as_str()),
            "secret {secret} leaked:\n{captured}"
        );
    }
}

// ----- configuration -----------------------------------------------------------------------

/// A malformed value for every `EDGE_OBS_*` variable.
const MALFORMED: &[(&str, &str)] = &[
    ("EDGE_OBS_ENABLED", "maybe"),
    ("EDGE_OBS_SERVICE_NAME", "svc\u{1b}[31m"),
    ("EDGE_OBS_BODY_SIZE", "bytes"),
    ("EDGE_OBS_REQUEST_ID_HEADER", "x request id"),
    ("EDGE_OBS_REQUEST_ID_ALIASES", "bad alias"),
    ("EDGE_OBS_REQUEST_ID_MAX_LEN", "0"),
    ("EDGE_OBS_REQUEST_ID_POLICY", "sometimes"),
    ("EDGE_OBS_REQUEST_ID_FORMAT", "uuid-v1"),
    ("EDGE_OBS_TRACE_CONTEXT", "yes please"),
    ("EDGE_OBS_SECURITY_HEADERS", "2"),
    ("EDGE_OBS_SECURITY_HEADERS_MODE", "merge"),
    ("EDGE_OBS_SECURITY_PROFILE", "paranoid"),
    (
        "EDGE_OBS_SECURITY_STRICT_TRANSPORT_SECURITY",
        "max-age=1\u{1}",
    ),
    ("EDGE_OBS_SECURITY_X_CONTENT_TYPE_OPTIONS", ""),
    ("EDGE_OBS_SECURITY_X_FRAME_OPTIONS", "DENY\u{7f}"),
    ("EDGE_OBS_SECURITY_REFERRER_POLICY", "\u{5}"),
    ("EDGE_OBS_SECURITY_CONTENT_SECURITY_POLICY", "a\nb"),
    ("EDGE_OBS_SECURITY_PERMISSIONS_POLICY", "   "),
    ("EDGE_OBS_SECURITY_CROSS_ORIGIN_OPENER_POLICY", "x\u{2}"),
    ("EDGE_OBS_SECURITY_CROSS_ORIGIN_RESOURCE_POLICY", "x\u{3}"),
    ("EDGE_OBS_SECURITY_X_XSS_PROTECTION", "0\u{4}"),
    ("EDGE_OBS_SECURITY_CROSS_ORIGIN_EMBEDDER_POLICY", "x\u{6}"),
    ("EDGE_OBS_SECURITY_CACHE_CONTROL", "no-store\u{8}"),
    ("EDGE_OBS_REMOVE_RESPONSE_HEADERS", "bad name"),
    ("EDGE_OBS_SERVER_TIMING", "sometimes"),
    ("EDGE_OBS_REQUEST_SET_HEADERS", "no colon here"),
    (
        "EDGE_OBS_REQUEST_APPEND_HEADERS",
        "authorization: Bearer CfGsEcReT\u{1}",
    ),
    ("EDGE_OBS_REQUEST_REMOVE_HEADERS", "bad name"),
    ("EDGE_OBS_RESPONSE_SET_HEADERS", "x-request-id: mine"),
    ("EDGE_OBS_RESPONSE_APPEND_HEADERS", "bad name: v"),
    ("EDGE_OBS_RESPONSE_REMOVE_HEADERS", "bad name"),
    ("EDGE_OBS_LOG", "loud"),
    ("EDGE_OBS_LOG_FORMAT", "xml"),
    ("EDGE_OBS_LOG_LEVEL", "verbose"),
    ("EDGE_OBS_LOG_SAMPLE_RATE", "1.5"),
    ("EDGE_OBS_LOG_FOLLOW_TRACE", "perhaps"),
    ("EDGE_OBS_TRACE_SAMPLE_RATIO", "2"),
    ("EDGE_OBS_SPANS", "sometimes"),
    ("EDGE_OBS_LOG_SLOW_MS", "-1"),
    ("EDGE_OBS_LOG_SKIP_PATHS", "no-slash"),
    ("EDGE_OBS_LOG_START", "perhaps"),
    ("EDGE_OBS_LOG_USER_AGENT_MAX", "4096"),
    ("EDGE_OBS_LOG_REQUEST_HEADERS", "bad name"),
    ("EDGE_OBS_LOG_RESPONSE_HEADERS", "bad name"),
    ("EDGE_OBS_REDACT_HEADERS", "bad name"),
    ("EDGE_OBS_REDACT_QUERY_PARAMS", "a=b"),
    ("EDGE_OBS_METRICS", "maybe"),
    ("EDGE_OBS_ROUTES", "no-slash"),
    ("EDGE_OBS_TRUSTED_PROXY_HOPS", "33"),
    ("EDGE_OBS_CLIENT_ADDRESS_HEADER", "x-real-ip"),
    ("EDGE_OBS_PEER_ADDRESS_HEADER", "not a header"),
    ("EDGE_OBS_CORS_ALLOW_ORIGINS", "null"),
    ("EDGE_OBS_CORS_ALLOW_METHODS", "GET,(bad)"),
    ("EDGE_OBS_CORS_ALLOW_HEADERS", "bad name"),
    ("EDGE_OBS_CORS_EXPOSE_HEADERS", "bad name"),
    ("EDGE_OBS_CORS_ALLOW_CREDENTIALS", "maybe"),
    ("EDGE_OBS_CORS_MAX_AGE", "forever"),
    ("EDGE_OBS_LOG_CONTEXT", "maybe"),
    ("EDGE_OBS_LOG_CONTEXT_PREFIX", "Obs Context"),
    ("EDGE_OBS_OTLP_SIGNALS", "traces,spans"),
    ("EDGE_OBS_OTLP_BATCH_SIZE", "0"),
    ("EDGE_OBS_OTLP_BATCH_AGE_MS", "soon"),
    ("EDGE_OBS_OTLP_MAX_QUEUE", "-1"),
    ("EDGE_OBS_OTLP_MAX_BYTES", "1"),
    ("EDGE_OBS_NO_SUCH_SETTING", "on"),
];

#[test]
fn every_malformed_setting_is_reported_and_requests_use_defaults() {
    // The list covers every variable the middleware knows.
    for known in edge_observability::config::KNOWN_VARIABLES {
        assert!(
            MALFORMED.iter().any(|(name, _)| name == known),
            "no malformed value for {known}"
        );
    }
    let env: Vec<String> = MALFORMED.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args: Vec<&str> = Vec::new();
    for pair in &env {
        args.extend(["--env", pair.as_str()]);
    }
    let host = Host::start(&args);

    // runtime-host reports every one at start-up, naming it.
    let stderr = host.stderr().join("\n");
    for (name, _) in MALFORMED {
        assert!(
            host.stderr()
                .iter()
                .any(|l| l.contains("invalid middleware setting")
                    && l.contains(&format!("variable={name} "))),
            "no start-up error for {name}:\n{stderr}"
        );
    }

    // Requests are served with the defaults.
    let response = get(
        host.addr,
        "/hello",
        &[("x-request-id", "cfg-1"), ("user-agent", "ua")],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.request_id(), "cfg-1");
    assert_eq!(
        response.header("strict-transport-security").as_deref(),
        Some("max-age=63072000; includeSubDomains")
    );
    assert_eq!(response.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(response.header("x-xss-protection").as_deref(), Some("0"));
    assert!(response.header("server-timing").is_some());
    let log = host.log_line("cfg-1");
    assert_eq!(log["level"], "info");
    assert!(log.get("service.name").is_none());

    // The component logs one config.invalid line per issue on its first request.
    let issues: Vec<Value> = host
        .stdout()
        .iter()
        .filter(|l| l.contains("\"event\":\"config.invalid\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (name, _) in MALFORMED {
        let issue = issues
            .iter()
            .find(|i| i["variable"] == *name)
            .unwrap_or_else(|| panic!("no config.invalid line for {name}"));
        assert_eq!(issue["level"], "error");
        assert!(issue["default_used"].is_string(), "{issue}");
    }
    assert_log_lines_are_clean(&host);
    let everything = format!("{}\n{}", host.stdout().join("\n"), stderr);
    assert!(
        !everything.contains("CfGsEcReT"),
        "a header rule value leaked"
    );
    assert_eq!(host.admin_get("/readyz").status, 200);
    assert_still_serving(&host);
}

/// An app metric whose label value holds `"` and `\` (printed by the app, or in a Spin log
/// that `collect` follows) is escaped on `/metrics`: unescaped, Prometheus rejects the whole
/// scrape, and every metric and SLO alert of the host is lost with it.
#[test]
fn app_metric_label_values_are_escaped_on_metrics() {
    const LINE: &str = r#"{"schema":"edge_obs.app_metric.v1","type":"counter","name":"x","value":1,"attributes":{"k":"a\"b\\c"}}"#;
    const SAMPLE: &str = r#"app_x_total{k="a\"b\\c"} 1"#;
    let host = Host::start(&[]);
    let query: String = LINE.bytes().map(|b| format!("%{b:02X}")).collect();
    let response = get(host.addr, &format!("/print?line={query}"), &[]);
    assert_eq!(response.status, 200);
    let text = host.wait_metrics("the app metric", |t| t.contains("app_x_total"));
    assert!(text.contains(SAMPLE), "{text}");
    promtool_check(&text);

    // The same line in a Spin log file, through `collect`, which also wants the admin token
    // that serve mode wants (it used to serve /metrics to anyone).
    let dir = std::env::temp_dir().join(unique("escape-collect"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hello-app_stdout.txt");
    std::fs::write(&file, format!("{LINE}\n")).unwrap();
    let collector = Host::start_with_env(
        &[
            "collect",
            file.to_str().unwrap(),
            "--from-start",
            "--poll-interval",
            "50ms",
        ],
        &[("RUNTIME_HOST_ADMIN_TOKEN", "s3cret-token-for-collect")],
    );
    assert_eq!(collector.admin_get("/metrics").status, 401);
    assert_eq!(collector.admin_get("/readyz").status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let r = get(
            collector.admin,
            "/metrics",
            &[("authorization", "Bearer s3cret-token-for-collect")],
        );
        assert_eq!(r.status, 200);
        let text = r.text();
        if text.contains("app_x_total") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(text.contains(SAMPLE), "{text}");
    promtool_check(&text);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An app may call only the hosts `--allowed-outbound-hosts` allows, as under Spin: by
/// default nothing, not the host's own admin port, not a cloud metadata address. The app gets
/// `HttpRequestDenied` at once, and the host says once which flag would allow the origin.
#[test]
fn an_app_may_call_only_the_hosts_it_is_allowed() {
    let host = Host::start(&[]);
    let admin = format!("http://{}/livez", host.admin);
    let r = get(host.addr, &format!("/fetch?url={admin}"), &[]);
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    let hint = format!("--allowed-outbound-hosts http://{}", host.admin);
    host.wait_stderr("the refusal, with the flag", |l| {
        l.contains("a guest's outgoing request was refused") && l.contains(&hint)
    });
    let metadata = get(
        host.addr,
        "/fetch?url=http://169.254.169.254/latest/meta-data/",
        &[],
    );
    assert_eq!(metadata.status, 502);
    assert!(metadata.text().contains("HttpRequestDenied"));
    // Said once per origin, however often the app tries.
    for _ in 0..5 {
        assert_eq!(
            get(host.addr, &format!("/fetch?url={admin}"), &[]).status,
            502
        );
    }
    let said = host
        .stderr()
        .iter()
        .filter(|l| l.contains("a guest's outgoing request was refused") && l.contains(&hint))
        .count();
    assert_eq!(said, 1);

    let allowed = Host::start(&["--allowed-outbound-hosts", "http://127.0.0.1:*"]);
    let admin = format!("http://{}/livez", allowed.admin);
    let r = get(allowed.addr, &format!("/fetch?url={admin}"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], 200);

    // A bad pattern is refused at start, naming it.
    let Err(bad) = Host::try_start(&["--allowed-outbound-hosts", "127.0.0.1:4318"]) else {
        panic!("a pattern without a scheme was accepted");
    };
    assert!(bad.contains("no scheme"), "{bad}");
}

/// DNS rebinding: a web page the operator visits points a name of its own at the admin
/// address. Every path but the probes refuses a `Host` that is neither an IP address,
/// `localhost` nor an `--admin-host` name.
#[test]
fn the_admin_address_refuses_names_it_was_not_given() {
    let admin_get = |host: &Host, path: &str, name: &str| {
        send(
            host.admin,
            format!("GET {path} HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
    };
    let host = Host::start(&[]);
    for path in ["/metrics", "/", "/api/v1/stats"] {
        let r = admin_get(&host, path, "rebound.attacker.example:9464");
        assert_eq!(r.status, 403, "{path}");
        assert!(
            r.text().contains("--admin-host rebound.attacker.example"),
            "{}",
            r.text()
        );
        assert_eq!(
            admin_get(&host, path, &host.admin.to_string()).status,
            200,
            "{path}"
        );
        assert_eq!(
            admin_get(&host, path, "localhost:9464").status,
            200,
            "{path}"
        );
    }
    assert_eq!(
        admin_get(&host, "/readyz", "rebound.attacker.example").status,
        200
    );
    let named = Host::start(&["--admin-host", "admin.internal.example"]);
    assert_eq!(
        admin_get(&named, "/metrics", "admin.internal.example:9464").status,
        200
    );
    assert_eq!(admin_get(&named, "/metrics", "other.example").status, 403);
}

/// A request in absolute form with `https` on the plain-HTTP port came in the clear: the app
/// and the log see `http`, and the target's authority.
#[test]
fn an_absolute_form_https_target_on_the_plain_port_is_http() {
    let host = Host::start(&[]);
    let id = unique("absolute-form");
    let raw = format!(
        "GET https://app.example/echo?x=1 HTTP/1.1\r\nhost: app.example\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n"
    );
    let response = send(host.addr, raw.as_bytes());
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["path"], "/echo");
    let line = host.log_line(&id);
    assert_eq!(line["url.scheme"], "http", "{line}");
    assert_eq!(line["server.address"], "app.example", "{line}");
}

//! End-to-end: library mode. The demo app `examples/library-app` links the middleware core
//! and wraps its own handler; runtime-host serves it alone (`--no-middleware`), and it must
//! behave as the middleware component in front of an app does (compare tests/e2e.rs).

mod common;

use common::{Host, get, metric_sum, promtool_check, request, send, unique};
use runtime_host::serving::components::LIBRARY_APP_PATH;

const UUID_LEN: usize = 36;
const ORIGIN: &str = "https://app.example.com";

/// The library app alone, its metric events counted (`--library-mode`), plus `extra` args.
fn library_host(extra: &[&str]) -> Host {
    let mut args = vec![
        "--no-middleware",
        "--library-mode",
        "--app",
        LIBRARY_APP_PATH,
    ];
    args.extend_from_slice(extra);
    Host::start(&args)
}

#[test]
fn the_app_gets_a_request_id_and_trace_context_and_answers_with_the_baseline() {
    let host = library_host(&[]);
    let response = get(host.addr, "/anything?x=1", &[]);
    assert_eq!(response.status, 200, "{response:?}");

    let id = response.assert_default_decoration();
    assert_eq!(response.header("x-frame-options").as_deref(), Some("DENY"));

    // What the app's own handler received: the same id and a fresh traceparent.
    let echo = response.json();
    assert_eq!(echo["path"], "/anything");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["headers"]["x-request-id"], id.as_str());
    let traceparent = echo["headers"]["traceparent"].as_str().unwrap();
    assert_eq!(traceparent.len(), 55, "{traceparent}");
    assert!(traceparent.starts_with("00-"));

    // One access line, with the schema's fields and the same ids.
    let log = host.log_line(&id);
    assert_eq!(log["event"], "http.request");
    assert_eq!(log["level"], "info");
    assert_eq!(log["http.request.method"], "GET");
    assert_eq!(log["url.path"], "/anything");
    assert_eq!(log["url.query"], "x=1");
    assert_eq!(log["url.scheme"], "http");
    assert_eq!(log["http.response.status_code"], 200);
    assert_eq!(log["trace_id"].as_str().unwrap(), &traceparent[3..35]);
    assert!(log["timestamp"].as_str().unwrap().ends_with('Z'), "{log}");
    assert!(log["duration_ms"].as_f64().unwrap() >= 0.0, "{log}");
    assert_eq!(
        log["http.response.body.size"],
        response.body.len() as u64,
        "{log}"
    );
}

#[test]
fn client_ids_are_kept_when_valid_and_replaced_when_hostile() {
    let host = library_host(&[]);
    let good = get(host.addr, "/", &[("x-request-id", "req-123_abc.DEF")]);
    assert_eq!(good.request_id(), "req-123_abc.DEF");
    assert_eq!(good.json()["headers"]["x-request-id"], "req-123_abc.DEF");

    // An id that tries to forge a log field is replaced, and the log says why.
    let hostile = r#"x","level":"debug"#;
    let bad = get(host.addr, "/", &[("x-request-id", hostile)]);
    let id = bad.request_id();
    assert_ne!(id, hostile);
    assert_eq!(id.len(), UUID_LEN);
    assert_eq!(bad.json()["headers"]["x-request-id"], id.as_str());
    let log = host.log_line(&id);
    assert_eq!(log["level"], "info", "the forged field did not take effect");
    assert_eq!(log["request_id.replaced"], "invalid character");

    // Raw obs-text bytes: valid HTTP, invalid id.
    let raw =
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-request-id: ab\xff\xfe\"cd\r\n\r\n";
    let raw_response = send(host.addr, raw);
    assert_eq!(raw_response.status, 200);
    let raw_id = raw_response.request_id();
    assert_eq!(raw_id.len(), UUID_LEN);
    assert_eq!(
        host.log_line(&raw_id)["request_id.replaced"],
        "invalid character"
    );

    // The alias header is accepted too, and forwarded under the main name.
    let alias = get(host.addr, "/", &[("x-correlation-id", "corr-9")]);
    assert_eq!(alias.request_id(), "corr-9");
    assert_eq!(alias.json()["headers"]["x-request-id"], "corr-9");
}

#[test]
fn traceparent_is_continued_and_an_invalid_one_restarts_the_trace() {
    let host = library_host(&[]);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = get(
        host.addr,
        "/",
        &[
            ("traceparent", parent),
            ("tracestate", "vendor=abc,other=1"),
        ],
    );
    let echo = response.json();
    let forwarded = echo["headers"]["traceparent"].as_str().unwrap();
    assert!(forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(
        !forwarded.contains("00f067aa0ba902b7"),
        "a new span id for this hop"
    );
    assert!(forwarded.ends_with("-01"));
    assert_eq!(echo["headers"]["tracestate"], "vendor=abc,other=1");
    assert_eq!(
        host.log_line(&response.request_id())["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    // Invalid (uppercase): a new trace, tracestate dropped.
    let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    let echo = get(
        host.addr,
        "/",
        &[("traceparent", upper), ("tracestate", "v=1")],
    )
    .json();
    let restarted = echo["headers"]["traceparent"].as_str().unwrap();
    assert!(!restarted.contains("4bf92f35"), "{restarted}");
    assert_eq!(restarted.len(), 55, "{restarted}");
    assert!(echo["headers"].get("tracestate").is_none());
}

#[test]
fn app_headers_are_cleaned_and_log_context_moves_into_the_line() {
    let host = library_host(&[]);
    let response = get(
        host.addr,
        "/headers?Server=nginx&X-Powered-By=PHP/8&x-request-id=app-id&X-Frame-Options=SAMEORIGIN&obs-context-tenant=acme",
        &[],
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.header("server").is_none(), "{response:?}");
    assert!(response.header("x-powered-by").is_none(), "{response:?}");
    assert!(
        response.header("obs-context-tenant").is_none(),
        "{response:?}"
    );
    // Set exactly once, by the wrapper (header() panics on duplicates).
    let id = response.request_id();
    assert_ne!(id, "app-id");
    assert_eq!(response.header("x-frame-options").as_deref(), Some("DENY"));
    let log = host.log_line(&id);
    assert_eq!(log["context.tenant"], "acme", "{log}");
}

#[test]
fn each_request_writes_one_line_and_one_counted_metric_event() {
    let host = library_host(&["--env", "EDGE_OBS_ROUTES=/status/{code}"]);
    let ids: Vec<String> = (0..3).map(|i| unique(&format!("once-{i}"))).collect();
    for id in &ids {
        assert_eq!(
            get(host.addr, "/status/201", &[("x-request-id", id)]).status,
            201
        );
    }
    let failed = unique("five");
    assert_eq!(
        get(host.addr, "/status/503", &[("x-request-id", &failed)]).status,
        503
    );
    for id in ids.iter().chain([&failed]) {
        host.log_line(id);
    }
    let text = host.wait_metrics("four requests", |t| {
        metric_sum(
            t,
            "http_server_requests_total",
            &[("http_route", "/status/{code}")],
        ) == 4.0
    });
    assert_eq!(
        metric_sum(
            &text,
            "http_server_requests_total",
            &[
                ("http_route", "/status/{code}"),
                ("http_response_status_code", "201"),
            ]
        ),
        3.0,
        "{text}"
    );
    assert!(text.contains("http_server_request_duration_seconds_bucket{"));
    assert!(
        !text.contains("/status/201"),
        "raw paths never become labels"
    );
    promtool_check(&text);

    // Exactly one access line per request, and the metric events fed /metrics only.
    let lines = host.log_lines();
    for id in ids.iter().chain([&failed]) {
        let count = lines
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .count();
        assert_eq!(count, 1, "access lines of {id}");
    }
    let log = host.log_line(&failed);
    assert_eq!(log["level"], "error");
    assert_eq!(log["error.type"], "503");
    assert_eq!(log["http.route"], "/status/{code}");
    assert!(
        !host
            .stdout()
            .iter()
            .any(|l| l.contains("edge_obs.metric.v1")),
        "metric events feed /metrics, not stdout"
    );
}

#[test]
fn without_library_mode_the_apps_metric_events_are_printed_not_counted() {
    // The same app served as any app: its metric event lines are an app's, which the host
    // never counts.
    let host = Host::start(&["--no-middleware", "--app", LIBRARY_APP_PATH]);
    let id = unique("uncounted");
    assert_eq!(
        get(host.addr, "/hello", &[("x-request-id", &id)]).status,
        200
    );
    let event = host.wait_stdout("the printed metric event", |l| {
        l.contains("edge_obs.metric.v1")
    });
    assert!(
        event.contains("\"http.response.status_code\":200"),
        "{event}"
    );
    host.log_line(&id);
    assert_eq!(
        metric_sum(&host.metrics(), "http_server_requests_total", &[]),
        0.0
    );
}

#[test]
fn library_mode_needs_no_middleware() {
    let err = Host::try_start(&["--library-mode", "--app", LIBRARY_APP_PATH])
        .err()
        .expect("refused");
    assert!(err.contains("--no-middleware"), "{err}");
}

#[test]
fn settings_are_the_middlewares() {
    let host = library_host(&[
        "--env",
        "EDGE_OBS_SECURITY_HEADERS=off",
        "--env",
        "EDGE_OBS_SERVER_TIMING=off",
        "--env",
        "EDGE_OBS_REQUEST_ID_HEADER=x-trace-me",
    ]);
    let response = get(host.addr, "/", &[("x-trace-me", "mine-1")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-trace-me").as_deref(), Some("mine-1"));
    assert!(response.header("strict-transport-security").is_none());
    assert!(response.header("x-content-type-options").is_none());
    assert!(response.header("server-timing").is_none());
    assert_eq!(response.json()["headers"]["x-trace-me"], "mine-1");
    assert_eq!(host.log_line("mine-1")["http.response.status_code"], 200);

    // A bad value: reported once as a config.invalid line, and the default is used.
    let bad = library_host(&["--env", "EDGE_OBS_LOG_SAMPLE_RATE=lots"]);
    assert_eq!(get(bad.addr, "/hello", &[]).status, 200);
    let issue = bad.wait_stdout("the config issue", |l| l.contains("config.invalid"));
    assert!(issue.contains("EDGE_OBS_LOG_SAMPLE_RATE"), "{issue}");

    // Switched off: the app's response passes untouched, and nothing is logged.
    let off = library_host(&["--env", "EDGE_OBS_ENABLED=off"]);
    let plain = get(off.addr, "/headers?Server=nginx", &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("server").as_deref(), Some("nginx"));
    assert!(plain.header("x-request-id").is_none());
    assert!(plain.header("strict-transport-security").is_none());
    assert!(
        get(off.addr, "/", &[]).json()["headers"]
            .get("traceparent")
            .is_none()
    );
}

#[test]
fn bodies_of_known_and_unknown_size_are_streamed_and_counted() {
    let host = library_host(&[]);
    // Known size: content-length kept, logged as declared.
    let known = get(host.addr, "/bytes/200000", &[("x-request-id", "known-1")]);
    assert_eq!(known.status, 200);
    assert_eq!(known.header("content-length").as_deref(), Some("200000"));
    assert_eq!(known.body.len(), 200_000);
    assert_eq!(host.log_line("known-1")["http.response.body.size"], 200_000);

    // Unknown size: streamed without content-length, counted as sent.
    let streamed = get(host.addr, "/stream/500", &[("x-request-id", "stream-1")]);
    assert_eq!(streamed.status, 200);
    assert!(streamed.header("content-length").is_none());
    assert!(streamed.text().ends_with("chunk 499\n"));
    assert_eq!(
        host.log_line("stream-1")["http.response.body.size"],
        streamed.body.len() as u64
    );

    // A chunked request body (unknown size), read by the app and streamed back.
    let chunk = "x".repeat(3000);
    let mut raw = String::from(
        "POST /echo-body HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-request-id: echo-1\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for _ in 0..4 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    let echoed = send(host.addr, raw.as_bytes());
    assert_eq!(echoed.status, 200);
    assert_eq!(echoed.body.len(), 12_000);
    let log = host.log_line("echo-1");
    assert_eq!(log["http.request.body.size"], 12_000, "{log}");
    assert_eq!(log["http.response.body.size"], 12_000, "{log}");

    // A request body of known size is logged as declared.
    let posted = request(
        host.addr,
        "POST",
        "/echo-body",
        &[("x-request-id", "echo-2")],
        b"hello",
    );
    assert_eq!(posted.text(), "hello");
    assert_eq!(host.log_line("echo-2")["http.request.body.size"], 5);
}

#[test]
fn preflights_are_answered_and_app_failures_become_problems() {
    let host = library_host(&[
        "--env",
        "EDGE_OBS_CORS_ALLOW_ORIGINS=https://app.example.com",
        "--env",
        "EDGE_OBS_CORS_ALLOW_METHODS=GET,PUT",
    ]);
    let id = unique("preflight");
    let preflight = request(
        host.addr,
        "OPTIONS",
        "/api/items/7",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "PUT"),
            ("x-request-id", &id),
        ],
        b"",
    );
    // The app echoes every OPTIONS request with a 200 JSON body: an empty 204 means the
    // wrapper answered without calling it.
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert!(preflight.body.is_empty(), "{preflight:?}");
    assert_eq!(
        preflight.header("access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    assert_eq!(
        preflight.header("access-control-allow-methods").as_deref(),
        Some("GET, PUT")
    );
    assert_eq!(preflight.request_id(), id);
    assert_eq!(host.log_line(&id)["http.response.status_code"], 204);
    // An actual cross-origin request reaches the app and carries the grant.
    let actual = get(host.addr, "/api/items/7", &[("origin", ORIGIN)]);
    assert_eq!(actual.json()["method"], "GET");
    assert_eq!(
        actual.header("access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );

    // The app's handler returns an error (a timeout): 504 problem+json with the request id.
    let failed = get(host.addr, "/fail", &[("x-request-id", "fail-1")]);
    assert_eq!(failed.status, 504, "{failed:?}");
    assert_eq!(
        failed.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(failed.request_id(), "fail-1");
    assert_eq!(failed.json()["request_id"], "fail-1");
    assert!(failed.header("strict-transport-security").is_some());
    let log = host.log_line("fail-1");
    assert_eq!(log["level"], "error");
    assert_eq!(log["error.type"], "timeout");
    assert_eq!(log["http.response.status_code"], 504);
    host.wait_metrics("the failure", |t| {
        metric_sum(
            t,
            "http_server_requests_total",
            &[
                ("http_response_status_code", "504"),
                ("error_type", "timeout"),
            ],
        ) == 1.0
    });
}

/// A body the app ends with an error is logged and counted as one, as the component does in
/// front of an app (tests/faults.rs): OpenTelemetry's HTTP conventions set `error.type` when a
/// request ends in error, whatever the status.
#[test]
fn a_body_that_fails_mid_stream_is_logged_as_an_error() {
    let host = library_host(&[]);
    common::assert_failing_body_is_logged_as_an_error(&host, "/fail-body");
}

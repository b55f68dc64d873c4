//! End-to-end: the real middleware in front of the real demo app (or a native origin),
//! inside runtime-host on loopback, checked at the HTTP level.

mod common;

use common::{Host, get, request, send};
use std::time::Duration;

const UUID_LEN: usize = 36;

#[test]
fn chain_sets_request_id_trace_context_and_security_headers() {
    let host = Host::start(&[]);
    let response = get(host.addr, "/anything?x=1", &[]);
    assert_eq!(response.status, 200);

    let id = response.assert_default_decoration();

    // What the app received: the same id and a fresh traceparent.
    let echo = response.json();
    assert_eq!(echo["path"], "/anything");
    assert_eq!(echo["headers"]["x-request-id"], id.as_str());
    let traceparent = echo["headers"]["traceparent"].as_str().unwrap();
    assert_eq!(traceparent.len(), 55, "{traceparent}");
    assert!(traceparent.starts_with("00-"));

    // One access-log line, with the same ids.
    let log = host.log_line(&id);
    assert_eq!(log["http.request.method"], "GET");
    assert_eq!(log["url.path"], "/anything");
    assert_eq!(log["http.response.status_code"], 200);
    assert_eq!(log["level"], "info");
    assert_eq!(log["trace_id"].as_str().unwrap(), &traceparent[3..35]);
}

#[test]
fn client_ids_are_kept_when_valid_and_replaced_when_hostile() {
    let host = Host::start(&[]);
    let good = get(host.addr, "/", &[("x-request-id", "req-123_abc.DEF")]);
    assert_eq!(good.request_id(), "req-123_abc.DEF");
    assert_eq!(good.json()["headers"]["x-request-id"], "req-123_abc.DEF");

    // An id that tries to forge a log field is replaced, and the log says why.
    let hostile = r#"x","level":"debug"#;
    let bad = get(host.addr, "/", &[("x-request-id", hostile)]);
    let id = bad.request_id();
    assert_ne!(id, hostile);
    assert_eq!(id.len(), UUID_LEN);
    let log = host.log_line(&id);
    assert_eq!(log["level"], "info", "the forged field did not take effect");
    assert_eq!(log["request_id.replaced"], "invalid character");

    // Too long: 129 characters.
    let long = "a".repeat(129);
    let replaced = get(host.addr, "/", &[("x-request-id", &long)]);
    assert_ne!(replaced.request_id(), long);
    assert_eq!(
        host.log_line(&replaced.request_id())["request_id.replaced"],
        "too long"
    );

    // The alias header is accepted too.
    let alias = get(host.addr, "/", &[("x-correlation-id", "corr-9")]);
    assert_eq!(alias.request_id(), "corr-9");
}

#[test]
fn traceparent_is_continued_and_tracestate_kept() {
    let host = Host::start(&[]);
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

    // Invalid (uppercase): a new trace, tracestate dropped.
    let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    let echo = get(
        host.addr,
        "/",
        &[("traceparent", upper), ("tracestate", "v=1")],
    )
    .json();
    assert!(
        !echo["headers"]["traceparent"]
            .as_str()
            .unwrap()
            .contains("4bf92f35")
    );
    assert!(echo["headers"].get("tracestate").is_none());
}

#[test]
fn app_headers_are_cleaned_not_duplicated() {
    let host = Host::start(&[]);
    let response = get(
        host.addr,
        "/headers?Server=nginx&X-Powered-By=PHP%2F8&x-request-id=app-id&X-Frame-Options=SAMEORIGIN",
        &[],
    );
    assert_eq!(response.status, 200);
    assert!(
        response.header("server").is_none(),
        "leaky Server header removed"
    );
    assert!(response.header("x-powered-by").is_none());
    // Set exactly once, by the middleware (overriding mode).
    assert_ne!(response.request_id(), "app-id");
    assert_eq!(response.header("x-frame-options").as_deref(), Some("DENY"));
}

#[test]
fn metrics_follow_requests_and_pass_promtool() {
    let host = Host::start(&["--env", "EDGE_OBS_ROUTES=/status/{code}"]);
    for _ in 0..3 {
        assert_eq!(get(host.addr, "/status/201", &[]).status, 201);
    }
    assert_eq!(get(host.addr, "/status/503", &[]).status, 503);
    let id = get(host.addr, "/status/503", &[]).request_id();
    host.log_line(&id);
    // Metric events arrive when the body is done; wait for the count to settle.
    let mut text = String::new();
    for _ in 0..100 {
        text = host.metrics();
        if text.contains(r#"http_response_status_code="503""#) && text.contains("} 2\n") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_requests_total{")
                && l.contains(r#"http_route="/status/{code}""#)
                && l.contains(r#"http_response_status_code="201""#)
        })
        .unwrap_or_else(|| panic!("no request counter for the route:\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(text.contains("http_server_request_duration_seconds_bucket{"));
    assert!(text.contains("runtime_host_build_info{"));
    assert!(
        !text.contains("/status/201"),
        "raw paths never become labels"
    );
    assert!(
        !host
            .stdout()
            .iter()
            .any(|l| l.contains("edge_obs.metric.v1")),
        "metric events feed /metrics, not stdout"
    );

    common::promtool_check(&text);
}

#[test]
fn probes_answer() {
    let host = Host::start(&[]);
    assert_eq!(host.admin_get("/livez").status, 200);
    assert_eq!(host.admin_get("/readyz").status, 200);
    assert_eq!(host.admin_get("/healthz").status, 200);
    assert_eq!(host.admin_get("/startupz").status, 200);
    let verbose = host.admin_get("/readyz?verbose");
    assert!(
        verbose.text().contains("[+]components ok"),
        "{}",
        verbose.text()
    );
    assert_eq!(host.admin_get("/nope").status, 404);
}

#[test]
fn upstream_mode_forwards_to_a_native_origin() {
    let origin = common::start_origin();
    let url = format!("http://{origin}");
    let host = Host::start(&["--upstream", &url]);
    let response = request(
        host.addr,
        "POST",
        "/api/items?q=1",
        &[("x-request-id", "up-1")],
        b"hello",
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.request_id(), "up-1");
    assert!(
        response.header("server").is_none(),
        "origin's Server header removed"
    );
    let echo = response.json();
    assert_eq!(echo["origin"], true);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/items?q=1");
    assert_eq!(echo["headers"]["x-request-id"], "up-1");
    assert_eq!(echo["body_len"], 5);
    assert!(
        echo["headers"]["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-")
    );
    let log = host.log_line("up-1");
    assert_eq!(log["http.request.body.size"], 5);
    let verbose = host.admin_get("/readyz?verbose").text();
    assert!(verbose.contains("[+]upstream ok"), "{verbose}");
}

#[test]
fn upstream_failure_is_a_502_problem_with_the_request_id() {
    // Accepts connections (so the host starts and is ready) but answers none.
    let origin = common::start_dropping_origin();
    let host = Host::start(&["--upstream", &format!("http://{origin}")]);
    let response = get(host.addr, "/x", &[("x-request-id", "fail-1")]);
    assert_eq!(response.status, 502);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(response.request_id(), "fail-1");
    let problem = response.json();
    assert_eq!(problem["status"], 502);
    assert_eq!(problem["request_id"], "fail-1");
    let log = host.log_line("fail-1");
    assert_eq!(log["level"], "error");
    assert!(log["error.type"].is_string(), "{log}");
    // The host keeps serving.
    assert_eq!(get(host.addr, "/y", &[]).status, 502);
    assert!(
        host.metrics()
            .contains("runtime_host_upstream_errors_total{")
    );
}

#[test]
fn unreachable_upstream_at_start_is_not_ready_until_it_comes_up() {
    let closed = common::closed_port();
    let host = Host::start(&["--upstream", &format!("http://{closed}")]);
    assert_eq!(host.admin_get("/readyz").status, 503);
    assert_eq!(
        host.admin_get("/livez").status,
        200,
        "not ready is no crash"
    );
    let verbose = host.admin_get("/readyz?verbose").text();
    assert!(verbose.contains("upstream"), "{verbose}");
    // While the origin is down, requests get the middleware's 502, and the host serves on.
    assert_eq!(get(host.addr, "/", &[]).status, 502);
    common::start_origin_at(closed);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while host.admin_get("/readyz").status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never became ready once the origin came up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let response = get(host.addr, "/after", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["origin"], true);
}

#[test]
fn require_upstream_keeps_the_fail_fast_start() {
    let closed = common::closed_port();
    let err = Host::try_start(&[
        "--upstream",
        &format!("http://{closed}"),
        "--require-upstream",
    ])
    .err()
    .expect("refuses to start");
    assert!(
        err.contains("upstream") && err.contains("not reachable"),
        "{err}"
    );
}

#[test]
fn guest_trap_is_a_500_and_the_host_keeps_serving() {
    let host = Host::start(&[]);
    let response = get(host.addr, "/trap", &[]);
    assert_eq!(response.status, 500);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(get(host.addr, "/", &[]).status, 200);
    let metrics = host.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("runtime_host_guest_traps_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[test]
fn endless_loop_times_out_and_others_are_unaffected() {
    let host = Host::start(&["--request-timeout", "1s"]);
    let started = std::time::Instant::now();
    let response = get(host.addr, "/loop", &[]);
    assert_eq!(response.status, 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(get(host.addr, "/", &[]).status, 200);
    assert!(
        host.metrics()
            .lines()
            .any(|l| l == "runtime_host_request_timeouts_total 1")
    );
}

#[test]
fn overload_gets_503_with_retry_after() {
    let host = Host::start(&["--max-concurrent-requests", "1"]);
    let addr = host.addr;
    let slow = std::thread::spawn(move || get(addr, "/delay/1500", &[]));
    std::thread::sleep(Duration::from_millis(500));
    let rejected = get(host.addr, "/", &[]);
    assert_eq!(rejected.status, 503);
    assert_eq!(rejected.header("retry-after").as_deref(), Some("1"));
    assert_eq!(slow.join().unwrap().status, 200);
    assert_eq!(get(host.addr, "/", &[]).status, 200);
    assert!(
        host.metrics()
            .contains(r#"runtime_host_rejected_requests_total{reason="overload"} 1"#)
    );
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut host = Host::start(&["--shutdown-grace", "10s"]);
    let addr = host.addr;
    let in_flight = std::thread::spawn(move || get(addr, "/delay/1500", &[]));
    std::thread::sleep(Duration::from_millis(400));
    host.terminate();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        host.admin_get("/readyz").status,
        503,
        "readiness turns 503 at once"
    );
    assert_eq!(host.admin_get("/livez").status, 200);
    assert_eq!(
        in_flight.join().unwrap().status,
        200,
        "the in-flight request completes"
    );
    assert!(host.wait_exit(Duration::from_secs(15)).success());
    // A clean stop is not an error: the instances still alive are dropped with the host, not
    // reported as trapped. (The exited host's last stderr lines reach the reader at once.)
    std::thread::sleep(Duration::from_millis(200));
    let errors: Vec<String> = host
        .stderr()
        .into_iter()
        .filter(|line| line.contains("ERROR"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn user_mistakes_get_one_clear_error_and_a_nonzero_exit() {
    let missing = Host::try_start(&["--app", "/nonexistent/app.wasm"])
        .err()
        .unwrap();
    assert!(
        missing.contains("cannot read /nonexistent/app.wasm"),
        "{missing}"
    );
    assert!(!missing.contains("panicked"), "{missing}");

    let junk = format!("{}/junk.wasm", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    let not_component = Host::try_start(&["--app", &junk]).err().unwrap();
    assert!(
        not_component.contains("not a WebAssembly component"),
        "{not_component}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let in_use = Host::try_start(&["--addr", &addr]).err().unwrap();
    assert!(in_use.contains("cannot listen on"), "{in_use}");

    let strict = Host::try_start(&["--strict-config", "--env", "EDGE_OBS_LOG_SAMPLE_RATE=lots"])
        .err()
        .unwrap();
    assert!(strict.contains("EDGE_OBS_LOG_SAMPLE_RATE"), "{strict}");
}

#[test]
fn raw_hostile_bytes_in_a_request_id_never_reach_the_app_or_the_log() {
    let host = Host::start(&[]);
    // obs-text bytes and a quote: valid HTTP, invalid request id.
    let raw =
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-request-id: ab\xff\xfe\"cd\r\n\r\n";
    let response = send(host.addr, raw);
    assert_eq!(response.status, 200);
    let id = response.request_id();
    assert_eq!(id.len(), UUID_LEN);
    let log = host.log_line(&id);
    assert_eq!(log["request_id.replaced"], "invalid character");
}

#[test]
fn a_streamed_body_is_logged_when_it_ends_with_its_real_size() {
    let host = Host::start(&[]);
    // 20 lines, 50 ms apart, no content-length.
    let response = get(
        host.addr,
        "/stream/20?delay_ms=50",
        &[("x-request-id", "stream-1")],
    );
    assert_eq!(response.status, 200);
    assert!(response.header("content-length").is_none());
    let log = host.log_line("stream-1");
    assert_eq!(log["http.response.body.size"], response.body.len() as u64);
    // At least the 19 pauses: the line was written after the last chunk, not the first.
    assert!(log["duration_ms"].as_f64().unwrap() >= 19.0 * 50.0, "{log}");
}

/// `EDGE_OBS_SECURITY_PROFILE` picks the baseline: an API gets OWASP's REST set, `strict`
/// adds COEP and `no-store`, and a per-header variable still wins.
#[test]
fn security_profiles_set_their_headers() {
    let header = |r: &common::Response, name: &str| r.header(name);
    let api = Host::start(&["--env", "EDGE_OBS_SECURITY_PROFILE=api"]);
    let r = get(api.addr, "/echo", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        header(&r, "content-security-policy").as_deref(),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    for absent in [
        "permissions-policy",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
        "x-xss-protection",
    ] {
        assert_eq!(header(&r, absent), None, "{absent}");
    }
    assert_eq!(
        header(&r, "x-content-type-options").as_deref(),
        Some("nosniff")
    );

    let strict = Host::start(&[
        "--env",
        "EDGE_OBS_SECURITY_PROFILE=strict",
        "--env",
        "EDGE_OBS_SECURITY_CACHE_CONTROL=private, no-cache",
    ]);
    let r = get(strict.addr, "/echo", &[]);
    assert_eq!(
        header(&r, "cross-origin-embedder-policy").as_deref(),
        Some("require-corp")
    );
    assert_eq!(
        header(&r, "cache-control").as_deref(),
        Some("private, no-cache")
    );
    assert!(header(&r, "permissions-policy").is_some());

    // The default is today's website set: nothing of the other profiles.
    let website = Host::start(&[]);
    let r = get(website.addr, "/echo", &[]);
    assert_eq!(header(&r, "cross-origin-embedder-policy"), None);
    assert_eq!(header(&r, "cache-control"), None);
}

/// Each profile, checked by a third-party scanner (PyPI's `shcheck`, which `scripts/test.sh`
/// installs): what it still reports missing is what the README says each profile leaves out
/// on purpose.
#[test]
fn a_header_scanner_finds_only_what_each_profile_leaves_out() {
    for (profile, expected_missing) in [
        ("website", vec!["Cross-Origin-Embedder-Policy"]),
        (
            "api",
            vec![
                "Cross-Origin-Embedder-Policy",
                "Cross-Origin-Opener-Policy",
                "Cross-Origin-Resource-Policy",
                "Permissions-Policy",
            ],
        ),
        ("strict", vec![]),
    ] {
        let env = format!("EDGE_OBS_SECURITY_PROFILE={profile}");
        let host = Host::start(&["--env", &env]);
        let url = format!("http://{}/echo", host.addr);
        let out = std::process::Command::new("python3")
            .args(["-m", "shcheck.shcheck", "-j", "-d", &url])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e})"));
        assert!(
            out.status.success(),
            "shcheck failed (run the tests with `bash scripts/test.sh`, which installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let report: serde_json::Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("shcheck printed no JSON ({e}): {text}"));
        let mut missing: Vec<String> = report[&url]["missing"]
            .as_array()
            .unwrap_or_else(|| panic!("{profile}: {report}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        missing.sort();
        assert_eq!(missing, expected_missing, "{profile}: {report}");
    }
}

// HTTP/2 and trailers. runtime-host serves HTTP/2 over cleartext to clients with prior
// knowledge, as Spin's HTTP trigger does; a gRPC-style app needs both.

/// The trailer field the demo app's `/trailers` ends its body with.
const APP_TRAILER: (&str, &str) = ("x-app-checksum", "sha256=demo");

#[test]
fn http2_with_prior_knowledge_gets_the_middleware() {
    let host = Host::start(&[]);
    let response = common::get_http2(host.addr, "/anything?via=h2", &[]);
    assert_eq!(response.status, 200, "{response:?}");
    let id = response.assert_default_decoration();
    let echo = response.json();
    assert_eq!(echo["path"], "/anything");
    assert_eq!(echo["headers"]["x-request-id"], id.as_str());
    let log = host.log_line(&id);
    assert_eq!(log["http.response.status_code"], 200);
    assert_eq!(log["url.path"], "/anything");

    // HTTP/1.1 on the same port, as before.
    let plain = get(host.addr, "/hello", &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.text(), "hello\n");
}

#[test]
fn response_trailers_reach_http2_clients_through_the_middleware() {
    let host = Host::start(&[]);
    let response = common::get_http2(host.addr, "/trailers", &[]);
    assert_eq!(response.status, 200, "{response:?}");
    response.assert_default_decoration();
    assert_eq!(response.text(), "body with trailers\n");
    let trailers: Vec<_> = response
        .trailers
        .iter()
        .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    assert_eq!(
        trailers,
        [(APP_TRAILER.0, APP_TRAILER.1.to_owned())],
        "{response:?}"
    );
}

#[test]
fn response_trailers_reach_http1_clients_that_accept_them() {
    let host = Host::start(&[]);
    // HTTP/1.1 sends trailers only to a client that says `TE: trailers`, and only those the
    // response declares in `Trailer` (RFC 9110, section 6.5): the app declares its field.
    let accepting = send(
        host.addr,
        b"GET /trailers HTTP/1.1\r\nhost: localhost\r\nte: trailers\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(accepting.status, 200, "{accepting:?}");
    accepting.assert_default_decoration();
    assert_eq!(accepting.header("trailer").as_deref(), Some(APP_TRAILER.0));
    assert_eq!(accepting.text(), "body with trailers\n");
    assert_eq!(
        accepting.trailers,
        [(APP_TRAILER.0.to_owned(), APP_TRAILER.1.as_bytes().to_vec())],
        "{accepting:?}"
    );
    let not_accepting = send(
        host.addr,
        b"GET /trailers HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(not_accepting.text(), "body with trailers\n");
    assert!(not_accepting.trailers.is_empty(), "{not_accepting:?}");
}

#[test]
fn upstream_mode_passes_the_origins_trailers_on() {
    let origin = common::start_scripted_origin(|_, stream| {
        use std::io::Write;
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\
                  trailer: grpc-status\r\n\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n",
            )
            .is_ok()
    });
    let url = format!("http://{origin}");
    let host = Host::start(&["--upstream", &url]);
    for response in [
        common::get_http2(host.addr, "/rpc", &[]),
        send(
            host.addr,
            b"GET /rpc HTTP/1.1\r\nhost: localhost\r\nte: trailers\r\nconnection: close\r\n\r\n",
        ),
    ] {
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.text(), "hello");
        response.request_id();
        assert_eq!(
            response.trailers,
            [("grpc-status".to_owned(), b"0".to_vec())],
            "{response:?}"
        );
    }
}

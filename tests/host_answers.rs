//! Every request is observable, whoever answers it: the requests runtime-host answers itself
//! (timeouts, traps, memory limit, overload, draining, 413, 431, 501, 400) get a request id
//! (a client's valid id kept), the security headers, exactly one access line with
//! `error.type`, and a count in `/metrics`, like the ones the middleware answers.

mod common;

use common::{Conn, Host, Response, get, metric_sum, request, unique};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Checks one host answer end to end and returns its access line.
fn assert_host_answer(
    host: &Host,
    response: &Response,
    status: u16,
    error_type: &str,
    client_id: &str,
) -> serde_json::Value {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("x-request-id").as_deref(),
        Some(client_id),
        "a valid client id is kept"
    );
    assert_eq!(response.all("x-request-id").len(), 1);
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains",
        ),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        assert_eq!(response.header(name).as_deref(), Some(value), "{name}");
    }
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let body = response.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["request_id"], client_id);

    let line = host.log_line(client_id);
    assert_eq!(line["http.response.status_code"], status);
    assert_eq!(line["error.type"], error_type);
    let lines = host
        .log_lines()
        .into_iter()
        .filter(|l| l["request_id"] == client_id)
        .count();
    assert_eq!(lines, 1, "exactly one access line for {client_id}");

    let status_text = status.to_string();
    let labels = [
        ("http_response_status_code", status_text.as_str()),
        ("error_type", error_type),
    ];
    host.wait_metrics(&format!("the {status} count"), |text| {
        metric_sum(text, "http_server_requests_total", &labels) == 1.0
    });
    line
}

#[test]
fn a_timeout_is_answered_observed_and_named_in_the_host_error_line() {
    let host = Host::start(&["--request-timeout", "1s"]);
    let id = unique("timeout");
    let response = get(host.addr, "/loop", &[("x-request-id", &id)]);
    let line = assert_host_answer(&host, &response, 504, "timeout", &id);
    assert_eq!(line["url.path"], "/loop");
    let trace_id = line["trace_id"].as_str().unwrap().to_owned();
    // One grep for the id finds the host's own error line too, with the trace and the path.
    let error_line = host.wait_stderr("the host error line", |l| l.contains(&id));
    assert!(
        error_line.contains("request failed in the host"),
        "{error_line}"
    );
    assert!(error_line.contains(&trace_id), "{error_line}");
    assert!(error_line.contains("/loop"), "{error_line}");
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
}

#[test]
fn a_trap_and_the_memory_limit_are_answered_and_told_apart() {
    let host = Host::start(&["--max-memory", "32MiB"]);
    let id = unique("trap");
    let response = get(host.addr, "/trap", &[("x-request-id", &id)]);
    assert_host_answer(&host, &response, 500, "guest_trap", &id);

    let id = unique("oom");
    let response = get(host.addr, "/alloc/64", &[("x-request-id", &id)]);
    assert_host_answer(&host, &response, 500, "memory_limit", &id);
    assert_eq!(get(host.addr, "/alloc/8", &[]).status, 200);
}

#[test]
fn overload_is_answered_and_observed() {
    let host = Host::start(&["--max-concurrent-requests", "1"]);
    let addr = host.addr;
    let slow = std::thread::spawn(move || get(addr, "/delay/1500", &[]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_sum(&host.metrics(), "http_server_active_requests", &[]) < 1.0 {
        assert!(Instant::now() < deadline, "the slow request never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = unique("overload");
    let response = get(host.addr, "/", &[("x-request-id", &id)]);
    assert_host_answer(&host, &response, 503, "overload", &id);
    assert_eq!(response.header("retry-after").as_deref(), Some("1"));
    assert_eq!(slow.join().unwrap().status, 200);
}

#[test]
fn a_request_arriving_while_draining_is_answered_and_observed() {
    let mut host = Host::start(&["--shutdown-grace", "10s"]);
    let addr = host.addr;
    // Keeps the process draining (and /metrics up) while the request below is answered.
    let slow = std::thread::spawn(move || get(addr, "/delay/3000", &[]));
    // A request whose head is only half sent when the drain begins.
    let mut late = TcpStream::connect(host.addr).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    late.write_all(b"GET /late HTTP/1.1\r\nhost: localhost\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_sum(&host.metrics(), "http_server_active_requests", &[]) < 1.0 {
        assert!(Instant::now() < deadline, "the slow request never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    host.terminate();
    host.wait_stderr("the drain", |l| l.contains("draining"));
    let id = unique("draining");
    late.write_all(format!("x-request-id: {id}\r\n\r\n").as_bytes())
        .unwrap();
    let response = common::read_response(&mut std::io::BufReader::new(late));
    assert_host_answer(&host, &response, 503, "draining", &id);
    assert_eq!(response.header("retry-after").as_deref(), Some("1"));
    assert_eq!(slow.join().unwrap().status, 200);
    assert!(host.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn limits_and_unsupported_methods_are_answered_and_observed() {
    let host = Host::start(&["--max-body-bytes", "1KiB", "--max-header-bytes", "8KiB"]);

    let id = unique("too-large");
    let response = request(
        host.addr,
        "POST",
        "/echo-body",
        &[("x-request-id", &id)],
        &vec![b'x'; 4096],
    );
    assert_host_answer(&host, &response, 413, "request_body_too_large", &id);

    // Over our limit, within hyper's backstop: answered by the host with its headers.
    let id = unique("big-head");
    let padding = "p".repeat(10 * 1024);
    let response = get(
        host.addr,
        "/",
        &[("x-request-id", &id), ("x-padding", &padding)],
    );
    assert_host_answer(&host, &response, 431, "request_header_too_large", &id);

    let id = unique("connect");
    let response = common::send(
        host.addr,
        format!("CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\nx-request-id: {id}\r\n\r\n")
            .as_bytes(),
    );
    assert_host_answer(&host, &response, 501, "method_not_supported", &id);

    // Two Host fields: a malformed request (RFC 9112), answered 400 by the host.
    let id = unique("two-hosts");
    let response = common::send(
        host.addr,
        format!(
            "GET / HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_host_answer(&host, &response, 400, "bad_request", &id);
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
}

#[test]
fn a_request_hyper_rejects_before_its_head_is_still_logged_and_counted() {
    let host = Host::start(&[]);
    let mut conn = Conn::open(host.addr);
    let response = conn.send(b"GET / HTTP/1.1\r\nhost: x\r\nx-request-id: a\x01b\r\n\r\n");
    assert_eq!(response.status, 400);
    let line = host.wait_stdout("the access line of the rejected request", |l| {
        l.contains("\"error.type\":\"bad_request\"")
    });
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["http.response.status_code"], 400);
    assert_eq!(line["client.address"], "127.0.0.1");
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    host.wait_metrics("the rejected request's count", |text| {
        metric_sum(
            text,
            "http_server_requests_total",
            &[
                ("http_response_status_code", "400"),
                ("error_type", "bad_request"),
            ],
        ) == 1.0
    });
}

#[test]
fn the_client_address_comes_from_the_tcp_peer_and_cannot_be_forged() {
    let host = Host::start(&[]);
    let id = unique("peer");
    let response = get(
        host.addr,
        "/",
        &[("x-request-id", &id), ("spin-client-addr", "6.6.6.6:666")],
    );
    assert_eq!(response.status, 200);
    let seen = response.json()["headers"]["spin-client-addr"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(seen.starts_with("127.0.0.1:"), "the app saw {seen}");
    assert_eq!(host.log_line(&id)["client.address"], "127.0.0.1");
}

/// Waits until `/metrics` counts the `real` requests sent, and checks that the app's forged
/// metric event (a teapot on `forged_route`) is not among them; returns the scrape.
fn only_real_requests_counted(host: &Host, real: f64, forged_route: &str, chain: &str) -> String {
    let metrics = host.wait_metrics("the real requests", |text| {
        metric_sum(text, "http_server_requests_total", &[]) == real
    });
    assert!(!metrics.contains(forged_route), "{chain}: {metrics}");
    assert_eq!(
        metric_sum(
            &metrics,
            "http_server_requests_total",
            &[("http_response_status_code", "418")]
        ),
        0.0,
        "{chain}"
    );
    metrics
}

#[test]
fn a_metric_line_printed_by_the_app_is_not_counted() {
    for chain in ["composed", "linked"] {
        let host = Host::start(&["--chain", chain]);
        let id = unique("forge");
        let response = get(host.addr, "/forge-metric", &[("x-request-id", &id)]);
        assert_eq!(response.status, 200);
        // The app's line is printed as its output, and the real request is counted once.
        host.wait_stdout("the app's forged line", |l| l.contains("/forged"));
        let metrics = only_real_requests_counted(&host, 1.0, "/forged", chain);
        assert_eq!(
            metric_sum(&metrics, "runtime_host_invalid_metric_events_total", &[]),
            0.0,
            "{chain}"
        );
    }
}

/// A WASI 0.3 app writing through `wasi:cli/stdout@0.3.0` is an app too: its forged metric
/// event and access lines are printed, never counted, and (like an app's WASI 0.2 lines)
/// never listed on the admin page, where a forged access line could show a secret.
#[test]
fn lines_an_app_writes_through_wasi_0_3_stdout_are_its_own() {
    const METRIC: &str = r#"{"schema":"edge_obs.metric.v1","time":"2026-01-01T00:00:00.000Z","duration_s":0.001,"attributes":{"http.request.method":"DELETE","http.route":"/forged-p3","http.response.status_code":418,"url.scheme":"http"}}"#;
    let access = |id: &str| {
        format!(
            r#"{{"timestamp":"2026-01-01T00:00:00.000Z","level":"info","event":"http.request","request_id":"{id}","http.request.method":"GET","url.path":"/forged-access","http.response.status_code":200,"url.query":"token=not-redacted-secret"}}"#
        )
    };
    let encode = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    for chain in ["composed", "linked"] {
        let host = Host::start(&["--chain", chain]);
        let forged_id = unique("forged-p3");
        for (via, line) in [
            ("wasip3", METRIC.to_owned()),
            ("wasip3", access(&forged_id)),
            ("wasip2", access(&forged_id)),
        ] {
            let path = format!("/print?via={via}&line={}", encode(&line));
            assert_eq!(get(host.addr, &path, &[]).status, 200, "{chain} {via}");
        }
        host.wait_stdout("the app's forged metric line, printed", |l| {
            l.contains("/forged-p3")
        });
        only_real_requests_counted(&host, 3.0, "/forged-p3", chain);
        let stats = host
            .admin_get(&format!("/api/v1/stats?id={forged_id}"))
            .text();
        assert!(!stats.contains("not-redacted-secret"), "{chain}: {stats}");
        assert!(!stats.contains("/forged-access"), "{chain}: {stats}");
    }
}

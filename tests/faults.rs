//! Faults, end to end: upstreams that refuse, reset, stall or answer garbage; app components
//! that trap, loop, run out of memory, stream forever or send invalid headers; clients that
//! disconnect or send slowly; overload and shutdown. For each: the answer the client gets, the
//! host keeps serving, and the failure shows in the logs and /metrics.

mod common;

use common::{
    Conn, Host, Received, Response, get, metric_sum, read_lenient, reset, send_lenient,
    start_scripted_origin, write_ok,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn assert_problem(response: &Response, status: u16) {
    assert_eq!(response.status, status);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(response.json()["status"], status);
}

/// Waits until `/readyz` answers `status`.
fn wait_ready_status(host: &Host, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.admin_get("/readyz").status != status {
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn requests_with(metrics: &str, labels: &[(&str, &str)]) -> f64 {
    metric_sum(metrics, "http_server_requests_total", labels)
}

/// An origin for upstream-mode faults: `/ok` answers 200 `fine`; the other paths misbehave.
fn faulty_origin() -> std::net::SocketAddr {
    start_scripted_origin(|request, stream| match request.target.as_str() {
        "/reset-mid-body" => {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&[b'x'; 1000]);
            std::thread::sleep(Duration::from_millis(50));
            reset(stream.try_clone().unwrap());
            false
        }
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            write_ok(stream, "too late")
        }
        "/malformed" => {
            let _ = stream.write_all(b"HTTP/1.1 OK-ish\r\nbroken header line\r\n\r\n");
            false
        }
        "/not-http" => {
            let _ = stream.write_all(b"\x00\x01\x02 hello? \r\n\r\n");
            false
        }
        _ => write_ok(stream, "fine"),
    })
}

fn assert_origin_still_served(host: &Host) {
    let response = get(host.addr, "/ok", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "fine");
}

// ----- upstream ----------------------------------------------------------------------------

#[test]
fn upstream_refusing_connections_gets_502_and_readiness_turns_503() {
    // Listening (so the host starts and is ready) but never accepting; then closed.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = listener.local_addr().unwrap();
    let host = Host::start(&["--upstream", &format!("http://{origin}")]);
    wait_ready_status(&host, 200);
    drop(listener);

    let response = get(host.addr, "/x", &[("x-request-id", "refused-1")]);
    assert_problem(&response, 502);
    assert_eq!(response.request_id(), "refused-1");
    let log = host.log_line("refused-1");
    assert_eq!(log["level"], "error");
    assert_eq!(log["error.type"], "connection_refused");
    assert_eq!(log["http.response.status_code"], 502);
    host.wait_stderr("the upstream failure", |l| {
        l.contains("upstream request failed")
    });

    // The host keeps answering, and tells load balancers it is not ready.
    assert_problem(&get(host.addr, "/y", &[]), 502);
    wait_ready_status(&host, 503);
    assert_eq!(host.admin_get("/livez").status, 200);
    let metrics = host.wait_metrics("both failures", |text| {
        requests_with(text, &[("error_type", "connection_refused")]) == 2.0
    });
    assert_eq!(
        metric_sum(
            &metrics,
            "runtime_host_upstream_errors_total",
            &[("kind", "connection_refused")]
        ),
        2.0
    );
}

#[test]
fn upstream_resetting_mid_body_truncates_the_response() {
    let host = Host::start(&["--upstream", &format!("http://{}", faulty_origin())]);
    let raw = b"GET /reset-mid-body HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-request-id: reset-1\r\n\r\n";
    match send_lenient(host.addr, raw, Duration::from_secs(10)) {
        // The head was sent before the origin failed: the client sees a body cut short of
        // its content-length, which HTTP clients report as an error.
        Received::Truncated { response, body_len } => {
            assert_eq!(response.status, 200);
            assert_eq!(response.request_id(), "reset-1");
            assert_eq!(response.header("content-length").as_deref(), Some("100000"));
            assert!(body_len < 100_000, "{body_len}");
        }
        other => panic!("expected a truncated response, got {other:?}"),
    }
    // Logged and counted as a request (the middleware cannot tell the body failed; see the
    // README's Reliability section).
    let log = host.log_line("reset-1");
    assert_eq!(log["http.response.status_code"], 200);
    host.wait_metrics("the request", |text| requests_with(text, &[]) == 1.0);
    assert_origin_still_served(&host);
}

#[test]
fn upstream_answering_after_the_timeout_gets_504() {
    let host = Host::start(&[
        "--upstream",
        &format!("http://{}", faulty_origin()),
        "--request-timeout",
        "1s",
    ]);
    let response = get(host.addr, "/slow", &[("x-request-id", "slow-1")]);
    // The origin answers after 3 s: a 504 means the deadline fired first.
    assert_problem(&response, 504);
    host.wait_stderr("the timeout", |l| {
        l.contains("request failed in the host") && l.contains("timed out")
    });
    let metrics = host.wait_metrics("the timeout", |text| {
        requests_with(
            text,
            &[
                ("http_response_status_code", "504"),
                ("error_type", "timeout"),
            ],
        ) == 1.0
    });
    assert_eq!(
        metric_sum(&metrics, "runtime_host_request_timeouts_total", &[]),
        1.0
    );
    assert_origin_still_served(&host);
}

#[test]
fn malformed_upstream_response_gets_502() {
    let host = Host::start(&["--upstream", &format!("http://{}", faulty_origin())]);
    for (path, id) in [("/malformed", "bad-1"), ("/not-http", "bad-2")] {
        let response = get(host.addr, path, &[("x-request-id", id)]);
        assert_problem(&response, 502);
        assert_eq!(response.request_id(), id);
        assert_eq!(response.json()["request_id"], id);
        let log = host.log_line(id);
        assert_eq!(log["level"], "error");
        assert_eq!(log["error.type"], "_OTHER");
    }
    let metrics = host.wait_metrics("both failures", |text| {
        requests_with(text, &[("http_response_status_code", "502")]) == 2.0
    });
    assert_eq!(
        metric_sum(
            &metrics,
            "runtime_host_upstream_errors_total",
            &[("kind", "protocol")]
        ),
        2.0
    );
    assert_origin_still_served(&host);
}

// ----- app component -----------------------------------------------------------------------

#[test]
fn app_trap_gets_500_and_is_logged_and_counted() {
    let host = Host::start(&[]);
    let response = get(host.addr, "/trap", &[("x-request-id", "trap-1")]);
    assert_problem(&response, 500);
    // The trap took the whole instance, middleware included: the host answers and logs.
    host.wait_stderr("the trap", |l| l.contains("guest trapped"));
    let metrics = host.wait_metrics("the trap", |text| {
        requests_with(
            text,
            &[
                ("http_response_status_code", "500"),
                ("error_type", "guest_trap"),
            ],
        ) == 1.0
    });
    assert_eq!(
        metric_sum(&metrics, "runtime_host_guest_traps_total", &[]),
        1.0
    );
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
}

#[test]
fn app_looping_forever_gets_504_and_its_instance_is_dropped() {
    let host = Host::start(&["--request-timeout", "1s"]);
    assert_problem(&get(host.addr, "/loop", &[]), 504);
    host.wait_stderr("the timeout", |l| l.contains("request failed in the host"));
    host.wait_stderr("the dropped instance", |l| {
        l.contains("ran past the request timeout")
    });
    host.wait_metrics("the timeout", |text| {
        requests_with(text, &[("error_type", "timeout")]) == 1.0
    });
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
}

#[test]
fn app_exceeding_its_memory_limit_traps_with_500() {
    let host = Host::start(&["--max-memory", "32MiB"]);
    assert_problem(&get(host.addr, "/alloc/64", &[]), 500);
    host.wait_stderr("the memory trap", |l| {
        l.contains("forcing trap when growing memory")
    });
    host.wait_metrics("the trap", |text| {
        metric_sum(text, "runtime_host_guest_traps_total", &[]) == 1.0
    });
    // Within the limit it works, on the same host.
    let response = get(host.addr, "/alloc/8", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["allocated_mb"], 8);
}

#[test]
fn huge_streamed_body_is_delivered_whole_without_host_memory_growth() {
    let host = Host::start(&[]);
    assert_eq!(get(host.addr, "/bytes/1048576", &[]).status, 200);
    let before = host.rss_kib();
    let size: u64 = 64 << 20;
    let raw = format!(
        "GET /bytes/{size} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-request-id: huge-1\r\n\r\n"
    );
    match send_lenient(host.addr, raw.as_bytes(), Duration::from_secs(60)) {
        Received::Complete(response) => {
            assert_eq!(response.status, 200);
            assert_eq!(
                response.header("content-length").as_deref(),
                Some(size.to_string().as_str())
            );
        }
        other => panic!("expected the whole body, got {other:?}"),
    }
    let grown_mib = host.rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 32,
        "RSS grew by {grown_mib} MiB for a 64 MiB body"
    );
    assert_eq!(host.log_line("huge-1")["http.response.body.size"], size);
}

#[test]
fn endless_body_is_cut_after_the_deadline_and_the_host_keeps_serving() {
    let host = Host::start(&["--request-timeout", "1s"]);
    let raw = b"GET /endless HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    // The instance is dropped at twice the request timeout. The body then ends: with wasmtime
    // 48 it ends with a regular final chunk (see the README's Reliability section), so the
    // client cannot tell it was cut; either way it must end.
    let (response, body_len) = match send_lenient(host.addr, raw, Duration::from_secs(30)) {
        Received::Truncated { response, body_len } => (response, body_len),
        Received::Complete(response) => (response, 0),
        Received::Nothing => panic!("no response"),
    };
    assert_eq!(response.status, 200);
    assert!(body_len > 64 * 1024 || response.body.len() > 64 * 1024);
    host.wait_stderr("the dropped instance", |l| {
        l.contains("ran past the request timeout")
    });
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
}

#[test]
fn app_response_with_forbidden_headers_gets_502() {
    let host = Host::start(&[]);
    for (query, id) in [
        ("transfer-encoding=chunked", "hdr-1"),
        ("connection=close&upgrade=h2c", "hdr-2"),
        ("content-length=2&content-length=3", "hdr-3"),
    ] {
        let response = get(
            host.addr,
            &format!("/headers?{query}"),
            &[("x-request-id", id)],
        );
        assert_problem(&response, 502);
        assert_eq!(response.request_id(), id);
        let log = host.log_line(id);
        assert_eq!(log["level"], "error");
        assert_eq!(log["error.type"], "internal_error");
    }
    host.wait_metrics("three failures", |text| {
        requests_with(
            text,
            &[
                ("http_response_status_code", "502"),
                ("error_type", "internal_error"),
            ],
        ) == 3.0
    });
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
}

#[test]
fn app_body_shorter_than_its_content_length_is_cut_and_logged() {
    let host = Host::start(&[]);
    let raw = b"GET /headers?content-length=50 HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-request-id: short-1\r\n\r\n";
    let received = send_lenient(host.addr, raw, Duration::from_secs(10));
    assert!(
        !matches!(received, Received::Complete(_)),
        "the client must not get a complete response: {received:?}"
    );
    let log = host.log_line("short-1");
    assert_eq!(log["level"], "error");
    assert_eq!(log["error.type"], "response_body_error");
    host.wait_metrics("the failure", |text| {
        requests_with(text, &[("error_type", "response_body_error")]) == 1.0
    });
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
}

// ----- clients -----------------------------------------------------------------------------

/// All requests finished: the active-requests gauge is back at zero.
fn wait_no_active_requests(host: &Host) {
    host.wait_metrics("no active requests", |text| {
        metric_sum(text, "http_server_active_requests", &[]) == 0.0
    });
}

/// With `--max-concurrent-requests 2`, both slots are free again: no 503.
fn assert_slots_free(host: &Host) {
    for _ in 0..3 {
        assert_eq!(get(host.addr, "/hello", &[]).status, 200);
    }
}

fn assert_no_overload(metrics: &str) {
    assert_eq!(
        metric_sum(
            metrics,
            "runtime_host_rejected_requests_total",
            &[("reason", "overload")]
        ),
        0.0
    );
}

#[test]
fn client_disconnecting_mid_request_releases_its_slot() {
    let host = Host::start(&["--max-concurrent-requests", "2"]);
    for i in 0..5 {
        let mut stream = TcpStream::connect(host.addr).unwrap();
        let head = format!(
            "POST /echo-body HTTP/1.1\r\nhost: x\r\nx-request-id: gone-{i}\r\ncontent-length: 100000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&[b'a'; 1000]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(stream);
    }
    wait_no_active_requests(&host);
    assert_slots_free(&host);
    assert_no_overload(&host.metrics());
}

#[test]
fn client_disconnecting_mid_response_releases_its_slot() {
    let host = Host::start(&["--max-concurrent-requests", "2"]);
    for path in ["/bytes/50000000", "/endless", "/bytes/50000000", "/endless"] {
        let mut stream = TcpStream::connect(host.addr).unwrap();
        let head = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut read = 0;
        while read < buf.len() {
            read += stream.read(&mut buf[read..]).unwrap();
        }
        drop(stream);
    }
    wait_no_active_requests(&host);
    assert_slots_free(&host);
    let metrics = host.wait_metrics("every request counted", |text| {
        requests_with(text, &[]) == 7.0
    });
    assert_no_overload(&metrics);
}

#[test]
fn slow_clients_sending_headers_are_cut_off_and_others_are_served() {
    let host = Host::start(&[]);
    // Slowloris: many connections that send a header line now and then, never finishing.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(host.addr).unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(10)))
                .unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    let mut closed_at = vec![None; slow.len()];
    let mut tick = 0;
    while closed_at.iter().any(Option::is_none) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "slow connections still open after 20 s"
        );
        for (i, stream) in slow.iter_mut().enumerate() {
            if closed_at[i].is_some() {
                continue;
            }
            let mut byte = [0u8; 1];
            let closed = match stream.read(&mut byte) {
                Ok(0) => true,
                // Closed without an answer: hyper sends nothing on a header timeout.
                Ok(_) => panic!("a slow client got a response"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => false,
                Err(_) => true,
            };
            if closed {
                closed_at[i] = Some(started.elapsed());
            } else {
                let _ = stream.write_all(format!("x-slow-{tick}: 1\r\n").as_bytes());
            }
        }
        // Meanwhile everybody else is served at once.
        assert_eq!(get(host.addr, "/hello", &[]).status, 200);
        tick += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    for at in closed_at.into_iter().flatten() {
        assert!(
            at >= Duration::from_secs(9),
            "cut off after {at:?} (header read timeout: 10 s)"
        );
    }
    // Only the normal requests were logged.
    let lines = host.wait_log_lines(|lines| lines.len() >= tick);
    assert_eq!(lines.len(), tick);
}

#[test]
fn overload_is_rejected_at_once_with_retry_after_and_bounded_memory() {
    let host = Host::start(&["--max-concurrent-requests", "4"]);
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
    let addr = host.addr;
    let busy: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(addr, "/delay/3000", &[])))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_sum(&host.metrics(), "http_server_active_requests", &[]) < 4.0 {
        assert!(Instant::now() < deadline, "the slow requests never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = host.rss_kib();
    let rejected: Vec<Response> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(move || {
                    let mut conn = Conn::open(addr);
                    (0..25).map(|_| conn.get("/hello", &[])).collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    assert!(
        busy.iter().all(|slow| !slow.is_finished()),
        "the rejections waited for the slow requests"
    );
    for response in &rejected {
        assert_problem(response, 503);
        assert_eq!(response.header("retry-after").as_deref(), Some("1"));
    }
    let grown_mib = host.rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "RSS grew by {grown_mib} MiB while rejecting"
    );
    for slow in busy {
        assert_eq!(slow.join().unwrap().status, 200);
    }
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
    let metrics = host.metrics();
    assert_eq!(
        metric_sum(
            &metrics,
            "runtime_host_rejected_requests_total",
            &[("reason", "overload")]
        ),
        200.0
    );
}

#[test]
fn sigterm_completes_every_request_in_flight_after_readiness_turns_503() {
    let mut host = Host::start(&["--shutdown-grace", "10s"]);
    let addr = host.addr;
    let in_flight: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let id = format!("drain-{i}");
                get(addr, "/delay/1500", &[("x-request-id", &id)])
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_sum(&host.metrics(), "http_server_active_requests", &[]) < 4.0 {
        assert!(Instant::now() < deadline, "the requests never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    host.terminate();
    wait_ready_status(&host, 503);
    assert_eq!(host.admin_get("/livez").status, 200);
    // No new connections once draining.
    let refused = TcpStream::connect(host.addr)
        .map(|stream| read_lenient(stream, Duration::from_secs(5)))
        .map(|r| matches!(r, Received::Nothing))
        .unwrap_or(true);
    assert!(refused, "a new connection was served while draining");
    for (i, request) in in_flight.into_iter().enumerate() {
        let response = request.join().unwrap();
        assert_eq!(response.status, 200, "in-flight request {i}");
        assert_eq!(response.request_id(), format!("drain-{i}"));
    }
    assert!(host.wait_exit(Duration::from_secs(15)).success());
    for i in 0..4 {
        host.log_line(&format!("drain-{i}"));
    }
    host.wait_stderr("the drain", |l| l.contains("draining"));
    host.wait_stderr("the stop", |l| l.contains("stopped"));
}

/// More connections than the process may open files for, all idle: the main port stops
/// accepting at its cap (here lowered from `--max-connections` to fit the open files limit),
/// so the admin probes keep their file descriptors and answer; the connections beyond the cap
/// wait in the backlog, and once the idle ones go a new request is served. Without the cap
/// the host accepted until `accept` failed with EMFILE, on the admin port too.
#[test]
fn connections_beyond_the_cap_wait_while_the_probes_answer() {
    // 1,100 open files: 1,024 kept back, so at most 76 connections on the main port; the
    // kernel's backlog (1,024) holds the rest, so no connect below has to wait.
    let host = Host::start_with_open_files_limit(&[], 1100);
    host.wait_stderr("the cap lowered", |l| {
        l.contains("--max-connections lowered")
    });
    let idle: Vec<std::net::TcpStream> = (0..1090)
        .filter_map(|_| std::net::TcpStream::connect(host.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for probe in ["/livez", "/readyz", "/metrics"] {
        assert_eq!(
            host.admin_get(probe).status,
            200,
            "{probe} with {} connections",
            idle.len()
        );
    }
    host.wait_stderr("the cap said", |l| l.contains("connection cap reached"));
    // No file descriptor ran out: neither listener failed to accept.
    let failed: Vec<String> = host
        .stderr()
        .into_iter()
        .filter(|l| l.contains("accept failed"))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::panic::catch_unwind(|| common::get(host.addr, "/hello", &[]).status == 200)
            .unwrap_or(false)
        {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An app whose body fails after its first chunk: the client's transfer is cut, and the
/// access line and the metrics say so (`error.type` `response_body_error`, level
/// error), as OpenTelemetry's HTTP conventions want whatever the status. It used to be logged
/// and counted as a clean 200.
#[test]
fn a_body_that_fails_mid_stream_is_logged_as_an_error() {
    let host = Host::start(&[]);
    let id = common::unique("fail-body");
    let raw = format!("GET /fail-body HTTP/1.1\r\nhost: localhost\r\nx-request-id: {id}\r\n\r\n");
    // The client gets what it gets without the middleware: here hyper had not flushed the
    // head when the body failed, so nothing at all; with a body already flowing, a cut one.
    let cut = |r: Received| !matches!(r, Received::Complete(_));
    assert!(cut(send_lenient(
        host.addr,
        raw.as_bytes(),
        Duration::from_secs(30)
    )));
    let bare = Host::start(&["--no-middleware"]);
    assert!(cut(send_lenient(
        bare.addr,
        raw.as_bytes(),
        Duration::from_secs(30)
    )));
    let line = host.log_line(&id);
    assert_eq!(line["error.type"], "response_body_error", "{line}");
    assert_eq!(line["level"], "error", "{line}");
    assert_eq!(line["http.response.status_code"], 200, "{line}");
    let metrics = host.wait_metrics("the failed request", |t| {
        metric_sum(t, "http_server_requests_total", &[]) == 1.0
    });
    assert_eq!(
        metric_sum(
            &metrics,
            "http_server_requests_total",
            &[("error_type", "response_body_error")]
        ),
        1.0,
        "{metrics}"
    );
    // The next request is served normally.
    assert_eq!(common::get(host.addr, "/hello", &[]).status, 200);
}

/// The same for a body of known size (not piped through the middleware): the host's delivery
/// result reports the failure, and the line says so. The size logged is the declared one.
#[test]
fn a_body_of_known_size_that_fails_is_logged_as_an_error() {
    let host = Host::start(&[]);
    common::assert_failing_body_is_logged_as_an_error(&host, "/fail-body-sized");
}

#[test]
fn a_stalled_stdout_reader_costs_log_lines_not_requests_or_probes() {
    // The tap never returns, so after the first line nobody reads the host's stdout: the
    // pipe fills after a few dozen requests, as with a stalled log shipper.
    let host = Host::start_tapped(&[], |_| {
        loop {
            std::thread::park();
        }
    });
    let mut conn = Conn::open(host.addr);
    // Enough lines to fill the pipe and then the host's bounded buffer
    // (`stdio::MAX_PENDING_BYTES`, 4 MiB) behind it: the query (logged up to 1024
    // characters) makes each request's lines over 2 KB.
    let path = format!("/hello?q={}", "p".repeat(1000));
    for i in 0..3000 {
        let response = conn.get(&path, &[]);
        assert_eq!(response.status, 200, "request {i}");
        if i % 500 == 0 {
            assert_eq!(host.admin_get("/livez").status, 200, "after request {i}");
        }
    }
    assert_eq!(host.admin_get("/readyz").status, 200);
    host.wait_stderr("the warning about dropped lines", |line| {
        line.contains("dropping guest lines") && line.contains("stdout")
    });
}

//! OTLP export end to end: the real host, the real middleware and demo app, and a real
//! OTLP/HTTP receiver decoding with the official protobuf definitions.

mod common;

use std::time::Duration;

use common::otlp_receiver::{
    Behaviour, Receiver, attr_int, attr_str, body_str, hex, hex_bytes, histogram_points,
};
use common::{Host, get, metric_sum};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// The trace id of the span line the demo app forges on `/forge-metric`
/// (`hello_app::FORGED_TRACE_ID`).
const FORGED_TRACE: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

/// Short delays so the test does not wait for the defaults (5 s, 1 s, 60 s).
fn quick_env(receiver: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "50".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
        ("OTEL_SERVICE_NAME", "edge-test".into()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test,team=edge".into(),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20s3cr3t-token".into(),
        ),
    ]
}

fn start(args: &[&str], env: &[(&'static str, String)]) -> Host {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Host::start_with_env(args, &env)
}

/// The traceparent the app received, from the demo app's echo.
fn app_traceparent(host: &Host, traceparent: Option<&str>) -> String {
    let headers: Vec<(&str, &str)> = traceparent
        .map(|t| ("traceparent", t))
        .into_iter()
        .collect();
    let r = get(host.addr, "/echo", &headers);
    assert_eq!(r.status, 200);
    r.json()["headers"]["traceparent"]
        .as_str()
        .expect("the app received a traceparent")
        .to_owned()
}

#[test]
fn a_continued_trace_yields_exactly_one_server_span_that_is_the_apps_parent() {
    let receiver = Receiver::start(Behaviour::Accept);
    let host = start(&[], &quick_env(&receiver));
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let received = app_traceparent(&host, Some(&caller));
    assert_eq!(&received[3..35], CALLER_TRACE);
    let app_parent = &received[36..52];
    assert_ne!(app_parent, CALLER_SPAN);

    // An unsampled caller next, then a sampled marker: spans are exported in order, so once
    // the marker's span is in, the unsampled request's span would be too.
    let unsampled_trace = "11111111111111111111111111111111";
    let forwarded = app_traceparent(
        &host,
        Some(&format!("00-{unsampled_trace}-{CALLER_SPAN}-00")),
    );
    assert!(forwarded.ends_with("-00"), "{forwarded}");
    let marker_trace = "22222222222222222222222222222222";
    app_traceparent(&host, Some(&format!("00-{marker_trace}-{CALLER_SPAN}-01")));
    receiver.wait_span(marker_trace);

    let spans = receiver.spans();
    let ours: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == hex_bytes(CALLER_TRACE))
        .collect();
    assert_eq!(ours.len(), 1, "exactly one span for the caller's trace");
    let span = ours[0];
    assert_eq!(
        hex(&span.span_id),
        app_parent,
        "span id = the app's parent id"
    );
    assert_eq!(hex(&span.parent_span_id), CALLER_SPAN);
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.name, "GET");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    assert_eq!(attr_str(&span.attributes, "url.path"), Some("/echo"));
    assert_eq!(
        attr_int(&span.attributes, "http.response.status_code"),
        Some(200)
    );
    assert!(attr_str(&span.attributes, "request_id").is_some());
    assert!(
        !spans
            .iter()
            .any(|s| s.trace_id == hex_bytes(unsampled_trace)),
        "an unsampled trace must yield no span"
    );
    // Resource: service.name and OTEL_RESOURCE_ATTRIBUTES.
    receiver.with(|r| {
        let resource = r.traces[0].resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(
            attr_str(&resource.attributes, "service.name"),
            Some("edge-test")
        );
        assert_eq!(attr_str(&resource.attributes, "team"), Some("edge"));
        // OTEL_EXPORTER_OTLP_HEADERS reach the receiver.
        assert!(
            r.last_headers
                .iter()
                .any(|(n, v)| n == "authorization" && v == "Bearer s3cr3t-token")
        );
    });

    // Log records: the access lines, with the trace and span ids and severity.
    receiver.wait("a log record of the caller's trace", |r| {
        r.logs
            .iter()
            .flat_map(|l| &l.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
            .any(|l| l.trace_id == hex_bytes(CALLER_TRACE))
    });
    let log = receiver
        .log_records()
        .into_iter()
        .find(|l| l.trace_id == hex_bytes(CALLER_TRACE))
        .unwrap();
    assert_eq!(hex(&log.span_id), app_parent);
    assert_eq!(log.severity_text, "INFO");
    assert_eq!(log.severity_number, 9);
    assert_eq!(body_str(&log.body), Some("GET /echo 200"));
    assert!(attr_str(&log.attributes, "request_id").is_some());
    receiver.with(|r| {
        let resource = r.logs[0].resource_logs[0].resource.as_ref().unwrap();
        assert_eq!(
            attr_str(&resource.attributes, "service.name"),
            Some("edge-test")
        );
        assert_eq!(
            attr_str(&resource.attributes, "deployment.environment.name"),
            Some("test")
        );
    });

    // Metrics: the OTel instrument names, with the resource.
    receiver.wait("http.server.request.duration", |r| {
        r.metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .any(|m| m.name == "http.server.request.duration")
    });
    receiver.with(|r| {
        let rm = r
            .metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .find(|rm| {
                rm.scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .any(|m| m.name == "http.server.request.duration")
            })
            .unwrap();
        let resource = rm.resource.as_ref().unwrap();
        assert_eq!(
            attr_str(&resource.attributes, "service.name"),
            Some("edge-test")
        );
        assert_eq!(attr_str(&resource.attributes, "team"), Some("edge"));
        let duration = rm
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == "http.server.request.duration")
            .unwrap();
        assert_eq!(duration.unit, "s");
    });
    // The token is never printed by the host.
    assert!(!host.stderr().iter().any(|l| l.contains("s3cr3t")));
    assert!(
        !host.stdout().iter().any(|l| l.contains("edge_obs.span.v1")),
        "span lines are not printed by default"
    );
}

#[test]
fn ratio_zero_samples_no_new_trace_and_forwards_00() {
    let receiver = Receiver::start(Behaviour::Accept);
    let host = start(
        &["--env", "EDGE_OBS_TRACE_SAMPLE_RATIO=0"],
        &quick_env(&receiver),
    );
    let mut new_traces = Vec::new();
    for _ in 0..5 {
        let tp = app_traceparent(&host, None);
        assert!(tp.ends_with("-00"), "{tp}");
        new_traces.push(hex_bytes(&tp[3..35]));
    }
    // A caller's sampled trace is still reported; it marks that earlier spans would be in.
    let marker = "33333333333333333333333333333333";
    app_traceparent(&host, Some(&format!("00-{marker}-{CALLER_SPAN}-01")));
    receiver.wait_span(marker);
    let spans = receiver.spans();
    assert_eq!(spans.len(), 1, "only the marker's span");
    assert!(!spans.iter().any(|s| new_traces.contains(&s.trace_id)));
}

/// Runs `n` requests; all must be answered normally.
fn serve_requests(host: &Host, n: usize) {
    for i in 0..n {
        let r = get(host.addr, "/hello", &[]);
        assert_eq!(r.status, 200, "request {i}");
    }
}

fn dropped(host: &Host, signal: &str) -> f64 {
    metric_sum(
        &host.metrics(),
        "runtime_host_otlp_dropped_total",
        &[("signal", signal)],
    )
}

#[test]
fn a_receiver_that_is_down_costs_nothing_but_counted_drops() {
    let port = common::closed_port();
    let receiver_url = format!("http://{port}");
    let host = start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver_url),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200".into()),
        ],
    );
    serve_requests(&host, 50);
    host.wait_metrics("dropped spans", |t| {
        metric_sum(
            t,
            "runtime_host_otlp_dropped_total",
            &[("signal", "traces")],
        ) > 0.0
    });
    host.wait_metrics("dropped log records", |t| {
        metric_sum(t, "runtime_host_otlp_dropped_total", &[("signal", "logs")]) > 0.0
    });
    host.wait_metrics("metric export errors", |t| {
        metric_sum(
            t,
            "runtime_host_otlp_export_errors_total",
            &[("signal", "metrics")],
        ) > 0.0
    });
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
    // The admin page's data shows the same counters.
    let stats = host.admin_get("/api/v1/stats");
    assert_eq!(stats.status, 200);
    let counters = &stats.json()["host_counters"];
    assert!(
        counters["otlp_dropped"]["traces"].as_u64().unwrap() > 0,
        "{counters}"
    );
    assert!(
        counters["otlp_export_errors"]["metrics"].as_u64().unwrap() > 0,
        "{counters}"
    );
}

#[test]
fn host_answers_preflights_and_log_context_get_spans_and_apps_cannot_forge_them() {
    let receiver = Receiver::start(Behaviour::Accept);
    // 3 per hour: the fourth request is the host's 429, however slow the machine.
    let host = start(
        &[
            "--rate-limit",
            "3/h",
            "--env",
            "EDGE_OBS_CORS_ALLOW_ORIGINS=https://app.example.com",
            "--env",
            "EDGE_OBS_LOG=off",
        ],
        &quick_env(&receiver),
    );
    let caller = |trace: &str| format!("00-{trace}-{CALLER_SPAN}-01");

    // The app's log context: a span attribute, also with the access log off.
    let context_trace = "55555555555555555555555555555555";
    let r = get(
        host.addr,
        "/headers?obs-context-user-id=42",
        &[("traceparent", &caller(context_trace))],
    );
    assert_eq!(r.status, 200);
    assert!(r.header("obs-context-user-id").is_none());

    // A CORS preflight the middleware answers itself.
    let preflight_trace = "66666666666666666666666666666666";
    let r = common::request(
        host.addr,
        "OPTIONS",
        "/hello",
        &[
            ("traceparent", &caller(preflight_trace)),
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "GET"),
        ],
        b"",
    );
    assert_eq!(r.status, 204, "{r:?}");

    // The app prints a forged span line (and metric line) as the middleware would.
    let r = get(host.addr, "/forge-metric", &[]);
    assert_eq!(r.status, 200);

    // The host's own 429, last: spans are exported in order, so once its span is in, the
    // others (and a forged one, were it taken) are too.
    let limited_trace = "77777777777777777777777777777777";
    let r = get(
        host.addr,
        "/hello",
        &[("traceparent", &caller(limited_trace))],
    );
    assert_eq!(r.status, 429, "{r:?}");
    let limited = receiver.wait_span(limited_trace);
    assert_eq!(hex(&limited.parent_span_id), CALLER_SPAN);
    assert_eq!(
        attr_int(&limited.attributes, "http.response.status_code"),
        Some(429)
    );
    assert_eq!(
        attr_str(&limited.attributes, "error.type"),
        Some("rate_limited")
    );
    // A client error is not an error of a server span.
    assert_eq!(limited.status.as_ref().map_or(0, |s| s.code), 0);

    let spans = receiver.spans();
    let of = |trace: &str| {
        let id = hex_bytes(trace);
        spans
            .iter()
            .filter(|s| s.trace_id == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    let context = of(context_trace);
    assert_eq!(context.len(), 1);
    assert_eq!(
        attr_str(&context[0].attributes, "context.user-id"),
        Some("42")
    );
    let preflight = of(preflight_trace);
    assert_eq!(preflight.len(), 1);
    assert_eq!(preflight[0].name, "OPTIONS");
    assert_eq!(
        attr_int(&preflight[0].attributes, "http.response.status_code"),
        Some(204)
    );
    assert!(
        of(FORGED_TRACE).is_empty(),
        "an app's span line must not become a span"
    );
    // The forged line is printed as the app wrote it, not swallowed.
    host.wait_stdout("the app's forged span line", |l| l.contains(FORGED_TRACE));
}

#[test]
fn a_receiver_that_never_answers_keeps_memory_bounded() {
    let receiver = Receiver::start(Behaviour::Hang);
    let host = start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()),
            ("OTEL_BSP_SCHEDULE_DELAY", "20".into()),
            ("OTEL_BSP_EXPORT_TIMEOUT", "300".into()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64".into()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16".into()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "20".into()),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "300".into()),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "64".into()),
        ],
    );
    serve_requests(&host, 300);
    let warm = host.rss_kib();
    serve_requests(&host, 1500);
    let after = host.rss_kib();
    // 1500 spans and log records of about 1 KB each would be well over 3 MB if kept.
    assert!(
        after < warm + 24 * 1024,
        "RSS grew from {warm} KiB to {after} KiB"
    );
    host.wait_metrics("dropped spans", |t| {
        metric_sum(
            t,
            "runtime_host_otlp_dropped_total",
            &[("signal", "traces")],
        ) >= 1000.0
    });
    assert!(dropped(&host, "logs") > 0.0);
    // The drops are said in the host's log too, not only counted.
    host.wait_stderr("the queue-full warning", |l| {
        l.contains("OTLP queue full") && l.contains("traces")
    });
    assert!(
        receiver.with(|r| !r.requests.is_empty()),
        "exports were attempted"
    );
}

#[test]
fn a_receiver_answering_503_is_retried_then_drops_are_counted() {
    let receiver = Receiver::start(Behaviour::Unavailable);
    let host = start(
        &[],
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", receiver.url()),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "20".into()),
            ("OTEL_BSP_EXPORT_TIMEOUT", "10000".into()),
        ],
    );
    serve_requests(&host, 20);
    host.wait_metrics("span export errors", |t| {
        metric_sum(
            t,
            "runtime_host_otlp_export_errors_total",
            &[("signal", "traces")],
        ) > 0.0
    });
    // The exporter retried (honouring Retry-After) before giving up a batch.
    let attempts = receiver.with(|r| r.requests.len());
    let errors = metric_sum(
        &host.metrics(),
        "runtime_host_otlp_export_errors_total",
        &[("signal", "traces")],
    );
    assert!(
        attempts as f64 > errors,
        "{attempts} attempts for {errors} failed exports"
    );
    assert!(dropped(&host, "traces") > 0.0);
    // Only traces were configured.
    assert!(receiver.with(|r| r.requests.iter().all(|p| p == "/v1/traces")));
    serve_requests(&host, 5);
}

#[test]
fn queued_spans_are_flushed_on_sigterm() {
    let receiver = Receiver::start(Behaviour::Accept);
    let mut host = start(
        &["--shutdown-grace", "10s"],
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", receiver.url()),
            ),
            // Far longer than the test: only the shutdown flush can send the span.
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000".into()),
        ],
    );
    let trace = "44444444444444444444444444444444";
    app_traceparent(&host, Some(&format!("00-{trace}-{CALLER_SPAN}-01")));
    assert!(receiver.spans().is_empty());
    host.terminate();
    assert!(host.wait_exit(Duration::from_secs(30)).success());
    assert_eq!(receiver.spans().len(), 1);
    assert_eq!(hex(&receiver.spans()[0].trace_id), trace);
}

#[test]
fn collect_mode_follows_spin_log_files_into_metrics_and_spans() {
    // Real middleware lines: a serving host prints its access, span and metric lines.
    let source = Host::start(&["--print-metric-events", "--print-span-events"]);
    let traces: Vec<String> = (0..3)
        .map(|i| format!("5555555555555555555555555555555{i}"))
        .collect();
    for t in &traces {
        app_traceparent(&source, Some(&format!("00-{t}-{CALLER_SPAN}-01")));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while source
        .stdout()
        .iter()
        .filter(|l| l.contains("edge_obs.metric.v1"))
        .count()
        < 3
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no metric lines: {:?}",
            source.stdout()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = source.stdout();
    assert!(lines.iter().any(|l| l.contains("edge_obs.span.v1")));

    // A file the way Spin writes it: created at start, appended to as requests are served.
    let dir = std::env::temp_dir().join(common::unique("spin-logs"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hello-app_stdout.txt");
    std::fs::write(&file, "a line from an earlier run\n").unwrap();
    let receiver = Receiver::start(Behaviour::Accept);
    let file_arg = file.to_str().unwrap().to_owned();
    let collector = start(
        &["collect", &file_arg, "--poll-interval", "50ms"],
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", receiver.url()),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
        ],
    );
    let append = |path: &std::path::Path, lines: &[String]| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for l in lines {
            f.write_all(format!("{l}\n").as_bytes()).unwrap();
        }
    };
    append(&file, &lines);
    collector.wait_metrics("3 requests", |t| {
        metric_sum(t, "http_server_requests_total", &[]) == 3.0
    });
    for t in &traces {
        receiver.wait_span(t);
    }
    assert_eq!(receiver.spans().len(), 3);

    // Rotation: the file is renamed away and a new one started; both are read.
    std::fs::rename(&file, dir.join("hello-app_stdout.txt.1")).unwrap();
    append(&file, &lines);
    collector.wait_metrics("6 requests", |t| {
        metric_sum(t, "http_server_requests_total", &[]) == 6.0
    });
    // Truncation: the file is emptied and gets one (shorter) line.
    let one: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("edge_obs.metric.v1"))
        .take(1)
        .cloned()
        .collect();
    std::fs::write(&file, "").unwrap();
    append(&file, &one);
    collector.wait_metrics("7 requests after truncation", |t| {
        metric_sum(t, "http_server_requests_total", &[]) == 7.0
    });
    assert_eq!(collector.admin_get("/readyz").status, 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A route template as long as the middleware accepts (here 200 bytes) is one contract: the
/// access line, `/metrics` and the OTLP metrics carry the same `http.route`.
#[test]
fn a_long_route_template_keeps_its_label_in_every_output() {
    let template = format!("/{}/{{id}}", "a".repeat(194));
    assert_eq!(template.len(), 200);
    let receiver = Receiver::start(Behaviour::Accept);
    let routes = format!("EDGE_OBS_ROUTES={template}");
    let host = start(&["--env", &routes], &quick_env(&receiver));
    let path = format!("/{}/42", "a".repeat(194));
    let r = get(host.addr, &path, &[]);
    let id = r.request_id();

    let line = host.log_line(&id);
    assert_eq!(line["http.route"].as_str(), Some(template.as_str()));
    let metrics = host.wait_metrics("the request counted", |m| {
        metric_sum(m, "http_server_requests_total", &[]) >= 1.0
    });
    assert_eq!(
        metric_sum(
            &metrics,
            "http_server_requests_total",
            &[("http_route", template.as_str())]
        ),
        1.0,
        "{metrics}"
    );
    receiver.wait("the route on http.server.request.duration", |r| {
        histogram_points(r, "http.server.request.duration")
            .iter()
            .any(|p| attr_str(&p.attributes, "http.route") == Some(template.as_str()))
    });
}

#[test]
fn a_hung_trace_collector_leaves_the_logs_their_shutdown_flush() {
    let hung = Receiver::start(Behaviour::Hang);
    let logs = Receiver::start(Behaviour::Accept);
    let mut host = start(
        &["--shutdown-grace", "3s"],
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", hung.url()),
            ),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                format!("{}/v1/logs", logs.url()),
            ),
            ("OTEL_METRICS_EXPORTER", "none".into()),
            // Far longer than the test: only the shutdown flush sends anything.
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000".into()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "3600000".into()),
        ],
    );
    let trace = "55555555555555555555555555555555";
    app_traceparent(&host, Some(&format!("00-{trace}-{CALLER_SPAN}-01")));
    assert!(logs.log_records().is_empty());
    host.terminate();
    assert!(host.wait_exit(Duration::from_secs(30)).success());
    // The span export hangs for the whole grace period; the logs flushed beside it.
    assert!(
        !logs.log_records().is_empty(),
        "no log record arrived while the trace collector hung"
    );
    host.wait_stderr("the flush warning for spans", |line| {
        line.contains("OTLP flush did not finish") && line.contains("traces")
    });
}

#[test]
fn an_upstream_timeout_answered_by_the_host_carries_the_span_and_id_the_origin_saw() {
    // The origin notes what it was sent, then never answers.
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<Vec<(String, String)>>();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let origin = common::start_scripted_origin(move |request, _| {
        let _ = seen_tx.lock().unwrap().send(request.headers.clone());
        std::thread::sleep(Duration::from_secs(30));
        false
    });
    let receiver = Receiver::start(Behaviour::Accept);
    let url = format!("http://{origin}");
    let host = start(
        &["--upstream", &url, "--request-timeout", "1s"],
        &quick_env(&receiver),
    );
    let trace = "66666666666666666666666666666666";
    // No request id from the client: the middleware makes one, and the host's answer must
    // carry that one, not one of its own.
    let response = common::get(
        host.addr,
        "/slow",
        &[("traceparent", &format!("00-{trace}-{CALLER_SPAN}-01"))],
    );
    assert_eq!(response.status, 504, "{response:?}");
    let seen = seen_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the origin got the request");
    let header = |name: &str| {
        seen.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("the origin got no {name}: {seen:?}"))
    };
    assert!(
        seen.iter().all(|(n, _)| n != "runtime-host-exchange"),
        "the host's own header reached the origin: {seen:?}"
    );
    let origin_parent = header("traceparent")[36..52].to_owned();
    assert_eq!(response.request_id(), header("x-request-id"));

    // The host's span stands in for the middleware's: the origin's parent is exported.
    let span = receiver.wait_span(trace);
    assert_eq!(hex(&span.span_id), origin_parent);
    assert_eq!(hex(&span.parent_span_id), CALLER_SPAN);
    let log = host.log_line(&response.request_id());
    assert_eq!(log["error.type"], "timeout");
    assert_eq!(log["span_id"], origin_parent.as_str());
}

//! Export from the edge: the component sends its own OTLP over `wasi:http/client`, with the
//! host's own export off, as it does where no runtime-host reads its lines. A real OTLP/HTTP
//! receiver decodes what arrives with the official protobuf definitions; faults of the
//! collector must change nothing the client sees, and drops are said on stderr.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::otlp_receiver::{Behaviour, Received, Receiver, attr_str, hex, histogram_points};
use common::{Host, closed_port, get, metric_sum};

/// The component's export settings (in its environment, as Spin's `inherit_configuration`
/// or `wasmtime serve --env` would give them), with a short batch age so tests do not wait.
fn export_env(endpoint: &str, extra: &[&str]) -> Vec<String> {
    let mut env = vec![
        format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}"),
        "OTEL_SERVICE_NAME=edge-export-test".to_owned(),
        "EDGE_OBS_OTLP_BATCH_AGE_MS=50".to_owned(),
    ];
    env.extend(extra.iter().map(|s| (*s).to_owned()));
    env
}

/// The receivers (and the closed ports of the fault tests) are all on loopback.
const ALLOW_LOOPBACK: [&str; 2] = ["--allowed-outbound-hosts", "*://127.0.0.1:*"];

fn start(env: &[String], host_args: &[&str]) -> Host {
    let mut args: Vec<&str> = ALLOW_LOOPBACK.to_vec();
    for e in env {
        args.push("--env");
        args.push(e);
    }
    args.extend_from_slice(host_args);
    // No OTEL_* in the host's own environment: host-side export is off.
    Host::start_with_env(&args, &[])
}

/// The traceparent the app received, from the demo app's echo.
fn echo(host: &Host, traceparent: &str) -> String {
    let r = get(host.addr, "/echo", &[("traceparent", traceparent)]);
    assert_eq!(r.status, 200);
    r.json()["headers"]["traceparent"]
        .as_str()
        .expect("the app received a traceparent")
        .to_owned()
}

/// The counts of every `http.server.request.duration` data point received.
fn duration_count(r: &Received) -> u64 {
    histogram_points(r, "http.server.request.duration")
        .iter()
        .map(|p| p.count)
        .sum()
}

#[test]
fn the_component_exports_a_span_per_sampled_request_a_record_per_line_and_metrics() {
    let receiver = Receiver::start(Behaviour::Accept);
    let host = start(&export_env(&receiver.url(), &[]), &[]);
    const SAMPLED: usize = 12;
    const UNSAMPLED: usize = 4;
    let mut parents = BTreeSet::new();
    for i in 0..SAMPLED {
        let trace = format!("{:032x}", 0xa000 + i);
        let seen = echo(&host, &format!("00-{trace}-00f067aa0ba902b7-01"));
        assert_eq!(&seen[3..35], trace);
        parents.insert((trace, seen[36..52].to_owned()));
    }
    let unsampled: Vec<String> = (0..UNSAMPLED)
        .map(|i| format!("{:032x}", 0xb000 + i))
        .collect();
    for trace in &unsampled {
        let seen = echo(&host, &format!("00-{trace}-00f067aa0ba902b7-00"));
        assert!(seen.ends_with("-00"), "{seen}");
    }
    let total = (SAMPLED + UNSAMPLED) as u64;

    receiver.wait("every span, record and metric", |r| {
        let spans: usize = r
            .traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        let records: usize = r
            .logs
            .iter()
            .flat_map(|l| &l.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .map(|sl| sl.log_records.len())
            .sum();
        spans >= SAMPLED && records >= SAMPLED + UNSAMPLED
    });
    receiver.wait("the duration histogram's counts", |r| {
        duration_count(r) >= total
    });

    // One server span per sampled request, whose id is the parent the app saw.
    let spans: BTreeSet<(String, String)> = receiver
        .spans()
        .iter()
        .map(|s| (hex(&s.trace_id), hex(&s.span_id)))
        .collect();
    assert_eq!(
        spans, parents,
        "spans = the sampled requests, ids as the app saw them"
    );
    assert_eq!(receiver.spans().len(), SAMPLED, "no span twice");
    // A record per access line, with its trace id and severity.
    let records = receiver.log_records();
    assert_eq!(records.len(), SAMPLED + UNSAMPLED);
    for record in &records {
        assert_eq!(record.trace_id.len(), 16, "{record:?}");
        assert_eq!(record.severity_number, 9);
        assert_eq!(record.severity_text, "INFO");
    }
    for trace in &unsampled {
        assert!(records.iter().any(|r| hex(&r.trace_id) == *trace));
    }
    // Delta histograms: the counts of every export add up to the requests.
    assert_eq!(receiver.with(duration_count), total);
    receiver.with(|r| {
        let resource = r.traces[0].resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(
            attr_str(&resource.attributes, "service.name"),
            Some("edge-export-test")
        );
        assert!(attr_str(&resource.attributes, "service.instance.id").is_some());
    });
    // runtime-host keeps /metrics, made from the metric lines it keeps on.
    let metrics = host.wait_metrics("every request counted", |m| {
        metric_sum(m, "http_server_requests_total", &[]) >= total as f64
    });
    assert_eq!(
        metric_sum(&metrics, "http_server_requests_total", &[]),
        total as f64
    );
    // The span event lines are not printed when the component exports spans itself.
    assert!(!host.stdout().iter().any(|l| l.contains("edge_obs.span.v1")));
}

#[test]
fn when_the_component_and_the_host_both_export_nothing_is_sent_twice() {
    let component = Receiver::start(Behaviour::Accept);
    let host_side = Receiver::start(Behaviour::Accept);
    let host_url = host_side.url();
    let host = start(
        &export_env(&component.url(), &[]),
        &["--otlp-endpoint", &host_url],
    );
    for i in 0..5 {
        echo(
            &host,
            &format!("00-{:032x}-00f067aa0ba902b7-01", 0xc000 + i),
        );
    }
    component.wait("the component's spans", |r| !r.traces.is_empty());
    component.wait("the component's metrics", |r| duration_count(r) >= 5);
    host.wait_stderr("the host's word that the middleware exports", |l| {
        l.contains("the middleware exports this signal itself")
    });
    // Give the host's exporters time they would need (their delays are shorter than this).
    std::thread::sleep(Duration::from_millis(1500));
    host_side.with(|r| {
        assert!(r.traces.is_empty(), "spans went to both");
        assert!(r.logs.is_empty(), "log records went to both");
        assert!(r.metrics.is_empty(), "metrics went to both");
    });
}

/// What a client sees while the collector misbehaves: the demo app's answers, unchanged.
fn serve_normally(host: &Host, n: usize) {
    for i in 0..n {
        let r = get(host.addr, &format!("/echo?i={i}"), &[]);
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.json()["path"], "/echo", "request {i}");
        assert!(r.header("x-request-id").is_some());
    }
}

/// A collector that fails in `behaviour` (or none at `url`): requests are served, and the
/// component says what failed, and what it dropped, on stderr.
fn faulty_collector(url: &str, reason: &str) {
    let env = export_env(
        url,
        &[
            "OTEL_EXPORTER_OTLP_TIMEOUT=300",
            // Small bounds, so the test sees drops rather than a long queue.
            "EDGE_OBS_OTLP_MAX_QUEUE=16",
            "EDGE_OBS_OTLP_BATCH_SIZE=4",
        ],
    );
    let host = start(&env, &[]);
    serve_normally(&host, 40);
    let line = host.wait_stderr(&format!("an export problem ({reason})"), |l| {
        l.contains("\"event\":\"otlp.export_problem\"") && l.contains(reason)
    });
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["level"], "warn");
    assert!(v["failed_exports"].as_u64().unwrap() >= 1, "{line}");
    // Still serving, and more requests than the queue holds are not kept.
    serve_normally(&host, 40);
    let drops = host.wait_stderr("dropped items said", |l| {
        l.contains("\"event\":\"otlp.export_problem\"")
            && serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["dropped_items"].as_u64())
                .is_some_and(|n| n > 0)
    });
    assert!(drops.contains("dropped_items"));
}

#[test]
fn a_collector_that_is_down_changes_no_answer() {
    faulty_collector(&format!("http://{}", closed_port()), "refused");
}

#[test]
fn a_collector_answering_503_or_429_is_retried_then_given_up() {
    for status in [503, 429, 500] {
        let receiver = Receiver::start(Behaviour::Status(status));
        faulty_collector(&receiver.url(), &format!("status {status}"));
        receiver.with(|r| assert!(r.requests.len() >= 2, "retried: {:?}", r.requests));
    }
}

/// A collector the host does not let guests reach (Spin without it in
/// `allowed_outbound_hosts`; here without `--allowed-outbound-hosts`): runtime-host says so at
/// start and at the first refusal, the component turns each signal off once with
/// `host not allowed`, and requests are served as if nothing were exported.
#[test]
fn a_collector_the_host_does_not_allow_is_said_once_and_changes_no_answer() {
    let receiver = Receiver::start(Behaviour::Accept);
    let mut args: Vec<String> = Vec::new();
    for e in export_env(&receiver.url(), &[]) {
        args.push("--env".to_owned());
        args.push(e);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let host = Host::start_with_env(&args, &[]);
    let hint = format!("--allowed-outbound-hosts {}", receiver.url());
    host.wait_stderr("the host's warning at start", |l| {
        l.contains("exports OTLP to a host --allowed-outbound-hosts does not allow")
            && l.contains(&hint)
    });
    serve_normally(&host, 30);
    for signal in ["traces", "logs", "metrics"] {
        host.wait_stderr(&format!("{signal} turned off"), |l| {
            l.contains("\"event\":\"otlp.export_off\"")
                && l.contains(&format!("\"signal\":\"{signal}\""))
                && l.contains("host not allowed")
        });
    }
    serve_normally(&host, 30);
    std::thread::sleep(Duration::from_millis(300));
    let stderr = host.stderr();
    let off = stderr
        .iter()
        .filter(|l| l.contains("otlp.export_off"))
        .count();
    // Once per signal per instance: a handful of instances at most, never once per request.
    assert!(
        (3..=12).contains(&off),
        "{off} export_off lines: {stderr:?}"
    );
    let refused = stderr
        .iter()
        .filter(|l| l.contains("a guest's outgoing request was refused"))
        .count();
    assert_eq!(refused, 1, "said once per origin: {stderr:?}");
    receiver.with(|r| assert!(r.requests.is_empty(), "nothing reached the collector"));
}

#[test]
fn a_slow_or_hanging_collector_times_out() {
    for behaviour in [
        Behaviour::Slow(10_000),
        Behaviour::Hang,
        Behaviour::HangMidBody,
    ] {
        let receiver = Receiver::start(behaviour);
        faulty_collector(&receiver.url(), "timed out");
    }
}

/// Spin makes one log record of every stdout write, so each write must hold exactly one line:
/// runtime-host says (at debug level) when a guest write held several, and none may.
#[test]
fn every_stdout_write_of_the_middleware_holds_one_line() {
    let receiver = Receiver::start(Behaviour::Accept);
    for env in [
        Vec::new(),
        vec![
            "EDGE_OBS_SPANS=on".to_owned(),
            "EDGE_OBS_LOG_START=on".to_owned(),
            "EDGE_OBS_LOG_LEVEL=debug".to_owned(),
        ],
        export_env(&receiver.url(), &["EDGE_OBS_SPANS=on"]),
    ] {
        let mut args: Vec<&str> = ALLOW_LOOPBACK.to_vec();
        for e in &env {
            args.push("--env");
            args.push(e);
        }
        let host = Host::start_with_env(&args, &[("RUNTIME_HOST_LOG", "runtime_host=debug")]);
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for path in ["/echo", "/hello", "/missing", "/echo?token=x"] {
            let r = get(host.addr, path, &[("traceparent", caller)]);
            assert!(r.status == 200 || r.status == 404, "{path}: {}", r.status);
        }
        host.wait_log_lines(|lines| lines.len() >= 4);
        let glued: Vec<String> = host
            .stderr()
            .into_iter()
            .filter(|l| l.contains("one guest write held several lines"))
            .collect();
        assert!(glued.is_empty(), "{env:?}: {glued:?}");
        // The check is live: the host's debug lines are on.
        assert!(host.stderr().iter().any(|l| l.contains("components ready")));
    }
}

/// With `--max-instance-reuse 1` every instance serves one request and goes away: what its
/// buffer holds then is all it will ever send.
#[test]
fn an_instance_serving_one_request_sends_its_batch_before_it_goes() {
    let receiver = Receiver::start(Behaviour::Accept);
    let host = start(
        &export_env(&receiver.url(), &["EDGE_OBS_OTLP_BATCH_AGE_MS=1000"]),
        &["--max-instance-reuse", "1"],
    );
    const N: usize = 10;
    for i in 0..N {
        echo(
            &host,
            &format!("00-{:032x}-00f067aa0ba902b7-01", 0xd000 + i),
        );
    }
    // Every instance's batch waits for its age (1 s) unless it is sent as the instance ends.
    std::thread::sleep(Duration::from_secs(4));
    let spans = receiver.spans().len();
    let records = receiver.log_records().len();
    eprintln!("with --max-instance-reuse 1: {spans} of {N} spans, {records} of {N} log records");
    assert_eq!((spans, records), (N, N));
}

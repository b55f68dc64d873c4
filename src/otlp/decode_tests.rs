//! The export requests, decoded with the official OpenTelemetry protobuf definitions
//! (`opentelemetry-proto`): what a collector receives for real exchanges.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::Signal;
use super::buffer::{Buffer, Export};
use crate::metrics::DURATION_BUCKETS;
use crate::{Completion, Middleware, RequestHead};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const ENDPOINT: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");

fn mw(vars: &[(&str, &str)]) -> Middleware {
    let (m, issues) = Middleware::from_env(
        std::iter::once(ENDPOINT)
            .chain(vars.iter().copied())
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    assert!(issues.is_empty(), "{issues:?}");
    m
}

fn buffer(m: &Middleware) -> Buffer {
    Buffer::new(&m.config().otlp, "instance-1", 1_000)
}

/// One exchange through the middleware, its telemetry into `buf`. Returns the forwarded
/// `traceparent` (what the app saw) and the stdout lines.
fn exchange(
    m: &Middleware,
    buf: &mut Buffer,
    target: &str,
    req: &[(&str, &str)],
    status: u16,
) -> (Option<String>, String) {
    let mut h = HeaderMap::new();
    for (k, v) in req {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let head = RequestHead {
        method: &Method::GET,
        scheme: Some("https"),
        authority: Some("shop.example"),
        path_with_query: target,
    };
    buf.started(head.method, head.scheme);
    let mut ex = m.start(&head, &mut h);
    let mut rh = HeaderMap::new();
    rh.insert("content-length", HeaderValue::from_static("12"));
    ex.on_response(
        StatusCode::from_u16(status).unwrap(),
        &mut rh,
        Duration::ZERO,
    );
    let lines = ex.finish_export(
        Completion {
            request_body_bytes: Some(3),
            ..Completion::default()
        },
        Duration::from_millis(7),
        Some(buf),
    );
    let tp = h.get("traceparent").map(|v| v.to_str().unwrap().to_owned());
    (tp, lines.into_string())
}

fn take(buf: &mut Buffer) -> Vec<Export> {
    buf.take(Instant::now() + Duration::from_secs(3600), 2_000)
}

fn body(exports: &[Export], signal: Signal) -> &[u8] {
    &exports
        .iter()
        .find(|e| e.signal == signal)
        .unwrap_or_else(|| panic!("no {signal:?} export in {exports:?}"))
        .body
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn s(v: &str) -> Value {
    Value::StringValue(v.to_owned())
}

fn check_resource(r: &Option<Resource>) {
    let attrs = &r.as_ref().unwrap().attributes;
    assert_eq!(attr(attrs, "service.name"), Some(&s("shop")));
    assert_eq!(attr(attrs, "service.instance.id"), Some(&s("instance-1")));
    assert_eq!(attr(attrs, "deployment.environment.name"), Some(&s("prod")));
}

const RESOURCE: [(&str, &str); 2] = [
    ("OTEL_SERVICE_NAME", "shop"),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment.name=prod",
    ),
];

#[test]
fn the_span_has_the_ids_the_app_saw_and_the_lines_attributes() {
    let m = mw(&[&RESOURCE[..], &[("EDGE_OBS_ROUTES", "/users/{id}")]].concat());
    let mut buf = buffer(&m);
    let (tp, lines) = exchange(
        &m,
        &mut buf,
        "/users/42?token=s3cr3t&x=1",
        &[("traceparent", TP), ("authorization", "Bearer s3cr3t")],
        200,
    );
    // Exporting spans and metrics itself, the component prints only the access line.
    assert_eq!(lines.lines().count(), 1, "{lines}");
    let exports = take(&mut buf);
    let req = ExportTraceServiceRequest::decode(body(&exports, Signal::Traces)).unwrap();
    assert_eq!(req.resource_spans.len(), 1);
    let rs = &req.resource_spans[0];
    check_resource(&rs.resource);
    let scope = &rs.scope_spans[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, "edge-observability");
    assert_eq!(scope.spans.len(), 1);
    let span = &scope.spans[0];
    let tp = tp.unwrap();
    assert_eq!(hex(&span.trace_id), &tp[3..35]);
    assert_eq!(
        hex(&span.span_id),
        &tp[36..52],
        "the parent id the app received"
    );
    assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.kind, 2, "server");
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        7_000_000
    );
    assert_eq!(span.flags, 0x301, "sampled, remote parent");
    assert!(span.status.as_ref().is_none_or(|s| s.code == 0));
    let a = &span.attributes;
    assert_eq!(attr(a, "http.route"), Some(&s("/users/{id}")));
    assert_eq!(attr(a, "http.request.method"), Some(&s("GET")));
    assert_eq!(
        attr(a, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    assert_eq!(attr(a, "url.scheme"), Some(&s("https")));
    assert_eq!(
        attr(a, "http.response.body.size"),
        Some(&Value::IntValue(12))
    );
    assert_eq!(attr(a, "url.query"), Some(&s("token=[REDACTED]&x=1")));
    assert!(attr(a, "trace_id").is_none() && attr(a, "service.name").is_none());
    let raw = format!("{req:?}");
    assert!(!raw.contains("s3cr3t"), "{raw}");
}

#[test]
fn server_errors_give_an_error_span_and_an_error_record() {
    let m = mw(&RESOURCE);
    let mut buf = buffer(&m);
    exchange(&m, &mut buf, "/boom", &[("traceparent", TP)], 503);
    let exports = take(&mut buf);
    let req = ExportTraceServiceRequest::decode(body(&exports, Signal::Traces)).unwrap();
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.status.as_ref().unwrap().code, 2);
    assert_eq!(attr(&span.attributes, "error.type"), Some(&s("503")));
    let logs = ExportLogsServiceRequest::decode(body(&exports, Signal::Logs)).unwrap();
    let rec = &logs.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(
        (rec.severity_number, rec.severity_text.as_str()),
        (17, "ERROR")
    );
}

#[test]
fn each_access_line_is_a_log_record_with_ids_severity_and_fields() {
    let m = mw(&[
        RESOURCE[0],
        RESOURCE[1],
        ("EDGE_OBS_LOG_REQUEST_HEADERS", "authorization,x-tenant"),
    ]);
    let mut buf = buffer(&m);
    let (tp, lines) = exchange(
        &m,
        &mut buf,
        "/a?password=pw&q=ok",
        &[("authorization", "Bearer s3cr3t"), ("x-tenant", "t1")],
        404,
    );
    let line: serde_json::Value = serde_json::from_str(lines.trim_end()).unwrap();
    let exports = take(&mut buf);
    let req = ExportLogsServiceRequest::decode(body(&exports, Signal::Logs)).unwrap();
    check_resource(&req.resource_logs[0].resource);
    let recs = &req.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!((r.severity_number, r.severity_text.as_str()), (13, "WARN"));
    let tp = tp.unwrap();
    assert_eq!(hex(&r.trace_id), &tp[3..35]);
    assert_eq!(hex(&r.span_id), &tp[36..52]);
    assert_eq!(r.flags, 1);
    assert_eq!(r.event_name, "http.request");
    assert!(r.time_unix_nano > 0 && r.observed_time_unix_nano == r.time_unix_nano);
    assert_eq!(
        r.body.as_ref().and_then(|b| b.value.clone()),
        Some(s("GET /a 404"))
    );
    let a = &r.attributes;
    // The line's fields, with the line's redaction.
    assert_eq!(
        attr(a, "request_id"),
        Some(&s(line["request_id"].as_str().unwrap()))
    );
    assert_eq!(
        attr(a, "http.request.header.authorization"),
        Some(&s("[REDACTED]"))
    );
    assert_eq!(attr(a, "http.request.header.x-tenant"), Some(&s("t1")));
    assert_eq!(attr(a, "url.query"), Some(&s("password=[REDACTED]&q=ok")));
    assert_eq!(
        attr(a, "http.response.status_code"),
        Some(&Value::IntValue(404))
    );
    assert_eq!(attr(a, "duration_ms"), Some(&Value::DoubleValue(7.0)));
    assert!(attr(a, "trace_id").is_none());
    assert!(!format!("{req:?}").contains("s3cr3t"));
}

#[test]
fn unsampled_traces_give_no_span_but_logs_and_metrics() {
    let m = mw(&RESOURCE);
    let mut buf = buffer(&m);
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    exchange(&m, &mut buf, "/", &[("traceparent", unsampled)], 200);
    let exports = take(&mut buf);
    assert!(
        exports.iter().all(|e| e.signal != Signal::Traces),
        "{exports:?}"
    );
    let logs = ExportLogsServiceRequest::decode(body(&exports, Signal::Logs)).unwrap();
    assert_eq!(logs.resource_logs[0].scope_logs[0].log_records[0].flags, 0);
    body(&exports, Signal::Metrics);
}

fn metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn metrics_are_delta_histograms_whose_counts_sum_to_the_requests() {
    let m = mw(&[&RESOURCE[..], &[("EDGE_OBS_ROUTES", "/users/{id}")]].concat());
    let mut buf = buffer(&m);
    for i in 0..5 {
        exchange(&m, &mut buf, &format!("/users/{i}"), &[], 200);
    }
    exchange(&m, &mut buf, "/other", &[], 500);
    // One request still in flight.
    buf.started(&Method::POST, Some("https"));
    let exports = take(&mut buf);
    let req = ExportMetricsServiceRequest::decode(body(&exports, Signal::Metrics)).unwrap();
    check_resource(&req.resource_metrics[0].resource);

    let d = metric(&req, "http.server.request.duration");
    assert_eq!(d.unit, "s");
    let Some(Data::Histogram(h)) = &d.data else {
        panic!("{d:?}")
    };
    assert_eq!(h.aggregation_temporality, 1, "delta");
    let total: u64 = h.data_points.iter().map(|p| p.count).sum();
    assert_eq!(total, 6);
    for p in &h.data_points {
        assert_eq!(p.explicit_bounds, DURATION_BUCKETS);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (1_000, 2_000));
        // 7 ms: the (0.005, 0.01] bucket.
        assert_eq!(p.bucket_counts[1], p.count);
        assert_eq!(p.min, Some(0.007));
    }
    let ok = h
        .data_points
        .iter()
        .find(|p| attr(&p.attributes, "http.route") == Some(&s("/users/{id}")))
        .unwrap();
    assert_eq!(ok.count, 5);
    assert_eq!(
        attr(&ok.attributes, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    assert!(attr(&ok.attributes, "error.type").is_none());
    let failed = h.data_points.iter().find(|p| p.count == 1).unwrap();
    assert_eq!(attr(&failed.attributes, "error.type"), Some(&s("500")));
    assert!(attr(&failed.attributes, "http.route").is_none());

    for (name, value) in [
        ("http.server.request.body.size", 3.0),
        ("http.server.response.body.size", 12.0),
    ] {
        let Some(Data::Histogram(h)) = &metric(&req, name).data else {
            panic!()
        };
        assert_eq!(h.data_points.iter().map(|p| p.count).sum::<u64>(), 6);
        assert!(h.data_points.iter().all(|p| p.max == Some(value)));
    }

    let Some(Data::Sum(active)) = &metric(&req, "http.server.active_requests").data else {
        panic!()
    };
    assert!(!active.is_monotonic);
    assert_eq!(active.aggregation_temporality, 1);
    let by_method = |m: &str| {
        active
            .data_points
            .iter()
            .find(|p| attr(&p.attributes, "http.request.method") == Some(&s(m)))
            .map(|p| p.value)
    };
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
    assert_eq!(
        by_method("GET"),
        Some(Some(N::AsInt(0))),
        "six started, six ended"
    );
    assert_eq!(by_method("POST"), Some(Some(N::AsInt(1))));

    // The next window starts empty (delta).
    let exports = buf.take(Instant::now() + Duration::from_secs(7200), 3_000);
    assert!(exports.is_empty(), "{exports:?}");
}

#[test]
fn drops_over_the_bound_and_failed_exports_are_counted_in_the_next_batch() {
    let m = mw(&[
        ("EDGE_OBS_OTLP_MAX_QUEUE", "2"),
        ("EDGE_OBS_OTLP_BATCH_SIZE", "2"),
    ]);
    let mut buf = buffer(&m);
    for _ in 0..4 {
        exchange(&m, &mut buf, "/", &[], 200);
    }
    // Two spans and two log records fit; the rest was dropped.
    assert_eq!(buf.items(), 2);
    assert_eq!(buf.take_unreported_drops(), 6);
    let exports = take(&mut buf);
    let sent: usize = exports.iter().map(|e| e.items).sum();
    assert_eq!(sent, 2);
    let req = ExportMetricsServiceRequest::decode(body(&exports, Signal::Metrics)).unwrap();
    assert_eq!(dropped(&req, "traces"), Some(3));
    assert_eq!(dropped(&req, "logs"), Some(3));
    // While a batch is in flight it still counts: nothing more fits.
    exchange(&m, &mut buf, "/", &[], 200);
    assert_eq!(buf.items(), 0);
    for e in &exports {
        buf.done(e, e.signal != Signal::Traces);
    }
    exchange(&m, &mut buf, "/", &[], 200);
    assert_eq!(buf.items(), 2, "room again once the batch is done");
    let exports = take(&mut buf);
    let req = ExportMetricsServiceRequest::decode(body(&exports, Signal::Metrics)).unwrap();
    // Traces: 1 over the bound while the batch was in flight, 1 in the failed export; logs:
    // 1 over the bound.
    assert_eq!(dropped(&req, "traces"), Some(2));
    assert_eq!(dropped(&req, "logs"), Some(1));
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
    let Some(Data::Sum(ex)) = &metric(&req, "edge_obs.otlp.exports").data else {
        panic!()
    };
    let outcome = |sig: &str, o: &str| {
        ex.data_points
            .iter()
            .find(|p| {
                attr(&p.attributes, "signal") == Some(&s(sig))
                    && attr(&p.attributes, "outcome") == Some(&s(o))
            })
            .and_then(|p| p.value)
    };
    assert_eq!(outcome("traces", "failed"), Some(N::AsInt(1)));
    assert_eq!(outcome("logs", "sent"), Some(N::AsInt(1)));
    assert_eq!(outcome("traces", "sent"), None);
}

#[test]
fn a_batch_is_due_by_size_or_by_age() {
    let m = mw(&[
        ("EDGE_OBS_OTLP_BATCH_SIZE", "4"),
        ("EDGE_OBS_OTLP_BATCH_AGE_MS", "1000"),
        ("EDGE_OBS_OTLP_SIGNALS", "traces,logs"),
    ]);
    let mut buf = buffer(&m);
    let t0 = Instant::now();
    assert!(!buf.due(t0) && buf.due_in(t0).is_none(), "empty");
    exchange(&m, &mut buf, "/", &[], 200);
    let first = Instant::now();
    assert!(!buf.due(first), "2 of 4 items, young");
    assert!(buf.due_in(first).unwrap() <= Duration::from_secs(1));
    // The exchange ended 7 ms after it started (its item's time).
    assert!(buf.due(first + Duration::from_millis(1010)), "old enough");
    exchange(&m, &mut buf, "/", &[], 200);
    assert!(buf.due(Instant::now()), "4 items");
    let exports = buf.take(Instant::now(), 5);
    assert_eq!(exports.iter().map(|e| e.items).sum::<usize>(), 4);
    assert!(exports.iter().all(|e| e.signal != Signal::Metrics));
    assert!(
        !buf.due(Instant::now() + Duration::from_secs(10)),
        "nothing left"
    );
}

#[test]
fn a_host_that_refuses_the_collector_turns_the_signal_off_and_frees_its_items() {
    let m = mw(&[]);
    let mut buf = buffer(&m);
    exchange(&m, &mut buf, "/", &[], 200);
    buf.disable(Signal::Logs);
    assert!(!buf.wants(Signal::Logs));
    assert_eq!(buf.items(), 1, "the span stays");
    exchange(&m, &mut buf, "/", &[], 200);
    assert_eq!(buf.items(), 2, "no more log records are buffered");
}

/// The `edge_obs.otlp.dropped` point of `signal`.
fn dropped(req: &ExportMetricsServiceRequest, signal: &str) -> Option<i64> {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
    let Some(Data::Sum(sum)) = &metric(req, "edge_obs.otlp.dropped").data else {
        panic!()
    };
    assert!(sum.is_monotonic && sum.aggregation_temporality == 1);
    sum.data_points
        .iter()
        .find(|p| attr(&p.attributes, "signal") == Some(&s(signal)))
        .and_then(|p| match p.value {
            Some(N::AsInt(n)) => Some(n),
            _ => None,
        })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A sanity check of the decoder itself: a field the encoder never writes stays default.
#[test]
fn strings_round_trip_through_any_value() {
    let mut b = Vec::new();
    super::encode::kv_str(&mut b, 1, "k", "välue");
    let kv = Resource::decode(b.as_slice()).unwrap();
    assert_eq!(
        kv.attributes[0].value,
        Some(AnyValue {
            value: Some(s("välue"))
        })
    );
    let _ = SystemTime::now();
}

/// Every `KeyValue` writer, on both sides of the one-byte lengths its short path takes, and as
/// a field numbered above 15: what the official definitions decode is what was written.
#[test]
fn key_values_decode_whatever_their_lengths() {
    use super::encode::{kv_bool, kv_double, kv_int, kv_str};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    let lengths = [
        0, 1, 59, 60, 61, 62, 63, 64, 120, 121, 122, 123, 124, 127, 128, 300,
    ];
    for &k in &lengths {
        let key = "k".repeat(k);
        for &v in &lengths {
            let value = "é".repeat(v / 2) + &"v".repeat(v % 2);
            let mut b = Vec::new();
            kv_str(&mut b, 1, &key, &value);
            kv_int(&mut b, 1, &key, v as i64 - 62);
            kv_double(&mut b, 1, &key, v as f64 / 3.0);
            kv_bool(&mut b, 1, &key, v % 2 == 0);
            let got = Resource::decode(b.as_slice()).unwrap().attributes;
            let want = [
                s(&value),
                Value::IntValue(v as i64 - 62),
                Value::DoubleValue(v as f64 / 3.0),
                Value::BoolValue(v % 2 == 0),
            ];
            assert_eq!(got.len(), want.len(), "key {k}, value {v}");
            for (kv, want) in got.iter().zip(want) {
                assert_eq!(kv.key, key);
                assert_eq!(kv.value.as_ref().and_then(|a| a.value.clone()), Some(want));
            }
        }
    }
    // `LogRecord.attributes` is field 6; a field of 16 or more takes the long path's tag.
    let mut b = Vec::new();
    kv_str(&mut b, 6, "a", "b");
    let record = LogRecord::decode(b.as_slice()).unwrap();
    assert_eq!(record.attributes[0].key, "a");
    b.clear();
    kv_str(&mut b, 16, "a", "b");
    kv_int(&mut b, 16, "a", 1);
    assert_eq!(b[..2], [0x82, 0x01], "field 16 takes a two-byte tag");
}

/// The request envelope around batches of every size: lengths of one, two and three bytes at
/// each level decode with the official definitions, and nothing of the items is lost.
#[test]
fn export_requests_decode_whatever_the_size_of_their_items() {
    use opentelemetry_proto::tonic::trace::v1::Span;
    let resource = super::encode::resource(&mw(&[]).config().otlp, "instance-1");
    for (spans, name_len) in [(0, 0), (1, 10), (1, 120), (2, 100), (3, 3000), (40, 600)] {
        let span = Span {
            name: "n".repeat(name_len),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Span::default()
        };
        let mut items = Vec::new();
        for _ in 0..spans {
            super::proto::bytes(&mut items, 2, &span.encode_to_vec());
        }
        let body = super::encode::request(&resource, &items);
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let service = &rs.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        assert_eq!(rs.scope_spans.len(), 1);
        let scope = &rs.scope_spans[0];
        assert_eq!(
            scope.scope.as_ref().unwrap().name,
            super::encode::SCOPE_NAME
        );
        assert_eq!(
            scope.spans,
            vec![span; spans],
            "{spans} spans of {name_len}"
        );
    }
}

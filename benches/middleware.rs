//! Per-request cost of the middleware's logic, compiled natively (no wasm, no I/O): what the
//! component does for every request besides moving bytes.
//!
//! `cargo bench --bench middleware -- --noplot` (bench/run.sh runs it with short settings and
//! copies `whole_request/realistic` into the results file). The target is < 5 µs per request.
//!
//! Groups:
//! - `start`: request id handling (generate a UUID v7, or validate the client's), W3C trace
//!   context (new trace, or continue the caller's `traceparent`/`tracestate`), request header
//!   rules, and capturing what the log line needs;
//! - `on_response`: security baseline, removal of leaky headers, request id and `Server-Timing`
//!   on the response;
//! - `finish`: the JSON access-log line, the span event line and the metric event line;
//! - `whole_request`: all three, as the component runs them for one request;
//! - `settings`: reading the settings, what every new instance pays once.
//!
//! Header maps are built (cloned) in the untimed set-up of each batch: the glue gets them from
//! the host already built, so copying them is not the middleware's cost.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use edge_observability_core::{Completion, Exchange, Middleware, RequestHead};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TARGET: &str = "/users/42?page=2&token=s3cr3t";

/// The settings of the README's example: a route table, and two request headers in the log
/// (one of them secret, so it is redacted).
fn middleware() -> Middleware {
    let vars = [
        ("EDGE_OBS_ROUTES", "/users/{id},/orders/{id},/health"),
        ("EDGE_OBS_LOG_REQUEST_HEADERS", "accept,authorization"),
        ("EDGE_OBS_SERVICE_NAME", "checkout"),
    ];
    let (m, issues) =
        Middleware::from_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    assert!(issues.is_empty(), "bench settings rejected: {issues:?}");
    m
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

/// What a browser or API client behind a proxy typically sends, without id or trace context.
const BROWSER: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
    ),
    ("accept", "application/json, text/plain, */*"),
    ("accept-language", "en-GB,en;q=0.7,de;q=0.3"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    (
        "authorization",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
    ),
    ("cookie", "session=0123456789abcdef; theme=dark"),
    ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
    ("x-forwarded-proto", "https"),
];

/// [`BROWSER`] plus a client request id and the caller's trace context.
fn with_id_and_trace() -> HeaderMap {
    let mut h = headers(BROWSER);
    h.insert(
        "x-request-id",
        HeaderValue::from_static("0190b5a0-7c8e-7b6e-9f3a-1234567890ab"),
    );
    h.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
    h.insert(
        "tracestate",
        HeaderValue::from_static("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    );
    h
}

/// An app's JSON answer, with headers the middleware removes (`server`, `x-powered-by`).
fn app_response() -> HeaderMap {
    headers(&[
        ("content-type", "application/json"),
        ("content-length", "512"),
        ("cache-control", "private, max-age=0"),
        ("date", "Mon, 23 Nov 2026 11:47:43 GMT"),
        ("server", "nginx/1.25.3"),
        ("x-powered-by", "Express"),
        ("etag", "\"33a64df551425fcc55e4d42a148795d9f25f89d4\""),
    ])
}

fn head() -> RequestHead<'static> {
    RequestHead {
        method: &Method::GET,
        scheme: Some("https"),
        authority: Some("api.example.com"),
        path_with_query: TARGET,
    }
}

const APP_TIME: Duration = Duration::from_micros(800);

/// A started exchange whose response head has passed, ready for `finish`.
fn answered(m: &Middleware, request: &HeaderMap) -> Exchange {
    let mut fwd = request.clone();
    let mut ex = m.start(&head(), &mut fwd);
    let mut resp = app_response();
    ex.on_response(StatusCode::OK, &mut resp, APP_TIME);
    ex
}

fn bench_start(c: &mut Criterion) {
    let m = middleware();
    let mut g = c.benchmark_group("start");
    for (name, request) in [
        ("generated_id_new_trace", headers(BROWSER)),
        ("client_id_and_traceparent", with_id_and_trace()),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || request.clone(),
                |fwd| m.start(black_box(&head()), fwd),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_on_response(c: &mut Criterion) {
    let m = middleware();
    let request = with_id_and_trace();
    c.bench_function("on_response", |b| {
        b.iter_batched_ref(
            || {
                let mut fwd = request.clone();
                (m.start(&head(), &mut fwd), app_response())
            },
            |(ex, resp)| ex.on_response(StatusCode::OK, resp, black_box(APP_TIME)),
            BatchSize::SmallInput,
        )
    });
}

fn bench_finish(c: &mut Criterion) {
    let m = middleware();
    let request = with_id_and_trace();
    // The log line, the span event (the caller's trace is sampled) and the metric event, as
    // the component writes them to stdout.
    let sample = answered(&m, &request).finish(Completion::default());
    assert_eq!(
        sample.lines().count(),
        3,
        "log line + span event + metric event: {sample}"
    );
    c.bench_function("finish/log_span_and_metric_lines", |b| {
        b.iter_batched(
            || answered(&m, &request),
            |ex| ex.finish(black_box(Completion::default())),
            BatchSize::SmallInput,
        )
    });
}

fn bench_whole_request(c: &mut Criterion) {
    let mut g = c.benchmark_group("whole_request");
    // The figure bench/run.sh reports: README settings, realistic headers, caller's trace.
    let m = middleware();
    let request = with_id_and_trace();
    g.bench_function("realistic", |b| {
        b.iter_batched(
            || (request.clone(), app_response()),
            |(mut fwd, mut resp)| {
                let mut ex = m.start(black_box(&head()), &mut fwd);
                ex.on_response(StatusCode::OK, &mut resp, APP_TIME);
                let out = ex.finish(Completion::default());
                (fwd, resp, out)
            },
            BatchSize::SmallInput,
        )
    });
    // Default settings, a bare request (id and trace generated): the cheapest common case.
    let defaults = Middleware::default();
    let bare = headers(&[("host", "127.0.0.1:3000"), ("accept", "*/*")]);
    let hello = RequestHead {
        method: &Method::GET,
        scheme: Some("http"),
        authority: Some("127.0.0.1:3000"),
        path_with_query: "/hello",
    };
    g.bench_function("defaults_bare_request", |b| {
        b.iter_batched(
            || {
                let resp = headers(&[("content-type", "text/plain"), ("content-length", "6")]);
                (bare.clone(), resp)
            },
            |(mut fwd, mut resp)| {
                let mut ex = defaults.start(black_box(&hello), &mut fwd);
                ex.on_response(StatusCode::OK, &mut resp, APP_TIME);
                let out = ex.finish(Completion::default());
                (fwd, resp, out)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// What a new instance pays before its first request: reading the settings (and compiling the
/// route templates) once. Hosts that create an instance per request pay it every time.
/// Target: under 20 µs with the default settings.
fn bench_settings(c: &mut Criterion) {
    let mut g = c.benchmark_group("settings");
    let none: [(String, String); 0] = [];
    g.bench_function("defaults", |b| {
        b.iter(|| Middleware::from_env(black_box(none.clone())))
    });
    // A typical environment: the process's other variables are read and skipped too.
    let mut typical: Vec<(String, String)> = [
        ("EDGE_OBS_ROUTES", "/users/{id},/orders/{id},/health"),
        ("EDGE_OBS_LOG_REQUEST_HEADERS", "accept,authorization"),
        ("EDGE_OBS_SERVICE_NAME", "checkout"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    typical.extend((0..20).map(|i| (format!("OTHER_VARIABLE_{i}"), "value".to_owned())));
    g.bench_function("readme_example", |b| {
        b.iter_batched(
            || typical.clone(),
            |vars| Middleware::from_env(black_box(vars)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_settings,
    bench_start,
    bench_on_response,
    bench_finish,
    bench_whole_request
);
criterion_main!(benches);

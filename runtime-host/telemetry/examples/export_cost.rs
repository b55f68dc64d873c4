//! What runtime-host's telemetry does per request with the middleware's lines, natively and
//! without I/O, for counting instructions with callgrind:
//!
//! ```text
//! cargo build --release -p runtime-host-telemetry --example export_cost
//! valgrind --tool=callgrind target/release/examples/export_cost access 10000
//! valgrind --tool=callgrind target/release/examples/export_cost access 0
//! ```
//!
//! The difference of the two totals over 10,000 is the cost of one line. Kinds:
//! - `access`: an access line written as an OTLP `LogRecord`;
//! - `span`: a span line written as an OTLP `Span`;
//! - `metric`: a metric event line read, recorded in the Prometheus families and in the OTLP
//!   histograms.
//!
//! The lines are the product's, as runtime-host printed them for `GET /hello` with a sampled
//! `traceparent`.

use std::hint::black_box;
use std::time::Duration;

use telemetry::metric_event;
use telemetry::metrics::HostMetrics;
use telemetry::otlp::metrics::OtlpMetrics;
use telemetry::otlp::sender::Sender;
use telemetry::otlp::{log_line, span_line};

const ACCESS: &str = r#"{"timestamp":"2026-12-07T14:43:02.192Z","level":"info","event":"http.request","request_id":"01a250f5-49af-7700-89b9-6f638c3a1483","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"828828a6ba908328","parent_span_id":"00f067aa0ba902b7","http.request.method":"GET","url.scheme":"http","http.response.status_code":200,"duration_ms":0.811,"http.request.body.size":0,"http.response.body.size":6,"client.address":"127.0.0.1","server.address":"127.0.0.1:18080","url.path":"/hello","user_agent.original":"curl/7.88.1"}"#;

const SPAN: &str = r#"{"schema":"edge_obs.span.v1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"828828a6ba908328","parent_span_id":"00f067aa0ba902b7","name":"GET","kind":"server","start_time_unix_nano":1796654582191552763,"end_time_unix_nano":1796654582192364680,"status":"unset","attributes":{"request_id":"01a250f5-49af-7700-89b9-6f638c3a1483","http.request.method":"GET","url.scheme":"http","http.response.status_code":200,"http.request.body.size":0,"http.response.body.size":6,"client.address":"127.0.0.1","server.address":"127.0.0.1:18080","url.path":"/hello","user_agent.original":"curl/7.88.1"}}"#;

const METRIC: &str = r#"{"schema":"edge_obs.metric.v1","time":"2026-12-07T14:43:02.192Z","duration_s":0.000811,"request_body_bytes":0,"response_body_bytes":6,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"828828a6ba908328","attributes":{"http.request.method":"GET","http.response.status_code":200,"url.scheme":"http"}}"#;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: export_cost access|span|metric COUNT";
    let kind = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let count: usize = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    // The OTLP histograms' export task needs a runtime; it never runs within the loop.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let _guard = runtime.enter();
    let host = HostMetrics::new("bench", "48");
    let sender = Sender::new(
        "http://127.0.0.1:9/v1/metrics",
        Default::default(),
        Duration::from_secs(1),
    )?;
    let otlp = OtlpMetrics::start(
        sender,
        Vec::new(),
        Duration::from_secs(3600),
        Duration::from_secs(1),
        host.otlp().clone(),
    );
    let mut buf = Vec::with_capacity(1 << 16);
    for _ in 0..count {
        buf.clear();
        match kind.as_str() {
            "access" => {
                anyhow::ensure!(log_line::encode(black_box(ACCESS.as_bytes()), &mut buf, 1))
            }
            "span" => span_line::encode(black_box(SPAN.as_bytes()), &mut buf)
                .map_err(anyhow::Error::msg)?,
            "metric" => {
                let event = metric_event::parse(black_box(METRIC.as_bytes()))?;
                host.observe(&event);
                otlp.observe(&event);
            }
            other => anyhow::bail!("unknown kind {other:?}; {usage}"),
        }
        black_box(&buf);
    }
    Ok(())
}

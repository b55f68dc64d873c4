//! A real OTLP/HTTP receiver for tests: accepts `POST /v1/traces`, `/v1/metrics`, `/v1/logs`
//! with `application/x-protobuf` bodies and decodes them with the official protobuf
//! definitions (`opentelemetry-proto`, prost). It can also answer 503 with `Retry-After`, or
//! never answer, to test how the exporter copes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, metric};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with an empty protobuf answer.
    Accept,
    /// 503 with `Retry-After: 1`.
    Unavailable,
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// Answers this status (with `Retry-After: 1` for 429 and 503).
    Status(u16),
    /// Answers 200, but only after this many milliseconds.
    Slow(u64),
    /// Reads the request head and half of its body, then stops reading (the connection stays
    /// open).
    HangMidBody,
}

/// What arrived.
#[derive(Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    /// Every request by path, also those not accepted.
    pub requests: Vec<String>,
    /// Header names (lowercase) and values of the last request.
    pub last_headers: Vec<(String, String)>,
}

/// A receiver on an ephemeral loopback port.
pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

impl Receiver {
    /// Starts a receiver that answers as `behaviour` says.
    pub fn start(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, behaviour, &shared));
            }
        });
        Receiver { addr, received }
    }

    /// The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `f` on what arrived so far.
    pub fn with<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.received.lock().unwrap())
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Span> {
        self.with(|r| {
            r.traces
                .iter()
                .flat_map(|t| &t.resource_spans)
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| ss.spans.clone())
                .collect()
        })
    }

    /// Every log record received.
    pub fn log_records(&self) -> Vec<LogRecord> {
        self.with(|r| {
            r.logs
                .iter()
                .flat_map(|l| &l.resource_logs)
                .flat_map(|rl| &rl.scope_logs)
                .flat_map(|sl| sl.log_records.clone())
                .collect()
        })
    }

    /// Waits (up to 60 s) until `pred` holds for what arrived.
    pub fn wait(&self, what: &str, pred: impl Fn(&Received) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.with(&pred) {
            assert!(Instant::now() < deadline, "receiver never got {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a span of `trace_id` (hex) arrived.
    pub fn wait_span(&self, trace_id: &str) -> Span {
        let id = hex_bytes(trace_id);
        self.wait(&format!("a span of trace {trace_id}"), |_| true);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.spans().into_iter().find(|s| s.trace_id == id) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no span of trace {trace_id}; have {} spans",
                self.spans().len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Bytes of a hex string.
pub fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The string value of attribute `key`, if it is a string.
pub fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// The integer value of attribute `key`.
pub fn attr_int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::IntValue(i) => Some(*i),
            _ => None,
        }
    })
}

/// A string body.
/// The data points of histogram `name` in every metrics export received.
pub fn histogram_points<'a>(r: &'a Received, name: &str) -> Vec<&'a HistogramDataPoint> {
    r.metrics
        .iter()
        .flat_map(|m| &m.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == name)
        .filter_map(|m| match &m.data {
            Some(metric::Data::Histogram(h)) => Some(h),
            _ => None,
        })
        .flat_map(|h| &h.data_points)
        .collect()
}

pub fn body_str(v: &Option<AnyValue>) -> Option<&str> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn serve(stream: TcpStream, behaviour: Behaviour, received: &Mutex<Received>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // Keep-alive: the exporter's client reuses connections.
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let mut headers = Vec::new();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_owned());
                if n == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                if n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
                headers.push((n, v));
            }
        }
        if behaviour == Behaviour::HangMidBody {
            let mut half = vec![0; length / 2];
            let _ = reader.read_exact(&mut half);
            received.lock().unwrap().requests.push(path.clone());
            std::thread::sleep(Duration::from_secs(600));
            return;
        }
        let body = if chunked {
            match read_chunked(&mut reader) {
                Some(body) => body,
                None => return,
            }
        } else {
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            body
        };
        {
            let mut r = received.lock().unwrap();
            r.requests.push(path.clone());
            r.last_headers = headers;
        }
        match behaviour {
            Behaviour::Hang => {
                // Hold the connection without answering until the client gives up.
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
                return;
            }
            Behaviour::Unavailable => {
                let _ = writer.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n",
                );
                continue;
            }
            Behaviour::Status(status) => {
                let retry = if matches!(status, 429 | 503) {
                    "retry-after: 1\r\n"
                } else {
                    ""
                };
                let answer =
                    format!("HTTP/1.1 {status} Refused\r\n{retry}content-length: 0\r\n\r\n");
                let _ = writer.write_all(answer.as_bytes());
                continue;
            }
            Behaviour::Slow(millis) => std::thread::sleep(Duration::from_millis(millis)),
            Behaviour::HangMidBody | Behaviour::Accept => {}
        }
        let decoded = {
            let mut r = received.lock().unwrap();
            match path.as_str() {
                "/v1/traces" => ExportTraceServiceRequest::decode(&body[..])
                    .map(|m| r.traces.push(m))
                    .is_ok(),
                "/v1/metrics" => ExportMetricsServiceRequest::decode(&body[..])
                    .map(|m| r.metrics.push(m))
                    .is_ok(),
                "/v1/logs" => ExportLogsServiceRequest::decode(&body[..])
                    .map(|m| r.logs.push(m))
                    .is_ok(),
                _ => false,
            }
        };
        let answer: &[u8] = if decoded {
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
        };
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

/// A chunked request body (RFC 9112 section 7.1), trailers skipped.
fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).ok()?;
        let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
        if size == 0 {
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer).ok()? == 0 || trailer.trim_end().is_empty() {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).ok()?;
    }
}

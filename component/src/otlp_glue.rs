//! The component's OTLP export over `wasi:http/client@0.3.0`: the instance's buffer, and the
//! task that sends its batches after responses have been handed over.
//!
//! Nothing here runs before a response is returned: the exchange's telemetry goes into the
//! buffer when the exchange finishes (in the task that already waits for the body to be
//! delivered), and that same task then sends a batch if one is due. At most one batch is in
//! flight per instance; one timer per instance sends data that is due by age when no request
//! comes to do it. Every export request is bounded by `OTEL_EXPORTER_OTLP_TIMEOUT`, retried at
//! most twice, and whatever the collector does, the buffer's bounds hold.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use edge_observability_core::lines::Lines;
use edge_observability_core::otlp::buffer::{Buffer, Export};
use edge_observability_core::otlp::policy::{self, Failure, Warnings};
use edge_observability_core::otlp::{Endpoint, OtlpConfig};
use edge_observability_core::wasi_glue::{middleware, write_stderr};
use edge_observability_core::{Completion, Exchange};
use spin_sdk::wasip3::clocks::monotonic_clock;
use spin_sdk::wasip3::http::client;
use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Method, Request, RequestOptions, Scheme};
use spin_sdk::wasip3::wit_bindgen;
use spin_sdk::wasip3::{wit_future, wit_stream};

struct State {
    buffer: Buffer,
    /// The header entries of every export request, built once per instance.
    headers: Vec<(String, Vec<u8>)>,
    warnings: Warnings,
    sending: bool,
    timer: bool,
}

thread_local! {
    /// `None` while export is off (no endpoint) or not yet needed.
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn config() -> &'static OtlpConfig {
    &middleware().config().otlp
}

/// Whether this instance exports anything.
pub(crate) fn enabled() -> bool {
    let c = middleware().config();
    c.enabled && c.otlp.enabled()
}

/// Runs `f` on the instance's export state, created on first use; `None` when export is
/// off. Never held across an await.
fn with<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    if !enabled() {
        return None;
    }
    STATE
        .try_with(|cell| {
            let mut state = cell.try_borrow_mut().ok()?;
            Some(f(state.get_or_insert_with(new_state)))
        })
        .ok()
        .flatten()
}

/// The state of a new instance. Out of line: `with` is instantiated for every use.
#[cold]
#[inline(never)]
fn new_state() -> State {
    let cfg = config();
    State {
        buffer: Buffer::new(
            cfg,
            &edge_observability_core::exchange::instance_id(),
            unix_nanos(),
        ),
        headers: export_headers(cfg),
        warnings: Warnings::new(cfg.batch_age),
        sending: false,
        timer: false,
    }
}

fn unix_nanos() -> u64 {
    edge_observability_core::span::unix_nanos(SystemTime::now())
}

/// A request arrived (`http.server.active_requests`).
pub(crate) fn started(method: &http::Method, scheme: Option<&str>) {
    with(|s| s.buffer.started(method, scheme));
}

/// [`Exchange::finish`], with the exchange's span, log record and metrics put into the
/// buffer when export is on. Returns the stdout lines.
pub(crate) fn finish(exchange: Exchange, end: Completion) -> Lines {
    let mut exchange = Some(exchange);
    let lines = with(|s| {
        exchange
            .take()
            .map(|e| e.finish_with(end, Some(&mut s.buffer)))
    })
    .flatten();
    // `finish_with` without a buffer rather than `finish`: one copy of the code, not two.
    lines
        .or_else(|| exchange.map(|e| e.finish_with(end, None)))
        .unwrap_or_default()
}

enum Step {
    Idle,
    Wait(Duration),
    Send(Vec<Export>),
}

/// Sends what is due, then arms the timer for what is not yet. Called (awaited) by the task
/// of each finished exchange; returns at once when another task is sending.
pub(crate) async fn drive() {
    loop {
        let step = with(|s| {
            let now = Instant::now();
            report(s, now);
            if s.sending {
                Step::Idle
            } else if s.buffer.due(now) {
                s.sending = true;
                Step::Send(s.buffer.take(now, unix_nanos()))
            } else if let Some(wait) = s.buffer.due_in(now).filter(|_| !s.timer) {
                s.timer = true;
                Step::Wait(wait)
            } else {
                Step::Idle
            }
        });
        match step.unwrap_or(Step::Idle) {
            Step::Idle => return,
            Step::Wait(d) => {
                sleep(d).await;
                with(|s| s.timer = false);
            }
            Step::Send(exports) => {
                for e in exports {
                    let endpoint = config().endpoints[e.signal.index()].as_ref();
                    let result = match endpoint {
                        Some(ep) => export(ep, &e.body).await,
                        None => Err(Failure::Other),
                    };
                    with(|s| settle(s, &e, endpoint, result));
                }
                with(|s| s.sending = false);
            }
        }
    }
}

/// `content-type` and `OTEL_EXPORTER_OTLP_HEADERS`, as `wasi:http` field entries.
fn export_headers(cfg: &OtlpConfig) -> Vec<(String, Vec<u8>)> {
    let mut entries = Vec::with_capacity(cfg.headers.0.len() + 1);
    entries.push((
        "content-type".to_owned(),
        b"application/x-protobuf".to_vec(),
    ));
    for (name, value) in &cfg.headers.0 {
        entries.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
    }
    entries
}

/// Counts the outcome of one export; a failure is reported (the endpoint shown without its
/// query), and a host that refuses the collector turns the signal off.
#[inline(never)]
fn settle(s: &mut State, e: &Export, endpoint: Option<&Endpoint>, result: Result<(), Failure>) {
    s.buffer.done(e, result.is_ok());
    let Err(failure) = result else {
        return;
    };
    let shown = endpoint.map(Endpoint::display).unwrap_or_default();
    if failure == Failure::HostNotAllowed {
        s.buffer.disable(e.signal);
        let name = Some(config().service_name.as_str());
        write_stderr(&policy::host_not_allowed_line(e.signal, &shown, name));
    } else {
        s.warnings.failed(e.signal, failure, shown);
    }
}

/// Says drops and failures on stderr, at most once per interval.
fn report(s: &mut State, now: Instant) {
    s.warnings.dropped(s.buffer.take_unreported_drops());
    if let Some(line) = s.warnings.line(now, Some(config().service_name.as_str())) {
        write_stderr(&line);
    }
}

async fn sleep(d: Duration) {
    monotonic_clock::wait_for(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).await;
}

/// `a`, unless `timeout` passes first (then `None`, and `a` is dropped, which cancels it).
async fn within<F: Future>(timeout: Duration, a: F) -> Option<F::Output> {
    let mut a = pin!(a);
    let mut t = pin!(sleep(timeout));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        t.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// One export request with its retries.
async fn export(endpoint: &Endpoint, body: &[u8]) -> Result<(), Failure> {
    let mut attempt = 1;
    loop {
        let (status, retry_after) = post(endpoint, body.to_vec()).await?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        if !policy::retryable(status) {
            return Err(Failure::Status(status));
        }
        match policy::retry_delay(attempt, retry_after.as_deref()) {
            Some(d) => sleep(d).await,
            None => return Err(Failure::Status(status)),
        }
        attempt += 1;
    }
}

/// POSTs `body` to `endpoint`; the status and `Retry-After` of the answer.
async fn post(endpoint: &Endpoint, body: Vec<u8>) -> Result<(u16, Option<Vec<u8>>), Failure> {
    let cfg = config();
    // With its length, so the body is not sent chunked: every collector reads that, and the
    // size is known.
    let length = (
        "content-length".to_owned(),
        edge_observability_core::json::small_u64(body.len() as u64)
            .as_bytes()
            .to_vec(),
    );
    let fields = with(|s| {
        s.headers.push(length);
        let fields = Fields::from_list(&s.headers);
        s.headers.pop();
        fields
    })
    .and_then(Result::ok)
    .ok_or(Failure::Other)?;
    // The host's own timeouts too, where it supports them (it may refuse to set them).
    let options = RequestOptions::new();
    let nanos = u64::try_from(cfg.timeout.as_nanos()).unwrap_or(u64::MAX);
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    let (mut tx, rx) = wit_stream::new();
    let (request, _) = Request::new(
        fields,
        Some(rx),
        wit_future::new(|| Ok(None)).1,
        Some(options),
    );
    let _ = request.set_method(&Method::Post);
    let _ = request.set_scheme(Some(&if endpoint.https {
        Scheme::Https
    } else {
        Scheme::Http
    }));
    let _ = request.set_authority(Some(&endpoint.authority));
    let _ = request.set_path_with_query(Some(&endpoint.path_with_query));
    // The body is written while the request is sent, bounded by the same timeout: a
    // collector that stops reading cannot keep the bytes alive.
    let timeout = cfg.timeout;
    wit_bindgen::spawn(async move {
        let _ = within(timeout, tx.write_all(body)).await;
    });
    match within(timeout, client::send(request)).await {
        None => Err(Failure::TimedOut),
        Some(Err(code)) => Err(failure(&code)),
        Some(Ok(response)) => {
            let retry_after = response.get_headers().get("retry-after").into_iter().next();
            Ok((response.get_status_code(), retry_after))
        }
    }
}

fn failure(code: &ErrorCode) -> Failure {
    match code {
        ErrorCode::ConnectionRefused => Failure::Refused,
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => Failure::TimedOut,
        // Spin answers a host outside `allowed_outbound_hosts` with `HttpRequestDenied`.
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            Failure::HostNotAllowed
        }
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable => Failure::Unreachable,
        _ => Failure::Other,
    }
}

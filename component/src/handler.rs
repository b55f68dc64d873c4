//! The WASI 0.3 glue: the handler the component exports as `wasi:http/handler@0.3.0`. It
//! calls the imported one (the next middleware or the app) and lets the pure modules decide
//! everything else.
//!
//! Bodies are never buffered. The request and response body streams are handed on as they
//! are (the host moves the bytes, the guest never sees them) unless their size is unknown and
//! byte counting is on, in which case the stream is piped through a small fixed buffer.

use crate::otlp_glue;
use edge_observability_core::wasi_glue::{
    error_type, middleware, to_fields, write_lines, write_stdout,
};
use edge_observability_core::{Completion, ErrorType, Exchange, PreflightResponse, RequestHead};
use futures_channel::oneshot;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use spin_sdk::wasip3::wit_bindgen::{self, FutureReader, StreamReader, StreamResult, StreamWriter};
use spin_sdk::wasip3::{wit_future, wit_stream};
use std::cell::Cell;
use std::rc::Rc;

pub(crate) struct Component;

spin_sdk::wasip3::http::service::export!(Component);

/// The imported `wasi:http/handler@0.3.0` (the next middleware or the app), called directly:
/// `spin_sdk::http::next` would turn every response into an `http::Response` (parsing all its
/// headers and asking the host for them twice) only for the glue to take the original back.
mod next {
    spin_sdk::wit_bindgen::generate!({
        runtime_path: "spin_sdk::wit_bindgen::rt",
        inline: "package edge:next; world next { import wasi:http/handler@0.3.0; }",
        // The WASI 0.3.0 definitions the component is built against (`wit/`).
        path: "../wit",
        with: { "wasi:http/types@0.3.0": spin_sdk::wasip3::http::types },
        generate_all,
    });
    pub(super) use self::wasi::http::handler::handle;
}

impl spin_sdk::wasip3::exports::http::handler::Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let middleware = middleware();
        if !middleware.config().enabled {
            return pass_through(request).await;
        }

        let method = http_method(&request.get_method());
        let scheme = request.get_scheme().map(|s| match s {
            Scheme::Http => "http".to_owned(),
            Scheme::Https => "https".to_owned(),
            Scheme::Other(other) => other,
        });
        let authority = request.get_authority();
        let path_with_query = request.get_path_with_query();
        // Room for the request id and `traceparent` the exchange adds.
        let mut headers = to_header_map(&request.get_headers(), 4);
        let head = RequestHead {
            method: &method,
            scheme: scheme.as_deref(),
            authority: authority.as_deref(),
            path_with_query: path_with_query.as_deref().unwrap_or("/"),
        };
        crate::otlp_glue::started(&method, scheme.as_deref());
        let mut exchange = middleware.start(&head, &mut headers);
        if let Some(line) = exchange.start_line() {
            write_stdout(&line);
        }
        // CORS preflights are answered here; the app never sees them.
        if let Some(answer) = exchange.preflight() {
            return Ok(preflight_response(exchange, answer));
        }

        // Bodies of known size are not counted: the exchange logs their Content-Length.
        let counting = middleware.config().counts_body_bytes();
        let request_bytes = BodyCount::default();

        // Rebuild the request around the same body stream with the edited headers.
        let options = request.get_options();
        let (body, trailers) = Request::consume_body(request, unit_future());
        // The request's trailers go straight on: only the response's end decides the log line.
        let body = if counting && exchange.known_request_size().is_none() {
            let (body, _) = request_bytes.pipe(body);
            body
        } else {
            body
        };
        let (forwarded, _) = Request::new(to_fields(&headers), Some(body), trailers, options);
        // The setters only fail for values the host already accepted on the way in.
        let _ = forwarded.set_method(&wasi_method(&method));
        let _ = forwarded.set_scheme(scheme.map(wasi_scheme).as_ref());
        let _ = forwarded.set_authority(authority.as_deref());
        let _ = forwarded.set_path_with_query(path_with_query.as_deref());

        let app_start = exchange.app_start();
        let app_response = match next::handle(forwarded).await {
            Ok(response) => response,
            Err(code) => {
                let error = error_type(&code);
                return Ok(failure_response(exchange, error, request_bytes));
            }
        };
        let app_time = app_start.elapsed();

        let status_code = app_response.get_status_code();
        // The host only hands over valid status codes (100..=999).
        let status = StatusCode::from_u16(status_code).unwrap_or(StatusCode::BAD_GATEWAY);
        // Room for the security baseline, the request id, `Server-Timing` and CORS headers.
        let mut headers = to_header_map(
            &app_response.get_headers(),
            middleware.config().security.headers.len() + 8,
        );
        exchange.on_response(status, &mut headers, app_time);

        let response_bytes = BodyCount::default();

        // The app learns how its body was delivered once the client has it.
        let (delivered_tx, delivered_rx) = wit_future::new(|| Ok(()));
        let (body, trailers) = Response::consume_body(app_response, delivered_rx);
        // With byte counting on, a body of unknown size is piped through to count it. The pipe
        // also tells when the body really ended: the host's delivery signal fires as soon as a
        // streamed body starts.
        // The pipe passes the app's trailers on too, and so learns whether the body ended in
        // an error (the client's transfer is then cut): the log line must not say success.
        let body_failed = Rc::new(Cell::new(false));
        let (body, trailers, body_done) = if counting && exchange.known_response_size().is_none() {
            let (body, trailers, done) =
                response_bytes.pipe_with_result(body, trailers, body_failed.clone());
            (body, trailers, Some(done))
        } else {
            (body, trailers, None)
        };
        let (response, transmitted) = Response::new(to_fields(&headers), Some(body), trailers);
        let _ = response.set_status_code(status_code);

        // The log line and metric event are written when the body has been sent, after the
        // response itself went back to the host.
        wit_bindgen::spawn(async move {
            let result = transmitted.await;
            let mut error = result.as_ref().err().map(|_| ErrorType::ResponseBodyError);
            // Resolves when the pipe's task ends (its sender is dropped).
            if let Some(done) = body_done {
                let _ = done.await;
            }
            if body_failed.get() {
                error = Some(ErrorType::ResponseBodyError);
            }
            let _ = delivered_tx.write(result).await;
            write_lines(&otlp_glue::finish(
                exchange,
                Completion {
                    request_body_bytes: request_bytes.get(),
                    response_body_bytes: response_bytes.get(),
                    error,
                },
            ));
            // Telemetry leaves the instance here, after the response: never on its path.
            otlp_glue::drive().await;
        });
        Ok(response)
    }
}

/// `EDGE_OBS_ENABLED=off`: hands the request on and the response back, untouched.
async fn pass_through(request: Request) -> Result<Response, ErrorCode> {
    next::handle(request).await
}

/// Answers for a next handler that failed: a problem+json body, logged at once.
fn failure_response(
    mut exchange: Exchange,
    error: ErrorType,
    request_bytes: BodyCount,
) -> Response {
    let failure = exchange.on_failure(error);
    let body_len = failure.body.len() as u64;
    let (response, _) = Response::new(
        to_fields(&failure.headers),
        Some(bytes_stream(failure.body)),
        wit_future::new(|| Ok(None)).1,
    );
    let _ = response.set_status_code(failure.status.as_u16());
    write_lines(&otlp_glue::finish(
        exchange,
        Completion {
            request_body_bytes: request_bytes.get(),
            response_body_bytes: Some(body_len),
            error: Some(error),
        },
    ));
    spawn_drive();
    response
}

/// Sends the middleware's preflight answer (no body) and logs it at once.
fn preflight_response(exchange: Exchange, answer: PreflightResponse) -> Response {
    let (response, _) = Response::new(
        to_fields(&answer.headers),
        None,
        wit_future::new(|| Ok(None)).1,
    );
    let _ = response.set_status_code(answer.status.as_u16());
    write_lines(&otlp_glue::finish(
        exchange,
        Completion {
            request_body_bytes: None,
            response_body_bytes: Some(0),
            error: None,
        },
    ));
    spawn_drive();
    response
}

/// Sends due telemetry in a task of its own (for answers logged before they are returned).
fn spawn_drive() {
    if otlp_glue::enabled() {
        wit_bindgen::spawn(otlp_glue::drive());
    }
}

/// A stream that yields `bytes` and ends.
fn bytes_stream(bytes: Vec<u8>) -> StreamReader<u8> {
    let (mut tx, rx) = wit_stream::new();
    wit_bindgen::spawn(async move {
        let _ = tx.write_all(bytes).await;
    });
    rx
}

/// Runs `a` and `b` at once; `a`'s output once both are done.
async fn both<A: std::future::Future, B: std::future::Future<Output = ()>>(
    a: A,
    b: B,
) -> A::Output {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut out, mut b_done) = (None, false);
    std::future::poll_fn(|cx| {
        if out.is_none()
            && let std::task::Poll::Ready(v) = a.as_mut().poll(cx)
        {
            out = Some(v);
        }
        if !b_done {
            b_done = b.as_mut().poll(cx).is_ready();
        }
        match (b_done, out.take()) {
            (true, Some(v)) => std::task::Poll::Ready(v),
            (_, v) => {
                out = v;
                std::task::Poll::Pending
            }
        }
    })
    .await
}

/// What ends a `wasi:http` body: its trailers, or the error it failed with.
type BodyResult = Result<Option<Fields>, ErrorCode>;

/// A future that resolves to `Ok(())` (its writer is dropped at once).
fn unit_future() -> FutureReader<Result<(), ErrorCode>> {
    wit_future::new(|| Ok(())).1
}

/// Byte count of one body piped through the middleware; `None` while it is not piped.
#[derive(Clone, Default)]
struct BodyCount(Rc<Cell<Option<u64>>>);

impl BodyCount {
    fn get(&self) -> Option<u64> {
        self.0.get()
    }

    /// Pipes `body` through a fixed buffer, counting bytes. Returns the new read end and a
    /// receiver that resolves when the body has ended (or its reader went away).
    fn pipe(&self, body: StreamReader<u8>) -> (StreamReader<u8>, oneshot::Receiver<()>) {
        let (tx, rx) = wit_stream::new();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let pump = self.pump(body, tx);
        wit_bindgen::spawn(async move {
            let _done = done_tx;
            pump.await;
        });
        (rx, done_rx)
    }

    /// [`BodyCount::pipe`], passing on the body's `trailers` result too and setting `failed`
    /// when the body ended in an error. The result is read while the body flows (a writer
    /// that fails its body writes the error before it closes the stream, as spin-sdk does, so
    /// reading the stream to its end first would wait for ever) and handed on after the body,
    /// as the host would have read it. Costs a future more than `pipe`.
    fn pipe_with_result(
        &self,
        body: StreamReader<u8>,
        trailers: FutureReader<BodyResult>,
        failed: Rc<Cell<bool>>,
    ) -> (
        StreamReader<u8>,
        FutureReader<BodyResult>,
        oneshot::Receiver<()>,
    ) {
        let (tx, rx) = wit_stream::new();
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let pump = self.pump(body, tx);
        wit_bindgen::spawn(async move {
            let _done = done_tx;
            let result = both(std::future::IntoFuture::into_future(trailers), pump).await;
            failed.set(result.is_err());
            let _ = trailers_tx.write(result).await;
        });
        (rx, trailers_rx, done_rx)
    }

    /// Copies `body` to `tx` through a fixed buffer, counting bytes; `tx` is dropped (the
    /// reader sees the end) when the body ends or the reader went away.
    fn pump(
        &self,
        mut body: StreamReader<u8>,
        mut tx: StreamWriter<u8>,
    ) -> impl std::future::Future<Output = ()> + 'static {
        const CHUNK: usize = 64 * 1024;
        let count = self.0.clone();
        count.set(Some(0));
        async move {
            let mut buf = take_pipe_buffer(CHUNK);
            let buf = loop {
                let (result, data) = body.read(buf).await;
                match result {
                    StreamResult::Complete(n) => {
                        count.set(Some(count.get().unwrap_or(0) + n as u64));
                        let rest = tx.write_all(data).await;
                        if !rest.is_empty() {
                            break rest; // the reader went away
                        }
                        buf = rest;
                        if buf.capacity() < CHUNK {
                            buf = take_pipe_buffer(CHUNK);
                        }
                    }
                    StreamResult::Dropped | StreamResult::Cancelled => break data,
                }
            };
            give_back_pipe_buffer(buf, CHUNK);
        }
    }
}

thread_local! {
    /// Pipe buffers of ended pipes, for the next ones: a new 64 KiB buffer per piped body
    /// cost an allocation of that size per request. Taken and given back without awaiting in
    /// between, so concurrent pipes of the instance never share one.
    static PIPE_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Pipe buffers kept at most (one per concurrent piped body, beyond that they are freed).
const KEEP_PIPE_BUFFERS: usize = 4;

/// An empty buffer of at least `capacity` bytes, reused when one is kept.
fn take_pipe_buffer(capacity: usize) -> Vec<u8> {
    PIPE_BUFFERS
        .try_with(|kept| kept.try_borrow_mut().ok().and_then(|mut kept| kept.pop()))
        .ok()
        .flatten()
        .filter(|buf| buf.capacity() >= capacity)
        .unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Keeps `buf` for the next pipe when it still has its full size.
fn give_back_pipe_buffer(mut buf: Vec<u8>, capacity: usize) {
    if buf.capacity() < capacity {
        return;
    }
    buf.clear();
    let _ = PIPE_BUFFERS.try_with(|kept| {
        if let Ok(mut kept) = kept.try_borrow_mut()
            && kept.len() < KEEP_PIPE_BUFFERS
        {
            kept.push(buf);
        }
    });
}

/// The fields as a header map with room for `extra` more headers, so the headers the exchange
/// adds do not grow (rehash and move) the map.
fn to_header_map(fields: &Fields, extra: usize) -> HeaderMap {
    let entries = fields.copy_all();
    let mut map = HeaderMap::with_capacity(entries.len() + extra);
    for (name, value) in entries {
        // The host only hands over valid fields; skip anything that is not, rather than fail.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn http_method(method: &Method) -> http::Method {
    match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        // The host validated the token already; an unparsable one is still logged as _OTHER.
        Method::Other(other) => http::Method::from_bytes(other.as_bytes())
            .unwrap_or_else(|_| http::Method::from_bytes(b"_OTHER").unwrap()),
    }
}

fn wasi_method(method: &http::Method) -> Method {
    match *method {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::CONNECT => Method::Connect,
        http::Method::OPTIONS => Method::Options,
        http::Method::TRACE => Method::Trace,
        http::Method::PATCH => Method::Patch,
        ref other => Method::Other(other.as_str().to_owned()),
    }
}

fn wasi_scheme(scheme: String) -> Scheme {
    match scheme.as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => Scheme::Other(scheme),
    }
}

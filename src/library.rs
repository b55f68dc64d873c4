//! Library mode: the middleware inside a Rust spin-sdk 7 app, around the app's own handler.
//!
//! The component puts a boundary between middleware and app: a second component, a call
//! across it and the request and response rebuilt on each side. An app written in Rust can
//! skip all of that by linking this crate (feature `library`, without the default
//! `component`) and wrapping its handler with [`observe`]. The wrapper calls the same core as
//! the component ([`Middleware::start`], [`Exchange::on_response`], [`Exchange::finish`]), so
//! the settings (`EDGE_OBS_*`, read once per instance), the request id, trace context,
//! response headers, CORS preflights, access line and metric event are the component's, on
//! the app's own `http` types:
//!
//! ```ignore
//! use edge_observability::library::{self, Request};
//! use spin_sdk::http::{FullBody, IntoResponse};
//!
//! #[spin_sdk::http_service]
//! async fn handle(request: spin_sdk::http::Request) -> impl IntoResponse {
//!     library::observe(request, app).await
//! }
//!
//! async fn app(request: Request) -> http::Response<FullBody<bytes::Bytes>> {
//!     http::Response::new(FullBody::new(bytes::Bytes::from_static(b"hello\n")))
//! }
//! ```
//!
//! Bodies are never buffered: the request body reaches the app as a stream (counted as the
//! app reads it when its size is unknown and byte counting is on), and the response body is
//! written to the host frame by frame. The access line and metric event are written to
//! stdout when the host has sent the whole response body.

use crate::wasi_glue::{error_type, reported, to_fields, write_lines, write_stdout};
use crate::{Completion, ErrorType, Exchange, Middleware, RequestHead};
use bytes::Buf;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use spin_sdk::http::{EmptyBody, FullBody};
use spin_sdk::wasip3::http::types::{ErrorCode, Response as WasiResponse};
use spin_sdk::wasip3::http_compat::{BodyWriter, IncomingRequestBody};
use spin_sdk::wasip3::wit_bindgen;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// Library mode's settings, read once per instance like the component's, without the OTLP
/// export settings: library mode cannot export ([`Middleware::from_env_without_export`]).
fn middleware() -> &'static Middleware {
    static MIDDLEWARE: std::sync::OnceLock<Middleware> = std::sync::OnceLock::new();
    MIDDLEWARE.get_or_init(|| reported(Middleware::from_env_without_export(std::env::vars())))
}

/// The request an observed handler receives: spin-sdk's request with the headers the
/// middleware forwards (request id, `traceparent`, request rules) and its body wrapped so
/// the bytes the app reads can be counted.
pub type Request = http::Request<ObservedBody<IncomingRequestBody>>;

/// Errors a response body may end with (what spin-sdk accepts).
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an observed handler may return: an `http::Response` with any body spin-sdk can
/// send, or an `ErrorCode` when the app cannot answer (answered like the component answers a
/// failed app: 502, or 504 for a timeout, with a problem+json body).
pub trait HandlerResponse {
    /// The response body.
    type Body: Body + 'static;

    /// The response, or why there is none.
    fn into_result(self) -> Result<http::Response<Self::Body>, ErrorCode>;
}

impl<B: Body + 'static> HandlerResponse for http::Response<B> {
    type Body = B;

    fn into_result(self) -> Result<http::Response<B>, ErrorCode> {
        Ok(self)
    }
}

impl<B: Body + 'static> HandlerResponse for Result<http::Response<B>, ErrorCode> {
    type Body = B;

    fn into_result(self) -> Result<http::Response<B>, ErrorCode> {
        self
    }
}

/// Serves `request` with `handler`, observed as the middleware component would observe it.
///
/// Call it from the app's `#[spin_sdk::http_service]` function and return its result (it
/// implements `IntoResponse`). CORS preflights are answered here, without calling
/// `handler`, when `EDGE_OBS_CORS_*` is set; with `EDGE_OBS_ENABLED=off` the handler's
/// response is passed on untouched.
pub async fn observe<H, F, R>(
    request: spin_sdk::http::Request,
    handler: H,
) -> Result<WasiResponse, ErrorCode>
where
    H: FnOnce(Request) -> F,
    F: Future<Output = R>,
    R: HandlerResponse,
    <R::Body as Body>::Data: Buf + Into<Vec<u8>>,
    <R::Body as Body>::Error: Into<BoxError>,
{
    let middleware = middleware();
    if !middleware.config().enabled {
        let response = handler(request.map(ObservedBody::new))
            .await
            .into_result()?;
        return spin_sdk::http::IntoResponse::into_response(response);
    }

    let (mut parts, body) = request.into_parts();
    let head = RequestHead {
        method: &parts.method,
        scheme: parts.uri.scheme_str(),
        authority: parts.uri.authority().map(|a| a.as_str()),
        path_with_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
    };
    let mut exchange = middleware.start(&head, &mut parts.headers);
    if let Some(line) = exchange.start_line() {
        write_stdout(&line);
    }
    // CORS preflights are answered here; the app never sees them.
    if let Some(answer) = exchange.preflight() {
        let body = ObservedBody::new(EmptyBody::new());
        let counts = (ByteCount::default(), ByteCount::default());
        return Ok(send(exchange, answer.status, answer.headers, body, counts));
    }

    // Bodies of known size are not counted: the exchange logs their Content-Length.
    let counting = middleware.config().counts_body_bytes();
    let (body, request_bytes) =
        ObservedBody::counted_if(body, counting && exchange.known_request_size().is_none());
    let app_start = exchange.app_start();
    let answered = handler(http::Request::from_parts(parts, body))
        .await
        .into_result();
    let app_time = app_start.elapsed();

    let response = match answered {
        Ok(response) => response,
        Err(code) => {
            let failure = exchange.on_failure(error_type(&code));
            let body = ObservedBody::new(FullBody::new(bytes::Bytes::from(failure.body)));
            let counts = (request_bytes, ByteCount::default());
            return Ok(send(
                exchange,
                failure.status,
                failure.headers,
                body,
                counts,
            ));
        }
    };
    let (mut parts, body) = response.into_parts();
    exchange.on_response(parts.status, &mut parts.headers, app_time);
    let (body, response_bytes) =
        ObservedBody::counted_if(body, counting && exchange.known_response_size().is_none());
    Ok(send(
        exchange,
        parts.status,
        parts.headers,
        body,
        (request_bytes, response_bytes),
    ))
}

/// Hands the response to the host, then writes the exchange's lines once the host has sent
/// the whole body (or the body failed). `counts` are the request's and the response's.
fn send<B>(
    exchange: Exchange,
    status: StatusCode,
    headers: HeaderMap,
    body: ObservedBody<B>,
    counts: (ByteCount, ByteCount),
) -> WasiResponse
where
    B: Body + 'static,
    B::Data: Buf + Into<Vec<u8>>,
    B::Error: Into<BoxError>,
{
    let (writer, stream, result) = BodyWriter::new();
    let (response, transmitted) = WasiResponse::new(to_fields(&headers), Some(stream), result);
    // Only fails for codes outside 100..=999, which `http::StatusCode` cannot hold.
    let _ = response.set_status_code(status.as_u16());
    wit_bindgen::spawn(async move {
        // The body is dropped before waiting for the delivery: a body that streams the
        // request's holds the request's consumption signal, which the host may wait for
        // before it finishes the response.
        let sent = {
            let mut body = std::pin::pin!(body);
            writer.send_http_body(&mut body).await
        };
        let delivered = transmitted.await;
        let error = (sent.is_err() || delivered.is_err()).then_some(ErrorType::ResponseBodyError);
        let (request_bytes, response_bytes) = counts;
        write_lines(&exchange.finish(Completion {
            request_body_bytes: request_bytes.get(),
            response_body_bytes: response_bytes.get(),
            error,
        }));
    });
    response
}

/// The data bytes an [`ObservedBody`] passed on; `None` while it is not counted.
#[derive(Clone, Debug, Default)]
struct ByteCount(Option<Arc<AtomicU64>>);

impl ByteCount {
    fn get(&self) -> Option<u64> {
        self.0.as_ref().map(|n| n.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// A body passed on unchanged, frame by frame; when counted, it adds up the data bytes
    /// that go through it (what the app read of the request, what the host was given of the
    /// response).
    #[derive(Debug)]
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        count: Option<Arc<AtomicU64>>,
    }
}

impl<B> ObservedBody<B> {
    /// `inner`, not counted.
    pub fn new(inner: B) -> Self {
        ObservedBody { inner, count: None }
    }

    /// `inner`, counted when `count` is true, and the count to read later.
    fn counted_if(inner: B, count: bool) -> (Self, ByteCount) {
        let count = count.then(|| Arc::new(AtomicU64::new(0)));
        let bytes = ByteCount(count.clone());
        (ObservedBody { inner, count }, bytes)
    }

    /// The wrapped body (for an app that forwards the request body elsewhere).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body,
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Some(count), Poll::Ready(Some(Ok(frame)))) = (this.count.as_ref(), &polled)
            && let Some(data) = frame.data_ref()
        {
            count.fetch_add(data.remaining() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

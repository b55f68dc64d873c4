//! Per-request handling: connections, the host's limits, the call into the chain, and the
//! host's own answer whenever the chain cannot give one.

use crate::serving::answers::{self, HostAnswers, HostBody, SCHEME};
use crate::serving::pool::{InstanceFactory, InstantiationTimedOut, PoolExhausted, RequestFate};
use crate::serving::rate_limit::RateLimiter;
use crate::serving::upstream::{Tracked, Upstream};
use bytes::Bytes;
use edge_observability::ErrorType;
use http::{HeaderMap, Method, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use telemetry::metrics::{HostMetrics, RejectReason};
use tokio::sync::{Semaphore, watch};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, ProxyHandler};

/// Everything the handling of one request needs; shared by all connections.
pub struct Requests {
    /// The serving loop over the instance pool.
    pub handler: ProxyHandler<InstanceFactory>,
    /// Permits for requests in flight; beyond them, 503 at once.
    pub in_flight: Arc<Semaphore>,
    /// Largest request header section accepted.
    pub max_header_bytes: usize,
    /// Largest request body accepted.
    pub max_body_bytes: u64,
    /// Set once shutdown has begun.
    pub draining: Arc<AtomicBool>,
    /// Deadline of one request until its response head.
    pub request_timeout: Duration,
    /// Host metrics.
    pub metrics: Arc<HostMetrics>,
    /// The host's own answers.
    pub answers: HostAnswers,
    /// `--rate-limit`, when set.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// The origin in upstream mode, which notes what the chain forwarded for each request.
    pub upstream: Option<Arc<Upstream>>,
}

/// Most header fields a request may have (hyper's default limit); more get 431.
pub const MAX_HEADER_FIELDS: usize = 100;

/// How much later than the worker's deadline the host answers 504 by itself: a few epoch
/// ticks, the time the worker needs to interrupt a busy guest and expire its request.
const BACKSTOP_MARGIN: Duration = Duration::from_millis(200);

/// Resolves once the flag turns true (or its sender is gone).
pub async fn stopped(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

/// How long a client may take to send its request head (hyper's `header_read_timeout`), and
/// with it the first bytes of a connection: slow clients (slowloris) may not hold a
/// connection open forever sending headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Most requests at once on one HTTP/2 connection (hyper's default, said here); each still
/// takes a permit of `--max-concurrent-requests`.
const MAX_HTTP2_STREAMS: u32 = 200;

/// The start of every HTTP/2 connection with prior knowledge (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves a hyper connection (HTTP/1.1 or HTTP/2: two types with the same inherent methods)
/// until it ends; once `stop`, finishes the requests in flight and closes instead of keeping
/// the connection alive (HTTP/2: `GOAWAY`).
macro_rules! serve_until_stopped {
    ($connection:expr, $stop:expr) => {{
        let mut connection = std::pin::pin!($connection);
        tokio::select! {
            result = connection.as_mut() => result,
            () = stopped($stop) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    }};
}

/// Serves one client connection until it closes or `stop`: HTTP/1.1 with keep-alive, or
/// HTTP/2 over cleartext when the client starts with the HTTP/2 preface (prior knowledge), as
/// Spin's HTTP trigger does.
pub async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    requests: Arc<Requests>,
    stop: watch::Receiver<bool>,
) {
    // hyper's own limits are a backstop at twice ours: a head over our limit but within
    // hyper's reaches `handle`, which answers 431 with the request id and the headers of any
    // other answer; only beyond hyper's does hyper answer without a head.
    let hyper_max_header = requests.max_header_bytes.saturating_mul(2);
    let max_buf = hyper_max_header.max(8192);
    let service = {
        let requests = requests.clone();
        hyper::service::service_fn(move |request| {
            let requests = requests.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(request, peer, &requests).await) }
        })
    };
    let (http2, io) = match tokio::time::timeout(HEADER_READ_TIMEOUT, sniff(stream)).await {
        Ok(Ok(sniffed)) => sniffed,
        // Closed, failed or silent before a request began: nothing to answer or count.
        Ok(Err(_)) | Err(_) => return,
    };
    let io = TokioIo::new(io);
    let result = if http2 {
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(hyper_max_header).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_HTTP2_STREAMS)
            .serve_connection(io, service);
        serve_until_stopped!(connection, stop)
    } else {
        let connection = http1::Builder::new()
            .keep_alive(true)
            .max_buf_size(max_buf)
            // max_buf_size alone lets heads of up to about twice the limit through.
            .max_header_size(hyper_max_header)
            .max_headers(MAX_HEADER_FIELDS * 2)
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .timer(TokioTimer::new())
            .serve_connection(io, service);
        serve_until_stopped!(connection, stop)
    };
    if let Err(error) = result {
        // hyper answered these itself (431/414, 400) without calling the service; they are
        // still counted and logged, as far as is known without a request head.
        let rejected = if error.is_parse_too_large() {
            if uri_too_long(&error) {
                Some((RejectReason::HeaderTooLarge, ErrorType::UriTooLong))
            } else {
                Some((
                    RejectReason::HeaderTooLarge,
                    ErrorType::RequestHeaderTooLarge,
                ))
            }
        } else if error.is_parse() {
            Some((RejectReason::BadRequest, ErrorType::BadRequest))
        } else {
            if !error.is_incomplete_message() && !error.is_canceled() {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            None
        };
        if let Some((reason, kind)) = rejected {
            tracing::debug!(%error, %peer, "request rejected before its head was read");
            // The lines first, then the count: whoever sees the count can find the line.
            requests.answers.rejected_before_head(peer, kind);
            requests.metrics.rejected(reason);
        }
    }
}

/// The connection's byte stream, with the bytes `sniff` read put back in front.
type Sniffed = tokio::io::Join<
    tokio::io::Chain<std::io::Cursor<Vec<u8>>, tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
>;

/// Reads as much of the connection's start as tells HTTP/2's preface from anything else
/// (at most its 24 bytes, fewer as soon as one differs) and gives the stream back with those
/// bytes unread, so that the protocol chosen reads the connection from its first byte.
async fn sniff(stream: tokio::net::TcpStream) -> std::io::Result<(bool, Sniffed)> {
    use tokio::io::AsyncReadExt;
    let (mut read, write) = stream.into_split();
    let mut start = [0; HTTP2_PREFACE.len()];
    let mut len = 0;
    while len < start.len() && start[..len] == HTTP2_PREFACE[..len] {
        let n = read.read(&mut start[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let http2 = start == *HTTP2_PREFACE;
    let start = std::io::Cursor::new(start[..len].to_vec());
    Ok((http2, tokio::io::join(start.chain(read), write)))
}

/// What the host keeps of a request to answer it itself if the chain fails.
struct RequestCopy {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

async fn handle(
    request: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    requests: &Requests,
) -> hyper::Response<HostBody> {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let header_too_large =
        parts.headers.len() > MAX_HEADER_FIELDS || head_size(&parts) > requests.max_header_bytes;
    answers::set_client_addr(&mut parts.headers, peer);
    let answer = |parts: &http::request::Parts, error| {
        requests
            .answers
            .answer(&parts.method, &parts.uri, &parts.headers, error, started)
            .0
    };
    // The answer's lines first, then the count: whoever sees the count can find the line.
    let reject = |parts: &http::request::Parts, reason, error| {
        let response = answer(parts, error);
        requests.metrics.rejected(reason);
        response
    };

    if requests.draining.load(Ordering::Relaxed) {
        return reject(&parts, RejectReason::Draining, ErrorType::Draining);
    }
    if let Some(limiter) = &requests.rate_limiter
        && let Err(limited) = limiter.check(&parts.headers, Some(peer))
    {
        let mut response = reject(&parts, RejectReason::RateLimited, ErrorType::RateLimited);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, limited.retry_after.into());
        limited.add_headers(response.headers_mut());
        return response;
    }
    // Over the limit, answer at once: a bounded number of requests in flight keeps memory
    // bounded and tells clients (and load balancers) to come back.
    let Ok(permit) = requests.in_flight.clone().try_acquire_owned() else {
        return reject(&parts, RejectReason::Overload, ErrorType::Overload);
    };
    if header_too_large {
        return reject(
            &parts,
            RejectReason::HeaderTooLarge,
            ErrorType::RequestHeaderTooLarge,
        );
    }
    if parts.method == Method::CONNECT {
        // hyper takes a 2xx answer to CONNECT for an established tunnel and fails to send it
        // (the client got nothing); runtime-host serves requests, it does not tunnel.
        return answer(&parts, ErrorType::MethodNotSupported);
    }
    if let Some(length) = edge_observability::exchange::content_length(&parts.headers)
        && length > requests.max_body_bytes
    {
        return reject(
            &parts,
            RejectReason::BodyTooLarge,
            ErrorType::RequestBodyTooLarge,
        );
    }
    if !make_uri_absolute(&mut parts) {
        return answer(&parts, ErrorType::BadRequest);
    }

    let active = requests.metrics.active_request(&parts.method, SCHEME);
    let copy = RequestCopy {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
    };
    let tracked = requests
        .upstream
        .as_ref()
        .map(|upstream| upstream.track(&mut parts.headers));
    let max_body = requests.max_body_bytes;
    let body = Limited::new(body, max_body as usize)
        .map_err(move |_| wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body)))
        .boxed_unsync();
    let request = hyper::Request::from_parts(parts, body);

    // The instance's worker expires the request at the deadline (`on_request_start`), which
    // also stops that instance from taking new requests. This outer timeout is the backstop
    // for a guest the worker cannot interrupt at once (a blocking host call): the client gets
    // its answer shortly after the deadline and the worker's expiration drops the instance.
    // It fires a little later so that, normally, the worker has marked the instance first: a
    // request the client sends right after its 504 must not be queued on the stuck instance.
    let fate = RequestFate::default();
    let backstop = requests.request_timeout + BACKSTOP_MARGIN;
    let outcome = tokio::time::timeout(backstop, requests.handler.handle(fate.clone(), request))
        .await
        .unwrap_or_else(|_| Err(ExpirationError.into()));
    match outcome {
        Ok(response) => response.map(|body| {
            GuardedBody {
                inner: body,
                _guards: (permit, active),
            }
            .boxed_unsync()
        }),
        Err(error) => {
            let instantiation = error
                .downcast_ref::<InstantiationError<RequestFate>>()
                .map(|e| &*e.error);
            let kind = if error.is::<ExpirationError>()
                || instantiation.is_some_and(|e| e.is::<InstantiationTimedOut>())
            {
                requests.metrics.timeout();
                ErrorType::Timeout
            } else if instantiation.is_some_and(|e| e.is::<PoolExhausted>()) {
                // The host's own capacity: overload (503 with Retry-After), as beyond
                // --max-concurrent-requests, not the guest's fault.
                requests.metrics.rejected(RejectReason::Overload);
                ErrorType::Overload
            } else if fate.memory_exceeded() {
                ErrorType::MemoryLimit
            } else {
                ErrorType::GuestTrap
            };
            // Past the middleware (an upstream timeout), the answer takes the ids it sent.
            let forwarded = tracked.as_ref().and_then(Tracked::forwarded);
            let (response, answered) = requests.answers.answer_after(
                &copy.method,
                &copy.uri,
                &copy.headers,
                forwarded.as_ref(),
                kind,
                started,
            );
            tracing::warn!(
                request_id = %answered.request_id,
                trace_id = answered.trace_id.as_deref().unwrap_or(""),
                method = %copy.method,
                path = copy.uri.path(),
                error_type = kind.as_str(),
                error = %format!("{error:#}"),
                "request failed in the host"
            );
            drop(active);
            drop(permit);
            response
        }
    }
}

/// The size of the request head as hyper counts it, roughly: request line and header
/// fields with their separators.
fn head_size(parts: &http::request::Parts) -> usize {
    let target = parts.uri.authority().map_or(0, |a| a.as_str().len())
        + parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = parts.method.as_str().len() + target + 12;
    parts.headers.iter().fold(line, |n, (name, value)| {
        n + name.as_str().len() + value.len() + 4
    })
}

/// Gives the guest an absolute URI (scheme and authority from `Host`), as hosts do. False
/// when the request is malformed: several `Host` fields or one that is not a host and port
/// (RFC 9112, section 3.2: answered with 400). A request in absolute form (`GET https://x/`)
/// keeps its authority, but its scheme is the connection's, plain HTTP, whatever the client
/// wrote: the app and the log must not see `https` for a request that came in the clear.
fn make_uri_absolute(parts: &mut http::request::Parts) -> bool {
    if parts.uri.scheme() == Some(&http::uri::Scheme::HTTP) {
        return true;
    }
    let authority = match parts.uri.authority() {
        Some(authority) => authority.clone(),
        None => {
            let mut hosts = parts.headers.get_all(http::header::HOST).iter();
            match (hosts.next(), hosts.next()) {
                (None, _) => http::uri::Authority::from_static("localhost"),
                (Some(host), None) => match host
                    .to_str()
                    .ok()
                    .and_then(|h| h.parse::<http::uri::Authority>().ok())
                {
                    Some(authority) => authority,
                    None => return false,
                },
                (Some(_), Some(_)) => return false,
            }
        }
    };
    let mut uri = http::uri::Parts::from(parts.uri.clone());
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(authority);
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    match Uri::from_parts(uri) {
        Ok(uri) => {
            parts.uri = uri;
            true
        }
        Err(_) => false,
    }
}

/// A response body that holds the request's concurrency permit and active-request gauge
/// until the body is fully sent (or dropped).
struct GuardedBody<G> {
    inner: WasiBody,
    _guards: G,
}

impl<G: Unpin> http_body::Body for GuardedBody<G> {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether hyper's "too large" error is about the URI (414) rather than the header section
/// (431). hyper 1 has one public predicate for both (`is_parse_too_large`) and names the
/// kind only in its message, so this is the one place the host reads an error's text; the
/// 414 test in `tests/hostile_input.rs` fails if a hyper upgrade changes it.
fn uri_too_long(error: &hyper::Error) -> bool {
    error.to_string().contains("URI")
}

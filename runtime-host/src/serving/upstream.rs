//! Upstream mode: the host provides the innermost middleware's `wasi:http/handler@0.3.0`
//! import and forwards its requests to an HTTP origin over pooled keep-alive connections.
//!
//! wasmtime-wasi-http implements `wasi:http/client.send`, which already turns a guest request
//! into a host request and the host response back into a guest response. The handler import
//! has the same signature, so it delegates to that code and only the final hop (the
//! `send_request` hook) differs: it goes to the configured origin.

use anyhow::{Context, Result, bail};
use edge_observability::exchange::Forwarded;
use edge_observability::trace_context;
use http::uri::{Authority, PathAndQuery, Scheme};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use telemetry::metrics::{HostMetrics, UpstreamErrorKind};
use wasmtime::component::{Accessor, HasData, Linker, Resource};
use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore as _;
use wasmtime_wasi_http::p3::bindings::http::types::{ErrorCode, Request, Response};
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttp, WasiHttpView};

mod bindings {
    wasmtime::component::bindgen!({
        inline: "
            package runtime-host:upstream;
            world upstream {
                import wasi:http/handler@0.3.0;
            }
        ",
        path: "../wit",
        imports: { default: async | store | trappable },
        with: {
            "wasi:http/types": wasmtime_wasi_http::p3::bindings::http::types,
        },
    });
}

/// The HTTP origin behind the middleware chain, with a pool of keep-alive connections.
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    client: Client<HttpConnector, WasiBody>,
    connect_timeout: Duration,
    metrics: Arc<HostMetrics>,
    /// The header carrying the request id (the middleware's setting), for error lines.
    request_id_header: http::HeaderName,
    /// What the chain forwarded for each request in flight, by [`EXCHANGE_HEADER`] token.
    in_flight: Mutex<HashMap<u64, Option<Forwarded>>>,
    next_token: AtomicU64,
}

/// The header by which the host finds a request again where it leaves for the origin: set
/// on the incoming request (replacing any a client sent), passed on by the middleware like
/// any other, and removed before the origin sees it.
const EXCHANGE_HEADER: http::HeaderName = http::HeaderName::from_static("runtime-host-exchange");

/// One request followed to the origin ([`Upstream::track`]); forgotten when dropped.
pub struct Tracked {
    upstream: Arc<Upstream>,
    token: u64,
}

impl Tracked {
    /// What the chain sent the origin for this request, if it got that far.
    pub fn forwarded(&self) -> Option<Forwarded> {
        self.upstream
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&self.token)
            .and_then(Option::take)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.upstream
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.token);
    }
}

impl Upstream {
    /// Parses the origin URL (`http://host:port`, no path). `request_id_header` is where the
    /// middleware puts the request id, so error lines can name the request.
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        metrics: Arc<HostMetrics>,
        request_id_header: http::HeaderName,
    ) -> Result<Self> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("--upstream `{url}` is not a URL"))?;
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
        if scheme != Scheme::HTTP {
            bail!(
                "--upstream `{url}`: only http:// origins are supported (terminate TLS in front)"
            );
        }
        let Some(authority) = uri.authority().cloned() else {
            bail!("--upstream `{url}` has no host, e.g. http://127.0.0.1:8080");
        };
        if uri.path() != "/" && !uri.path().is_empty() {
            bail!("--upstream `{url}`: give the origin only; request paths are kept as they are");
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Upstream {
            scheme,
            authority,
            client,
            connect_timeout,
            metrics,
            request_id_header,
            in_flight: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
        })
    }

    /// Follows a request to the origin: marks its `headers`, so that if the host has to
    /// answer it after the middleware forwarded it (a timeout), the answer carries the ids
    /// the origin saw (`Tracked::forwarded`).
    pub fn track(self: &Arc<Self>, headers: &mut http::HeaderMap) -> Tracked {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        headers.insert(EXCHANGE_HEADER, http::HeaderValue::from(token));
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token, None);
        Tracked {
            upstream: self.clone(),
            token,
        }
    }

    /// Notes what leaves for the origin under the request's token, once: a request the host
    /// does not follow, or a token seen before, changes nothing.
    fn note_forwarded(&self, token: Option<&http::HeaderValue>, forwarded: Forwarded) {
        let Some(token) = token
            .and_then(|t| t.to_str().ok())
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return;
        };
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot @ None) = in_flight.get_mut(&token) {
            *slot = Some(forwarded);
        }
    }

    /// The origin as given, for log lines.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// Whether the origin accepts TCP connections (the readiness check).
    pub async fn reachable(&self) -> bool {
        let addr = format!(
            "{}:{}",
            self.authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']'),
            self.authority.port_u16().unwrap_or(80)
        );
        matches!(
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(addr)).await,
            Ok(Ok(_))
        )
    }

    /// Sends a guest's request to the origin, keeping its method, path, query and headers.
    pub async fn send(
        &self,
        mut request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        // The origin sees its own authority as Host, as a reverse proxy sends it by default.
        if let Ok(host) = http::HeaderValue::from_str(self.authority.as_str()) {
            request.headers_mut().insert(http::header::HOST, host);
        }
        // What names the request in an error line; the request itself is gone by then.
        let request_id = request
            .headers()
            .get(&self.request_id_header)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let traceparent = request
            .headers()
            .get("traceparent")
            .and_then(|v| trace_context::parse_traceparent(v.as_bytes()).ok());
        let trace_id = traceparent
            .as_ref()
            .map(|parent| {
                let mut hex = String::with_capacity(32);
                trace_context::push_hex(&mut hex, &parent.trace_id);
                hex
            })
            .unwrap_or_default();
        let token = request.headers_mut().remove(EXCHANGE_HEADER);
        self.note_forwarded(
            token.as_ref(),
            Forwarded {
                request_id: request.headers().get(&self.request_id_header).cloned(),
                traceparent,
            },
        );
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        match self.client.request(request).await {
            Ok(response) => Ok(response.map(|body| {
                use http_body_util::BodyExt;
                body.map_err(HttpError::from).boxed_unsync()
            })),
            Err(error) => {
                let (kind, code) = classify(&error);
                self.metrics.upstream_error(kind);
                tracing::warn!(
                    %request_id,
                    %trace_id,
                    %method,
                    %path,
                    origin = %self.origin(),
                    error = %telemetry::error_text::chain(&error),
                    "upstream request failed"
                );
                Err(code)
            }
        }
    }
}

/// The kind of a failed request, from the I/O error at the root of a connect failure (hyper's
/// connector reports its connect timeout as `TimedOut` too).
fn classify(error: &hyper_util::client::legacy::Error) -> (UpstreamErrorKind, HttpError) {
    if !error.is_connect() {
        return (UpstreamErrorKind::Protocol, HttpError::HttpProtocolError);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut => {
                    return (
                        UpstreamErrorKind::ConnectTimeout,
                        HttpError::ConnectionTimeout,
                    );
                }
                std::io::ErrorKind::ConnectionRefused => {
                    return (
                        UpstreamErrorKind::ConnectionRefused,
                        HttpError::ConnectionRefused,
                    );
                }
                _ => {}
            }
        }
        source = inner.source();
    }
    (
        UpstreamErrorKind::Connect,
        HttpError::DestinationUnavailable,
    )
}

/// Marker for the handler import's host data (the same view as `wasi:http`).
pub struct UpstreamHandler;

impl HasData for UpstreamHandler {
    type Data<'a> = wasmtime_wasi_http::WasiHttpCtxView<'a>;
}

impl bindings::wasi::http::handler::Host for wasmtime_wasi_http::WasiHttpCtxView<'_> {}

impl<T: 'static> bindings::wasi::http::handler::HostWithStore<T> for UpstreamHandler {
    async fn handle(
        store: &Accessor<T, Self>,
        request: Resource<Request>,
    ) -> wasmtime::Result<Result<Resource<Response>, ErrorCode>> {
        let client = store.with_getter::<WasiHttp>(store.getter());
        match WasiHttp::send(&client, request).await {
            Ok(response) => Ok(Ok(response)),
            Err(error) => error.downcast().map(Err),
        }
    }
}

/// A store whose host-provided handler import sends to the origin, apart from the guests'
/// own `wasi:http/client` requests (which go where they are addressed).
pub trait UpstreamView: WasiHttpView {
    /// The `wasi:http` view whose hooks send to the origin.
    fn upstream_http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_>;
}

/// Adds the host-provided `wasi:http/handler@0.3.0` import to `linker`.
pub fn add_handler_to_linker<T: UpstreamView + 'static>(linker: &mut Linker<T>) -> Result<()> {
    bindings::wasi::http::handler::add_to_linker::<_, UpstreamHandler>(linker, T::upstream_http)
        .map_err(anyhow::Error::from)
        .context("adding the upstream handler import")
}

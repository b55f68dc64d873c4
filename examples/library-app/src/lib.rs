//! Demo app for library mode: a Rust spin-sdk 7 app that links the edge observability core
//! (`edge_observability::library`) and wraps its own handler with it, so it is observed as
//! the middleware component would observe it, with no second component in front.
//!
//! | route | response |
//! |---|---|
//! | `GET /hello` | 200 `text/plain` `hello\n`: the cheap path for benchmarks |
//! | `/status/{code}` | status `code` (200..=599, anything else is a 400) with `{"status": code}` |
//! | `/bytes/{n}` | 200 `application/octet-stream`, exactly `n` bytes (at most 1 GiB) streamed in 64 KiB chunks, with `content-length` |
//! | `/stream/{chunks}` | 200 `text/plain`, lines `chunk 0\n`, `chunk 1\n`, ... streamed without `content-length` |
//! | `/headers?Name=value&...` | 200 `ok` with the query's pairs as response headers (no percent-decoding) |
//! | `/echo-body` | 200, the request body streamed back |
//! | `/fail` | the handler returns `ErrorCode::ConnectionTimeout` (no response) |
//! | `/fail-body` | 200 `text/plain` without `content-length`: `partial body\n`, then the body ends with an error (the client's transfer is cut) |
//! | anything else | 200 `application/json` echo of the request: `{"method", "path", "query", "headers"}` |
//!
//! The settings are the middleware's `EDGE_OBS_*` environment variables; with
//! `EDGE_OBS_ENABLED=off` the wrapper passes every response on untouched, which makes the
//! same app, without observability, the benchmarks' baseline for library mode.
//!
//! Routing is plain Rust, tested on the host; the handler in [`component`] is only built for
//! wasm.

/// The largest `/bytes/{n}` body: 1 GiB.
pub const MAX_BYTES: u64 = 1 << 30;

/// What a request asks for, parsed from its path.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `/hello`
    Hello,
    /// `/status/{code}`, with a code in 200..=599.
    Status(u16),
    /// `/bytes/{n}`, capped at [`MAX_BYTES`].
    Bytes(u64),
    /// `/stream/{chunks}`
    Stream(u64),
    /// `/headers?...`
    Headers,
    /// `/echo-body`
    EchoBody,
    /// `/fail`
    Fail,
    /// `/fail-body`
    FailBody,
    /// Any other path: echo the request as JSON.
    Echo,
    /// A known route with a malformed parameter; the message says what is wrong.
    BadRequest(String),
}

impl Route {
    /// Routes a request by its path. `/hello` is matched first, without allocating.
    pub fn parse(path: &str) -> Route {
        match path {
            "/hello" => return Route::Hello,
            "/headers" => return Route::Headers,
            "/echo-body" => return Route::EchoBody,
            "/fail" => return Route::Fail,
            "/fail-body" => return Route::FailBody,
            _ => {}
        }
        let Some((name, arg)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return Route::Echo;
        };
        match (name, arg.parse::<u64>()) {
            ("status", Ok(code @ 200..=599)) => Route::Status(code as u16),
            ("status", Ok(code)) => {
                Route::BadRequest(format!("status code {code} is not in 200..=599"))
            }
            ("bytes", Ok(n)) => Route::Bytes(n.min(MAX_BYTES)),
            ("stream", Ok(chunks)) => Route::Stream(chunks),
            ("status" | "bytes" | "stream", Err(_)) => {
                Route::BadRequest(format!("{path}: {arg:?} is not a non-negative integer"))
            }
            _ => Route::Echo,
        }
    }
}

/// The `name=value` pairs of a query, in order; a pair without `=` has an empty value.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The HTTP handler: the app's routes, wrapped by library mode.
#[cfg(target_family = "wasm")]
pub mod component {
    use std::convert::Infallible;

    use bytes::Bytes;
    use edge_observability::library::{self, Request};
    use futures::{Stream, StreamExt, stream};
    use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
    use http_body::Frame;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use serde_json::{Value, json};
    use spin_sdk::http::{BoxBody, IntoResponse, box_body};
    use spin_sdk::wasip3::http::types::ErrorCode;

    use super::{Route, query_pairs};

    /// What every route returns: a response with a boxed body (routes differ in body type),
    /// or an error code when the app cannot answer.
    type HandlerResult = Result<Response<BoxBody>, ErrorCode>;

    /// `/bytes` sends its body in chunks of this size.
    const BYTES_CHUNK: usize = 64 * 1024;

    /// The component's `wasi:http/handler` export: the app's routes, observed.
    #[spin_sdk::http_service]
    async fn handle(request: spin_sdk::http::Request) -> impl IntoResponse {
        library::observe(request, route).await
    }

    /// The app itself: routes the request and answers it.
    async fn route(request: Request) -> HandlerResult {
        match Route::parse(request.uri().path()) {
            Route::Hello => full(StatusCode::OK, "text/plain", Bytes::from_static(b"hello\n")),
            Route::Status(code) => status(code),
            Route::Bytes(n) => bytes(n),
            Route::Stream(chunks) => {
                let lines = stream::iter(0..chunks).map(|i| Bytes::from(format!("chunk {i}\n")));
                Ok(streamed("text/plain", None, lines))
            }
            Route::Headers => headers_from_query(request.uri().query().unwrap_or("")),
            Route::EchoBody => Ok(echo_body(request)),
            Route::Fail => Err(ErrorCode::ConnectionTimeout),
            Route::FailBody => Ok(fail_body()),
            Route::Echo => echo(&request),
            Route::BadRequest(message) => {
                json(StatusCode::BAD_REQUEST, &json!({ "error": message }))
            }
        }
    }

    /// A response with a body held in memory, with `content-type` and `content-length`.
    fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> HandlerResult {
        let len = body.len();
        let mut response = Response::new(box_body(Full::new(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(content_type));
        headers.insert("content-length", HeaderValue::from(len));
        Ok(response)
    }

    /// A JSON response.
    fn json(status: StatusCode, value: &Value) -> HandlerResult {
        full(status, "application/json", value.to_string().into())
    }

    /// A 200 response whose body is `chunks`, one frame per chunk.
    fn streamed(
        content_type: &'static str,
        content_length: Option<u64>,
        chunks: impl Stream<Item = Bytes> + Send + 'static,
    ) -> Response<BoxBody> {
        let body = StreamBody::new(chunks.map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))));
        let mut response = Response::new(box_body(body));
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(content_type));
        if let Some(len) = content_length {
            headers.insert("content-length", HeaderValue::from(len));
        }
        response
    }

    /// `/fail-body`: a first chunk, then the body fails, as an app whose data source breaks
    /// mid-response.
    fn fail_body() -> Response<BoxBody> {
        let frames = stream::iter([
            Ok(Frame::data(Bytes::from_static(b"partial body\n"))),
            Err(std::io::Error::other("the data source broke")),
        ]);
        let mut response = Response::new(box_body(StreamBody::new(frames)));
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("text/plain"));
        response
    }

    /// `/status/{code}`: that status with `{"status": code}`, or no body where HTTP forbids one.
    fn status(code: u16) -> HandlerResult {
        let status = StatusCode::from_u16(code)
            .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
        match code {
            204 | 205 | 304 => {
                let mut response = Response::new(box_body(Empty::<Bytes>::new()));
                *response.status_mut() = status;
                Ok(response)
            }
            _ => json(status, &json!({ "status": code })),
        }
    }

    /// `/bytes/{n}`: `n` bytes in 64 KiB chunks that all share one buffer.
    fn bytes(n: u64) -> HandlerResult {
        let buffer = Bytes::from(vec![b'x'; BYTES_CHUNK]);
        let mut remaining = n;
        let chunks = std::iter::from_fn(move || {
            let len = remaining.min(BYTES_CHUNK as u64);
            remaining -= len;
            (len > 0).then(|| buffer.slice(..len as usize))
        });
        Ok(streamed(
            "application/octet-stream",
            Some(n),
            stream::iter(chunks),
        ))
    }

    /// `/headers?Name=value&...`: 200 `ok` with the query's pairs as response headers.
    fn headers_from_query(query: &str) -> HandlerResult {
        let mut headers = HeaderMap::new();
        for (name, value) in query_pairs(query) {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => {
                    let message = format!("invalid header {name:?}: {value:?}");
                    return json(StatusCode::BAD_REQUEST, &json!({ "error": message }));
                }
            }
        }
        let mut response = full(StatusCode::OK, "text/plain", Bytes::from_static(b"ok"))?;
        response.headers_mut().extend(headers);
        Ok(response)
    }

    /// `/echo-body`: streams the request body back as it arrives.
    fn echo_body(request: Request) -> Response<BoxBody> {
        let body = request
            .into_body()
            .map_err(|code| anyhow::anyhow!("reading the request body: {code:?}"));
        let mut response = Response::new(body.boxed_unsync());
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        response
    }

    /// Any other path: what the app received, as JSON.
    fn echo(request: &Request) -> HandlerResult {
        let mut headers = serde_json::Map::new();
        for name in request.headers().keys() {
            let values: Vec<_> = request
                .headers()
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()))
                .collect();
            headers.insert(name.as_str().to_owned(), values.join(", ").into());
        }
        json(
            StatusCode::OK,
            &json!({
                "method": request.method().as_str(),
                "path": request.uri().path(),
                "query": request.uri().query(),
                "headers": headers,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/hello"), Route::Hello);
        assert_eq!(Route::parse("/echo-body"), Route::EchoBody);
        assert_eq!(Route::parse("/fail"), Route::Fail);
        assert_eq!(Route::parse("/fail-body"), Route::FailBody);
        assert_eq!(Route::parse("/status/404"), Route::Status(404));
        assert!(matches!(Route::parse("/status/600"), Route::BadRequest(_)));
        assert!(matches!(Route::parse("/bytes/x"), Route::BadRequest(_)));
        assert_eq!(Route::parse("/bytes/5000000000"), Route::Bytes(MAX_BYTES));
        assert_eq!(Route::parse("/stream/3"), Route::Stream(3));
        assert_eq!(Route::parse("/"), Route::Echo);
        assert_eq!(Route::parse("/anything/else"), Route::Echo);
    }

    #[test]
    fn splits_query_pairs() {
        let pairs: Vec<_> = query_pairs("Server=nginx&&flag&x=a=b").collect();
        assert_eq!(pairs, [("Server", "nginx"), ("flag", ""), ("x", "a=b")]);
    }
}

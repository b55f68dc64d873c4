//! Demo app for the edge observability middleware.
//!
//! A WASI 0.3 HTTP component (it exports `wasi:http/handler@0.3.0` through spin-sdk 7's
//! `#[http_service]`) whose routes drive the middleware's end-to-end tests and benchmarks:
//!
//! | route | response |
//! |---|---|
//! | `GET /hello` | 200 `text/plain` `hello\n`: the cheap path for benchmarks |
//! | `/status/{code}` | status `code` (200..=599, anything else is a 400) with `{"status": code}` |
//! | `/delay/{ms}` | sleeps `ms` milliseconds (at most 60000), then 200 `{"delayed_ms": ms}` |
//! | `/bytes/{n}` | 200 `application/octet-stream`, exactly `n` bytes (at most 1 GiB) streamed in 64 KiB chunks, with `content-length` |
//! | `/stream/{chunks}?delay_ms=N` | 200 `text/plain`, lines `chunk 0\n`, `chunk 1\n`, ... streamed without `content-length`, `N` ms apart (optional, at most 60000) |
//! | `/endless` | 200 `application/octet-stream`, 16 KiB chunks forever; stops when the receiver goes away |
//! | `/headers?Name=value&...` | 200 `ok` with the query's percent-decoded pairs as response headers (repeated names appended) |
//! | `/trap` | panics, so the component traps |
//! | `/loop` | spins in an endless CPU loop (for timeout tests) |
//! | `/alloc/{mb}` | allocates and touches `mb` MiB, then 200 `{"allocated_mb": mb}`; traps when memory runs out |
//! | `/echo-body` | 200, the request body streamed back (with the request's `content-type`) |
//! | `/app-metric` | prints one `edge_obs.app_metric.v1` counter line to stdout, then 200 `counted\n`: [`APP_METRIC_LINE`], with the `trace_id` and `span_id` of the request's `traceparent` added when it is well-formed and sampled ([`app_metric_line`]) |
//! | `/fail-body` | 200 `text/plain` without `content-length`: `partial body\n`, then the body ends with an error (the client's transfer is cut) |
//! | `/fail-body-sized` | the same with `content-length: 100`: a body of known size that fails |
//! | `/trailers` | 200 `text/plain` without `content-length`, `Trailer: x-app-checksum`: `body with trailers\n`, then the trailer field [`TRAILER_NAME`]`: `[`TRAILER_VALUE`] |
//! | `/fetch?url=...` | sends `GET url` through `wasi:http/client`, then 200 `{"status": N}`, or 502 `{"error": "..."}` when the host refused or failed it |
//! | `/print?line=...&via=wasip3` | prints the percent-decoded `line` and a `\n` to stdout in one write (through `wasi:cli/stdout@0.2` by default, `@0.3.0` with `via=wasip3`), then 200 `printed\n` |
//! | anything else | 200 `application/json` echo of the request: `{"method", "path", "query", "headers"}` |
//!
//! Routes match on the path alone, whatever the method. A path parameter that is not a
//! non-negative integer (`/status/abc`) gets 400 `{"error": "..."}`. The echo joins repeated
//! headers with `", "` and converts non-UTF-8 values lossily; tests read it to see what the
//! middleware forwarded.
//!
//! Routing and query parsing are plain Rust, tested on the host; the handler in [`component`]
//! is only built for wasm.

/// The trace id of the span line `/forge-metric` forges.
pub const FORGED_TRACE_ID: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

/// The trailer field `/trailers` ends its body with (and names in its `Trailer` header, which
/// an HTTP/1.1 server needs before it sends a trailer).
pub const TRAILER_NAME: &str = "x-app-checksum";
/// The value of [`TRAILER_NAME`].
pub const TRAILER_VALUE: &str = "sha256=demo";

/// The longest `/delay/{ms}` and `?delay_ms=` honoured, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;
/// The largest `/bytes/{n}` body: 1 GiB.
pub const MAX_BYTES: u64 = 1 << 30;

/// The line `/app-metric` prints: one increment of the counter `demo.app_metric.requests`, in
/// the schema the edge observability core crate defines (`edge_observability::app_metric`,
/// documented in `docs/app-metric.md`). Written out rather than built with that crate's
/// `write`: linking the middleware crate into the app would also link its handler export.
pub const APP_METRIC_LINE: &str = "{\"schema\":\"edge_obs.app_metric.v1\",\"type\":\"counter\",\"name\":\"demo.app_metric.requests\",\"value\":1,\"attributes\":{\"source\":\"hello-app\"}}\n";

/// The line `/app-metric` prints for a request with these `traceparent` values: with the
/// trace id and parent span id of a single well-formed, sampled one (flag `01`) added as
/// `trace_id` and `span_id`, so the host keeps an exemplar pointing at that trace; else
/// [`APP_METRIC_LINE`]. Behind the middleware that is the middleware's server span. Unsampled
/// traces get no ids: no backend has them, an exemplar would be a dead link.
pub fn app_metric_line<'a>(
    mut traceparents: impl Iterator<Item = &'a [u8]>,
) -> std::borrow::Cow<'static, str> {
    let ids = match (traceparents.next(), traceparents.next()) {
        // Several headers make the context invalid (W3C Trace Context).
        (Some(value), None) => sampled_ids(value),
        _ => None,
    };
    match ids {
        // Where `edge_observability::app_metric::write` puts them: before the attributes.
        Some((trace_id, span_id)) => APP_METRIC_LINE
            .replacen(
                ",\"attributes\"",
                &format!(",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",\"attributes\""),
                1,
            )
            .into(),
        None => APP_METRIC_LINE.into(),
    }
}

/// The trace id and parent id of a `traceparent` value that is well-formed (version `00`, or a
/// later one with the same first four fields) and sampled.
fn sampled_ids(value: &[u8]) -> Option<(&str, &str)> {
    fn lower_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
    fn nonzero(s: &str) -> bool {
        s.bytes().any(|b| b != b'0')
    }
    let value = std::str::from_utf8(value).ok()?;
    let mut fields = value.split('-');
    let (version, trace_id, span_id, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let well_formed = lower_hex(version, 2)
        && version != "ff"
        // Version 00 has exactly four fields; later versions may add more.
        && (version != "00" || fields.next().is_none())
        && lower_hex(trace_id, 32)
        && nonzero(trace_id)
        && lower_hex(span_id, 16)
        && nonzero(span_id)
        && lower_hex(flags, 2);
    let sampled = u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1);
    (well_formed && sampled).then_some((trace_id, span_id))
}

/// What a request asks for, parsed from its path (and query).
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `/hello`
    Hello,
    /// `/status/{code}`, with a code in 200..=599.
    Status(u16),
    /// `/delay/{ms}`, capped at [`MAX_DELAY_MS`].
    Delay(u64),
    /// `/bytes/{n}`, capped at [`MAX_BYTES`].
    Bytes(u64),
    /// `/stream/{chunks}?delay_ms=N`, the delay capped at [`MAX_DELAY_MS`].
    Stream {
        /// Number of lines to send.
        chunks: u64,
        /// Pause before every line after the first.
        delay_ms: u64,
    },
    /// `/endless`
    Endless,
    /// `/headers?...`
    Headers,
    /// `/trap`
    Trap,
    /// `/loop`
    Loop,
    /// `/alloc/{mb}`
    Alloc(u64),
    /// `/echo-body`
    EchoBody,
    /// `/forge-metric`: prints a metric event line and a span event line as the middleware
    /// would, to show that an app can feed neither the host's request metrics nor its spans.
    ForgeMetric,
    /// `/app-metric`
    AppMetric,
    /// `/fail-body`
    FailBody,
    /// `/fail-body-sized`
    FailBodySized,
    /// `/trailers`
    Trailers,
    /// `/fetch?url=...`: the percent-decoded URL to send a GET to.
    Fetch(String),
    /// `/print?line=...`: the line to print (without its `\n`), and whether to write it
    /// through `wasi:cli/stdout@0.3.0` rather than the WASI 0.2 stdout `std` uses.
    Print {
        /// The percent-decoded `line` parameter.
        line: Vec<u8>,
        /// `via=wasip3`.
        wasip3: bool,
    },
    /// Any other path: echo the request as JSON.
    Echo,
    /// A known route with a malformed parameter; the message says what is wrong.
    BadRequest(String),
}

impl Route {
    /// Routes a request by its path and query. `/hello` is matched first, without allocating.
    pub fn parse(path: &str, query: Option<&str>) -> Route {
        match path {
            "/hello" => Route::Hello,
            "/endless" => Route::Endless,
            "/headers" => Route::Headers,
            "/trap" => Route::Trap,
            "/loop" => Route::Loop,
            "/echo-body" => Route::EchoBody,
            "/forge-metric" => Route::ForgeMetric,
            "/app-metric" => Route::AppMetric,
            "/print" => Route::print(query.unwrap_or("")),
            "/fail-body" => Route::FailBody,
            "/fail-body-sized" => Route::FailBodySized,
            "/trailers" => Route::Trailers,
            "/fetch" => Route::Fetch(
                query_pairs(query.unwrap_or(""))
                    .find(|(name, _)| name == b"url")
                    .map(|(_, url)| String::from_utf8_lossy(&url).into_owned())
                    .unwrap_or_default(),
            ),
            _ => Route::parse_with_number(path, query),
        }
    }

    /// `/print`'s parameters.
    fn print(query: &str) -> Route {
        let mut line = Vec::new();
        let mut wasip3 = false;
        for (name, value) in query_pairs(query) {
            match name.as_slice() {
                b"line" => line = value,
                b"via" => wasip3 = value == b"wasip3",
                _ => {}
            }
        }
        Route::Print { line, wasip3 }
    }

    /// Routes `/{name}/{number}` paths; anything else is [`Route::Echo`].
    fn parse_with_number(path: &str, query: Option<&str>) -> Route {
        let Some((name, arg)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return Route::Echo;
        };
        match (name, arg.parse::<u64>()) {
            ("status", Ok(code @ 200..=599)) => Route::Status(code as u16),
            ("status", Ok(code)) => {
                Route::BadRequest(format!("status code {code} is not in 200..=599"))
            }
            ("delay", Ok(ms)) => Route::Delay(ms.min(MAX_DELAY_MS)),
            ("bytes", Ok(n)) => Route::Bytes(n.min(MAX_BYTES)),
            ("stream", Ok(chunks)) => match stream_delay_ms(query) {
                Ok(delay_ms) => Route::Stream { chunks, delay_ms },
                Err(message) => Route::BadRequest(message),
            },
            ("alloc", Ok(mb)) => Route::Alloc(mb),
            ("status" | "delay" | "bytes" | "stream" | "alloc", Err(_)) => {
                Route::BadRequest(format!("{path}: {arg:?} is not a non-negative integer"))
            }
            _ => Route::Echo,
        }
    }
}

/// The `delay_ms` query parameter of `/stream`: 0 when absent, capped at [`MAX_DELAY_MS`].
fn stream_delay_ms(query: Option<&str>) -> Result<u64, String> {
    let Some((_, value)) = query_pairs(query.unwrap_or("")).find(|(name, _)| name == b"delay_ms")
    else {
        return Ok(0);
    };
    std::str::from_utf8(&value)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| ms.min(MAX_DELAY_MS))
        .ok_or_else(|| {
            format!(
                "delay_ms {:?} is not a non-negative integer",
                String::from_utf8_lossy(&value)
            )
        })
}

/// Splits a query string into percent-decoded `(name, value)` pairs, in order.
///
/// A pair without `=` has an empty value; empty pairs (`a=1&&b=2`) are skipped. `+` stays a
/// literal `+` (this is percent-decoding, not form decoding).
pub fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept as it is.
pub fn percent_decode(s: &str) -> Vec<u8> {
    fn hex(digit: u8) -> Option<u8> {
        (digit as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes[i..] {
            [b'%', hi, lo, ..] => hex(hi).zip(hex(lo)).map(|(hi, lo)| hi << 4 | lo),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The HTTP handler: builds each route's response with spin-sdk.
#[cfg(target_family = "wasm")]
pub mod component {
    use std::{convert::Infallible, hint::black_box, time::Duration};

    use bytes::Bytes;
    use futures::{Stream, StreamExt, stream};
    use http_body::Frame;
    use http_body_util::StreamBody;
    use serde_json::{Value, json};
    use spin_sdk::http::{
        EmptyBody, FullBody, HeaderMap, HeaderName, HeaderValue, IntoResponse, Request, StatusCode,
    };
    use spin_sdk::wasip3::http::types::{ErrorCode, Response};

    use super::{Route, TRAILER_NAME, TRAILER_VALUE, query_pairs};

    /// What every route returns: a finished `wasi:http` response or an error code for the host.
    type HandlerResult = Result<Response, ErrorCode>;

    /// `/bytes` sends its body in chunks of this size.
    const BYTES_CHUNK: usize = 64 * 1024;
    /// `/endless` sends chunks of this size.
    const ENDLESS_CHUNK: usize = 16 * 1024;
    /// One MiB, the unit of `/alloc/{mb}`.
    const MIB: u64 = 1 << 20;
    /// `/alloc` writes one byte in every page of this size so the memory is really used.
    const PAGE: usize = 4096;

    /// The component's `wasi:http/handler` export: routes the request and answers it.
    #[spin_sdk::http_service]
    async fn handle(req: Request) -> HandlerResult {
        match Route::parse(req.uri().path(), req.uri().query()) {
            Route::Hello => full(StatusCode::OK, "text/plain", Bytes::from_static(b"hello\n")),
            Route::Status(code) => status(code),
            Route::Delay(ms) => {
                spin_sdk::time::sleep(Duration::from_millis(ms)).await;
                json(StatusCode::OK, &json!({ "delayed_ms": ms }))
            }
            Route::Bytes(n) => bytes(n),
            Route::Stream { chunks, delay_ms } => stream_lines(chunks, delay_ms),
            Route::Endless => endless(),
            Route::Headers => headers_from_query(req.uri().query().unwrap_or("")),
            Route::Trap => panic!("/trap: trapping on purpose"),
            Route::Loop => spin_forever(),
            Route::Alloc(mb) => alloc(mb),
            Route::EchoBody => echo_body(req),
            Route::ForgeMetric => forge_metric(),
            Route::AppMetric => {
                // One write per line, so lines of concurrent requests never interleave.
                use std::io::Write;
                let line = super::app_metric_line(
                    req.headers()
                        .get_all("traceparent")
                        .iter()
                        .map(|v| v.as_bytes()),
                );
                let _ = std::io::stdout().write_all(line.as_bytes());
                full(
                    StatusCode::OK,
                    "text/plain",
                    Bytes::from_static(b"counted\n"),
                )
            }
            Route::Print { mut line, wasip3 } => {
                line.push(b'\n');
                if wasip3 {
                    print_wasip3(line).await;
                } else {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&line);
                }
                full(
                    StatusCode::OK,
                    "text/plain",
                    Bytes::from_static(b"printed\n"),
                )
            }
            Route::Fetch(url) => fetch(&url).await,
            Route::FailBody => fail_body(None),
            Route::FailBodySized => fail_body(Some(100)),
            Route::Trailers => trailers(),
            Route::Echo => echo(&req),
            Route::BadRequest(message) => bad_request(message),
        }
    }

    /// `/fail-body`: a first chunk, then the body fails, as an app whose data source breaks
    /// mid-response does; with `content_length`, after declaring that size.
    fn fail_body(content_length: Option<u64>) -> HandlerResult {
        let frames = stream::iter([
            Ok(Frame::data(Bytes::from_static(b"partial body\n"))),
            Err("the app's body failed mid-stream"),
        ]);
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        if let Some(n) = content_length {
            headers.insert("content-length", HeaderValue::from(n));
        }
        (StatusCode::OK, headers, StreamBody::new(frames)).into_response()
    }

    /// `/trailers`: a chunk, then trailers, as a gRPC-style app that reports its outcome
    /// after the body does.
    fn trailers() -> HandlerResult {
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert(TRAILER_NAME, HeaderValue::from_static(TRAILER_VALUE));
        let frames = stream::iter([
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"body with trailers\n"))),
            Ok(Frame::trailers(trailers)),
        ]);
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert("trailer", HeaderValue::from_static(TRAILER_NAME));
        (StatusCode::OK, headers, StreamBody::new(frames)).into_response()
    }

    /// `/fetch`: a GET to `url` through `wasi:http/client`, as an app calling another
    /// service would; what came back, or why nothing did.
    async fn fetch(url: &str) -> HandlerResult {
        let request = spin_sdk::http::Request::get(url).body(EmptyBody::new());
        let request = match request {
            Ok(r) => r,
            Err(e) => return bad_request(format!("{url:?}: {e}")),
        };
        match spin_sdk::http::send(request).await {
            Ok(response) => json(
                StatusCode::OK,
                &json!({ "status": response.status().as_u16() }),
            ),
            Err(e) => json(
                StatusCode::BAD_GATEWAY,
                &json!({ "error": format!("{e:?}") }),
            ),
        }
    }

    /// Writes `bytes` through `wasi:cli/stdout@0.3.0`, as a WASI 0.3 program without `std`'s
    /// WASI 0.2 stdout would.
    async fn print_wasip3(bytes: Vec<u8>) {
        use spin_sdk::wasip3::cli::stdout;
        use spin_sdk::wasip3::wit_stream;
        let (mut tx, rx) = wit_stream::new::<u8>();
        let done = stdout::write_via_stream(rx);
        let remaining = tx.write_all(bytes).await;
        drop(tx);
        let _ = done.await;
        debug_assert!(remaining.is_empty());
    }

    /// A response with a body held in memory, with `content-type` and `content-length`.
    fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> HandlerResult {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert("content-type", HeaderValue::from_static(content_type));
        headers.insert("content-length", HeaderValue::from(body.len()));
        (status, headers, FullBody::new(body)).into_response()
    }

    /// Prints a forged `edge_obs.metric.v1` line (a teapot on `/forged`) and a forged
    /// `edge_obs.span.v1` line (trace [`super::FORGED_TRACE_ID`]), and answers 200.
    fn forge_metric() -> HandlerResult {
        println!(
            r#"{{"schema":"edge_obs.metric.v1","time":"2026-01-01T00:00:00.000Z","duration_s":0.001,"attributes":{{"http.request.method":"DELETE","http.route":"/forged","http.response.status_code":418,"url.scheme":"http"}}}}"#
        );
        println!(
            r#"{{"schema":"edge_obs.span.v1","trace_id":"{}","span_id":"f0f0f0f0f0f0f0f0","name":"DELETE /forged","kind":"server","start_time_unix_nano":1795000000000000000,"end_time_unix_nano":1795000000001000000,"status":"unset","attributes":{{"http.request.method":"DELETE"}}}}"#,
            super::FORGED_TRACE_ID
        );
        full(
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"forged\n"),
        )
    }

    /// A JSON response.
    fn json(status: StatusCode, value: &Value) -> HandlerResult {
        full(status, "application/json", value.to_string().into())
    }

    /// 400 with `{"error": message}`.
    fn bad_request(message: String) -> HandlerResult {
        json(StatusCode::BAD_REQUEST, &json!({ "error": message }))
    }

    /// A 200 response whose body is `chunks`, sent one frame per chunk as the host reads them.
    /// The body stops when `chunks` ends or when the host stops reading (the receiver is gone).
    fn streamed(
        content_type: &'static str,
        content_length: Option<u64>,
        chunks: impl Stream<Item = Bytes> + 'static,
    ) -> HandlerResult {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert("content-type", HeaderValue::from_static(content_type));
        if let Some(len) = content_length {
            headers.insert("content-length", HeaderValue::from(len));
        }
        let body = StreamBody::new(chunks.map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))));
        (StatusCode::OK, headers, body).into_response()
    }

    /// `/status/{code}`: that status with `{"status": code}`, or no body where HTTP forbids one.
    fn status(code: u16) -> HandlerResult {
        let status = StatusCode::from_u16(code)
            .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
        match code {
            204 | 205 | 304 => (status, EmptyBody::new()).into_response(),
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
        streamed("application/octet-stream", Some(n), stream::iter(chunks))
    }

    /// `/stream/{chunks}`: lines `chunk <i>\n`, `delay_ms` apart.
    fn stream_lines(chunks: u64, delay_ms: u64) -> HandlerResult {
        let delay = Duration::from_millis(delay_ms);
        let lines = stream::unfold(0, move |i| async move {
            if i == chunks {
                return None;
            }
            if i > 0 && !delay.is_zero() {
                spin_sdk::time::sleep(delay).await;
            }
            Some((Bytes::from(format!("chunk {i}\n")), i + 1))
        });
        streamed("text/plain", None, lines)
    }

    /// `/endless`: 16 KiB chunks until the host stops reading.
    fn endless() -> HandlerResult {
        let chunk = Bytes::from(vec![b'x'; ENDLESS_CHUNK]);
        streamed("application/octet-stream", None, stream::repeat(chunk))
    }

    /// `/headers?Name=value&...`: 200 `ok` with the query's pairs as response headers.
    fn headers_from_query(query: &str) -> HandlerResult {
        let mut headers = HeaderMap::new();
        for (name, value) in query_pairs(query) {
            match (
                HeaderName::from_bytes(&name),
                HeaderValue::from_bytes(&value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => {
                    let name = String::from_utf8_lossy(&name);
                    let value = String::from_utf8_lossy(&value);
                    return bad_request(format!("invalid header {name:?}: {value:?}"));
                }
            }
        }
        if !headers.contains_key("content-type") {
            headers.insert("content-type", HeaderValue::from_static("text/plain"));
        }
        (
            StatusCode::OK,
            headers,
            FullBody::new(Bytes::from_static(b"ok")),
        )
            .into_response()
    }

    /// `/loop`: burns CPU until the host kills the instance.
    fn spin_forever() -> ! {
        let mut counter = 0u64;
        loop {
            // black_box keeps the optimizer from proving the loop useless.
            counter = black_box(counter.wrapping_add(1));
        }
    }

    /// `/alloc/{mb}`: allocates `mb` MiB and writes to every page of it.
    ///
    /// When the host refuses to grow memory the allocation aborts and the component traps,
    /// which is what memory-limit tests look for. Sizes beyond the 32-bit address space trap
    /// the same way.
    fn alloc(mb: u64) -> HandlerResult {
        let len = usize::try_from(mb.saturating_mul(MIB)).unwrap_or(usize::MAX);
        let mut memory = vec![0u8; len];
        memory.iter_mut().step_by(PAGE).for_each(|byte| *byte = 1);
        black_box(&memory);
        json(StatusCode::OK, &json!({ "allocated_mb": mb }))
    }

    /// `/echo-body`: streams the request body back as it arrives.
    fn echo_body(req: Request) -> HandlerResult {
        let (parts, body) = req.into_parts();
        let content_type = parts
            .headers
            .get("content-type")
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert("content-type", content_type);
        (StatusCode::OK, headers, body).into_response()
    }

    /// Any other path: what the app received, as JSON.
    fn echo(req: &Request) -> HandlerResult {
        let mut headers = serde_json::Map::new();
        for name in req.headers().keys() {
            let values: Vec<_> = req
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
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "query": req.uri().query(),
                "headers": headers,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fixed_paths() {
        assert_eq!(Route::parse("/hello", None), Route::Hello);
        assert_eq!(Route::parse("/echo-body", None), Route::EchoBody);
        assert_eq!(Route::parse("/forge-metric", None), Route::ForgeMetric);
        assert_eq!(Route::parse("/app-metric", None), Route::AppMetric);
        assert_eq!(Route::parse("/fail-body", None), Route::FailBody);
        assert_eq!(Route::parse("/fail-body-sized", None), Route::FailBodySized);
        assert_eq!(Route::parse("/trailers", None), Route::Trailers);
        assert_eq!(
            Route::parse("/print", Some("line=a%22b&via=wasip3")),
            Route::Print {
                line: b"a\"b".to_vec(),
                wasip3: true
            }
        );
        assert_eq!(
            Route::parse("/print", None),
            Route::Print {
                line: Vec::new(),
                wasip3: false
            }
        );
        assert!(APP_METRIC_LINE.starts_with("{\"schema\":\"edge_obs.app_metric.v1\""));
        assert!(APP_METRIC_LINE.ends_with("}\n") && APP_METRIC_LINE.matches('\n').count() == 1);
        assert_eq!(Route::parse("/", None), Route::Echo);
        assert_eq!(Route::parse("/hello/", None), Route::Echo);
        assert_eq!(Route::parse("/anything/else", Some("a=b")), Route::Echo);
    }

    #[test]
    fn app_metric_line_names_a_sampled_trace_only() {
        let line = |values: &[&str]| app_metric_line(values.iter().map(|v| v.as_bytes()));
        let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let with_ids = line(&[sampled]);
        assert_eq!(
            with_ids,
            "{\"schema\":\"edge_obs.app_metric.v1\",\"type\":\"counter\",\"name\":\"demo.app_metric.requests\",\"value\":1,\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\",\"attributes\":{\"source\":\"hello-app\"}}\n"
        );
        let json: serde_json::Value = serde_json::from_str(&with_ids).unwrap();
        assert_eq!(json["attributes"]["source"], "hello-app");
        // Other flags with the sampled bit, and a later version with more fields.
        assert!(
            line(&["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"]).contains("trace_id")
        );
        assert!(
            line(&["01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"])
                .contains("trace_id")
        );
        for without in [
            &[][..],
            &["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"],
            &["00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
            &["00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"],
            &["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"],
            &["00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"],
            &["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"],
            &["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
            &["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"],
            &["garbage"],
            &[sampled, sampled],
        ] {
            assert_eq!(line(without), APP_METRIC_LINE, "{without:?}");
        }
    }

    #[test]
    fn routes_numeric_paths() {
        assert_eq!(Route::parse("/status/404", None), Route::Status(404));
        assert!(matches!(
            Route::parse("/status/101", None),
            Route::BadRequest(_)
        ));
        assert!(matches!(
            Route::parse("/status/600", None),
            Route::BadRequest(_)
        ));
        assert!(matches!(
            Route::parse("/status/abc", None),
            Route::BadRequest(_)
        ));
        assert_eq!(
            Route::parse("/delay/999999", None),
            Route::Delay(MAX_DELAY_MS)
        );
        assert_eq!(
            Route::parse("/bytes/5000000000", None),
            Route::Bytes(MAX_BYTES)
        );
        assert_eq!(Route::parse("/alloc/64", None), Route::Alloc(64));
        assert_eq!(
            Route::parse("/stream/3", None),
            Route::Stream {
                chunks: 3,
                delay_ms: 0
            }
        );
        assert_eq!(
            Route::parse("/stream/3", Some("x=1&delay_ms=20")),
            Route::Stream {
                chunks: 3,
                delay_ms: 20
            }
        );
        assert!(matches!(
            Route::parse("/stream/3", Some("delay_ms=-1")),
            Route::BadRequest(_)
        ));
    }

    #[test]
    fn decodes_query_pairs() {
        let pairs: Vec<_> = query_pairs("Server=nginx&Set-Cookie=a%3Db&&flag&x=%zz+%4").collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"Server".to_vec(), b"nginx".to_vec()),
            (b"Set-Cookie".to_vec(), b"a=b".to_vec()),
            (b"flag".to_vec(), b"".to_vec()),
            (b"x".to_vec(), b"%zz+%4".to_vec()),
        ];
        assert_eq!(pairs, expected);
        assert_eq!(percent_decode("%e2%9C%93%FF"), vec![0xe2, 0x9c, 0x93, 0xff]);
    }
}

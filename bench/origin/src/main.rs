//! A tiny native HTTP/1.1 origin for the benchmarks: the origin behind `runtime-host
//! --upstream` and the "direct" target it is compared with (see bench/README.md).
//!
//! `bench-origin [--addr 127.0.0.1:8080] [--threads N]`
//!
//! `GET /hello` answers `hello\n` (`text/plain`, content-length 6), the same body as the demo
//! app's `/hello`; `/delay/{ms}` answers the same after `ms` milliseconds (at most 10 s), an
//! origin that takes time like a real one; anything else gets a small JSON echo
//! `{"method","path","query"}`; `POST /v1/...` is answered 200 with an empty body, so the
//! origin doubles as the OTLP/HTTP receiver of the benchmark's "OTLP export on" target.
//! Connections are kept alive; the runtime is tokio's multi-threaded one.
// A native program: in a `--workspace` build for wasm32-wasip2 (the components) this binary
// is empty, so that such a build works.
#![cfg_attr(target_family = "wasm", no_main)]
#![cfg(not(target_family = "wasm"))]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// A tiny native HTTP/1.1 origin for the benchmarks.
#[derive(clap::Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

/// Longest pause `/delay/{ms}` takes.
const MAX_DELAY_MS: u64 = 10_000;

/// The answer to one request: the benchmark path without allocating, else a JSON echo.
fn respond(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/hello" || req.uri().path().starts_with("/delay/") {
        return hello();
    }
    if req.method() == hyper::Method::POST && req.uri().path().starts_with("/v1/") {
        // An OTLP/HTTP receiver for the "OTLP export on" target: accept and discard.
        let mut resp = Response::new(Full::new(Bytes::new()));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        return resp;
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
    })
    .to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn hello() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"hello\n")));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// The pause asked for by `/delay/{ms}`, if this is such a request.
fn delay(req: &Request<Incoming>) -> Option<Duration> {
    let ms: u64 = req.uri().path().strip_prefix("/delay/")?.parse().ok()?;
    Some(Duration::from_millis(ms.min(MAX_DELAY_MS)))
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "bench-origin listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(error) => {
                eprintln!("bench-origin: accept failed: {error}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                if let Some(pause) = delay(&req) {
                    tokio::time::sleep(pause).await;
                }
                Ok::<_, Infallible>(respond(&req))
            });
            // Errors here are clients going away mid-request; nothing to do about them.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(usize::from(n));
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("bench-origin: cannot start the runtime: {error}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = serve(args.addr) => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    });
    if let Err(error) = result {
        eprintln!("bench-origin: {}: {error}", args.addr);
        std::process::exit(1);
    }
}

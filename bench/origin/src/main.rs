//! A tiny native HTTP/1.1 origin for the benchmarks: the origin behind `runtime-host
//! --upstream` and the "direct" target it is compared with (see bench/README.md).
//!
//! `bench-origin [--addr 127.0.0.1:8080] [--threads N]`
//!
//! `GET /hello` answers `hello\n` (`text/plain`, content-length 6), the same body as the demo
//! app's `/hello`; anything else gets a small JSON echo `{"method","path","query"}`.
//! Connections are kept alive; the runtime is tokio's multi-threaded one.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const USAGE: &str = "usage: bench-origin [--addr 127.0.0.1:8080] [--threads N]";

struct Args {
    addr: SocketAddr,
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match name.as_str() {
            "--addr" => {
                let v = value()?;
                args.addr = v.parse().map_err(|e| format!("--addr {v}: {e}\n{USAGE}"))?;
            }
            "--threads" => {
                let v = value()?;
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--threads {v}: not a positive number\n{USAGE}"))?;
                args.threads = Some(n);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// The answer to one request: the benchmark path without allocating, else a JSON echo.
fn respond(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/hello" {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"hello\n")));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
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
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("bench-origin: {message}");
            std::process::exit(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n);
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

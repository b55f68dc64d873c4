//! The admin HTTP server: Kubernetes-style probes and the Prometheus scrape endpoint.
//!
//! It runs on its own listener, separate from the serving port, so that probes and scrapes keep
//! working when the serving path is saturated, and so that `/metrics` is not exposed to the
//! traffic the host serves.
//!
//! | route | answer |
//! |---|---|
//! | `GET /livez` | 200 `ok` whenever the server answers at all |
//! | `GET /readyz`, `GET /healthz` | 200 `ok` when [`Health::ready`], else 503; `?verbose` lists each check |
//! | `GET /startupz` | 200 once [`Health::set_started`] was called, else 503 |
//! | `GET /metrics` | 200, [`HostMetrics::encode`] |
//! | `GET /` | the live page ([`dashboard`]), unless switched off |
//! | `GET /api/v1/stats` | the page's data as JSON (`docs/admin-api.md`), unless switched off |
//!
//! `HEAD` is answered like `GET` without the body. Other methods on these paths get 405, other
//! paths 404. With an admin token, every path but the probes answers 401 without it (see
//! [`dashboard::auth`]).

pub mod dashboard;

use crate::admin::dashboard::Dashboard;
use crate::admin::dashboard::auth::{AdminHosts, AdminToken};
use crate::health::Health;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue,
    REFERRER_POLICY, VARY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use telemetry::metrics::{Format, HostMetrics};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Content type of every plain-text answer.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Most connections served at once. Probes and scrapes need a handful; the bound keeps a
/// misbehaving client from exhausting file descriptors through the admin port. Connections
/// beyond it are closed at once.
const MAX_CONNECTIONS: usize = 256;

/// A client must send its request headers within this time (slowloris protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// After shutdown, how long in-flight admin requests get to finish before `serve` returns.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// After a failed `accept` (typically EMFILE), wait this long so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What the admin server serves.
#[derive(Clone)]
pub struct AdminContext {
    /// Readiness state for the probes.
    pub health: Arc<Health>,
    /// The metrics for `/metrics`.
    pub metrics: Arc<HostMetrics>,
    /// The live page and its data; `None` when switched off.
    pub dashboard: Option<Arc<Dashboard>>,
    /// The token every non-probe path needs; `None` for an open admin address.
    pub token: Option<AdminToken>,
    /// The `Host` names every non-probe path may be asked under.
    pub hosts: AdminHosts,
}

impl AdminContext {
    /// Probes and metrics only, no token.
    pub fn new(health: Arc<Health>, metrics: Arc<HostMetrics>) -> AdminContext {
        AdminContext {
            health,
            metrics,
            dashboard: None,
            token: None,
            hosts: AdminHosts::default(),
        }
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
///
/// Each connection runs in its own task (HTTP/1.1 with keep-alive). When `shutdown` resolves,
/// the listener is closed, idle connections are closed, in-flight requests get up to 5 s to
/// finish, and then `serve` returns.
///
/// Resolve `shutdown` only at the very end of the drain: while draining, probes must still reach
/// `/readyz` to see its 503 (see [`Health::set_draining`]).
pub async fn serve(listener: TcpListener, ctx: AdminContext, shutdown: impl Future<Output = ()>) {
    // The page's history is sampled for as long as the admin server runs.
    let sampler = ctx
        .dashboard
        .clone()
        .map(|dashboard| tokio::spawn(dashboard.run_sampler()));
    let ctx = Arc::new(ctx);
    // Connections watch `stop`; when every receiver is gone, every connection task has ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin server: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "admin server: too many connections, closing");
            continue;
        };
        let ctx = ctx.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let resp = handle(&req, &ctx);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                // Wrapped so the `watch::Ref` (not `Send`) is dropped inside the branch future.
                () = async { drop(stop.wait_for(|stop| *stop).await) } => {
                    // Closes the connection if idle, else after the in-flight response.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    // Ignoring the error is right: it only means no connection is left to tell.
    let _ = stop_tx.send(true);
    drop(stop_rx);
    if tokio::time::timeout(SHUTDOWN_GRACE, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("admin server: connections still open after the shutdown grace period");
    }
}

/// Path of the page's JSON data.
pub const STATS_PATH: &str = "/api/v1/stats";

/// Answers one request. Synchronous: every answer is computed from atomics, the registry or
/// the page's small in-memory state.
fn handle(req: &Request<Incoming>, ctx: &AdminContext) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !ctx.hosts.allows(path, req.headers()) {
        let name = AdminHosts::requested(req.headers());
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "the admin address does not answer to the name `{name}` (add --admin-host {name})\n"
            ),
        );
    }
    if let Some(token) = &ctx.token
        && !token.allows(path, req.uri().query(), req.headers())
    {
        return unauthorized();
    }
    let health = &ctx.health;
    let known = matches!(
        path,
        "/livez" | "/readyz" | "/healthz" | "/startupz" | "/metrics"
    ) || (ctx.dashboard.is_some() && (path == "/" || path == STATS_PATH));
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    // hyper omits the body of a HEAD response itself (keeping content-length), so HEAD can share
    // the GET code path.
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match path {
        "/livez" => text(StatusCode::OK, "ok"),
        "/readyz" | "/healthz" => readiness(&path[1..], has_verbose(req.uri().query()), health),
        "/startupz" => {
            if health.is_started() {
                text(StatusCode::OK, "ok")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not started\n")
            }
        }
        "/" => ctx.dashboard.as_deref().map_or_else(not_found, page),
        STATS_PATH => ctx
            .dashboard
            .as_deref()
            .map_or_else(not_found, |d| stats(d, req.uri().query())),
        "/metrics" => {
            // OpenMetrics (with exemplars) to scrapers that ask for it, text 0.0.4 to others.
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let mut resp = text(StatusCode::OK, ctx.metrics.encode_as(format));
            let headers = resp.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            // Caches between scraper and host must keep the two formats apart.
            headers.insert(VARY, HeaderValue::from_static("accept"));
            resp
        }
        _ => unreachable!("path checked above"),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// 401 with a hint on how to present the token (never the token itself).
fn unauthorized() -> Response<Full<Bytes>> {
    let mut resp = text(
        StatusCode::UNAUTHORIZED,
        "this admin path needs the admin token: send `Authorization: Bearer <token>` \
         (open the page as /?token=<token>)\n",
    );
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"runtime-host admin\""),
    );
    resp
}

/// The live page, with a policy that allows nothing but its own inlined code and requests to
/// this address.
fn page(dashboard: &Dashboard) -> Response<Full<Bytes>> {
    let page = dashboard.page();
    let mut resp = Response::new(Full::new(page.html.clone()));
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&page.csp) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    no_store(headers);
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// `GET /api/v1/stats`: 200 JSON, or 400 for a bad filter.
fn stats(dashboard: &Dashboard, query: Option<&str>) -> Response<Full<Bytes>> {
    let document = match dashboard.stats(query) {
        Ok(document) => document,
        Err(reason) => return text(StatusCode::BAD_REQUEST, format!("{reason}\n")),
    };
    let body = match serde_json::to_vec(&document) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "encoding the admin stats failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    no_store(headers);
    resp
}

/// The page and its data change all the time and may be behind a token: never cache them,
/// never send the admin address as a referrer.
fn no_store(headers: &mut hyper::HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// The readiness answer, formatted as Kubernetes' `/readyz` does: `ok` when ready; with
/// `verbose`, one `[+]name ok` / `[-]name failed` line per check and a closing
/// `<name> check passed|failed` line. A failure without `verbose` lists only the failed checks,
/// so the body stays short but still says why.
fn readiness(name: &str, verbose: bool, health: &Health) -> Response<Full<Bytes>> {
    let report = health.report();
    // Status and body come from the same snapshot so they cannot disagree.
    let ready = report.iter().all(|(_, ok)| *ok);
    if ready && !verbose {
        return text(StatusCode::OK, "ok");
    }
    let mut body = String::new();
    for (check, ok) in &report {
        if *ok && verbose {
            body.push_str(&format!("[+]{check} ok\n"));
        } else if !*ok {
            body.push_str(&format!("[-]{check} failed\n"));
        }
    }
    if ready {
        body.push_str(&format!("{name} check passed\n"));
        text(StatusCode::OK, body)
    } else {
        body.push_str(&format!("{name} check failed\n"));
        text(StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// Whether the query string has a `verbose` key (`?verbose`, `?verbose=1`, `?a&verbose`).
fn has_verbose(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == "verbose")
    })
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    // Probe bodies are text; tell browsers not to sniff them as anything else.
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use telemetry::metric_event::{EventFields, MetricEvent};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    fn parse_reply(raw: &[u8]) -> Reply {
        let raw = String::from_utf8(raw.to_vec()).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("complete response head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    /// One request on a fresh connection with `Connection: close`, read to EOF.
    async fn request(addr: SocketAddr, method: &str, target: &str) -> Reply {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
            .await
            .expect("response within 10 s")
            .unwrap();
        parse_reply(&raw)
    }

    async fn get(addr: SocketAddr, target: &str) -> Reply {
        request(addr, "GET", target).await
    }

    struct Server {
        addr: SocketAddr,
        health: Arc<Health>,
        metrics: Arc<HostMetrics>,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Arc::new(Health::new(&["compiled", "upstream"]));
        let metrics = Arc::new(HostMetrics::new("0.1.0", "48.0.8"));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(
            listener,
            AdminContext::new(health.clone(), metrics.clone()),
            async {
                let _ = rx.await;
            },
        ));
        Server {
            addr,
            health,
            metrics,
            stop: Some(tx),
            task,
        }
    }

    #[tokio::test]
    async fn probes_follow_health_state() {
        let srv = start().await;
        let a = srv.addr;

        // Not started: alive, not ready, not started.
        let r = get(a, "/livez").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        assert_eq!(r.header("content-type"), Some(TEXT_PLAIN));
        let r = get(a, "/readyz").await;
        assert_eq!(r.status, 503);
        assert_eq!(
            r.body,
            "[-]started failed\n[-]compiled failed\n[-]upstream failed\nreadyz check failed\n"
        );
        assert_eq!(r.header("content-type"), Some(TEXT_PLAIN));
        let r = get(a, "/startupz").await;
        assert_eq!(r.status, 503);

        // Started, one check failing.
        srv.health.set_started();
        srv.health.set_check("compiled", true);
        let r = get(a, "/startupz").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = get(a, "/readyz?verbose").await;
        assert_eq!(r.status, 503);
        assert_eq!(
            r.body,
            "[+]started ok\n[+]compiled ok\n[-]upstream failed\n[+]draining ok\nreadyz check failed\n"
        );
        let r = get(a, "/healthz?verbose=1").await;
        assert_eq!(r.status, 503);
        assert!(r.body.ends_with("healthz check failed\n"), "{}", r.body);

        // Ready.
        srv.health.set_check("upstream", true);
        for path in ["/readyz", "/healthz", "/readyz?foo=bar"] {
            let r = get(a, path).await;
            assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{path}");
        }
        let r = get(a, "/readyz?x=1&verbose").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            "[+]started ok\n[+]compiled ok\n[+]upstream ok\n[+]draining ok\nreadyz check passed\n"
        );
        // `verbosely` is not `verbose`.
        let r = get(a, "/readyz?verbosely").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));

        // Draining: not ready, still alive and started.
        srv.health.set_draining();
        let r = get(a, "/readyz").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "[-]draining failed\nreadyz check failed\n");
        let r = get(a, "/readyz?verbose").await;
        assert_eq!(r.status, 503);
        assert!(r.body.contains("[-]draining failed\n"));
        let r = get(a, "/livez").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = get(a, "/startupz").await;
        assert_eq!(r.status, 200);
    }

    #[tokio::test]
    async fn metrics_endpoint() {
        let srv = start().await;
        srv.metrics.observe(&MetricEvent::new(EventFields {
            duration_s: 0.01,
            request_body_bytes: None,
            response_body_bytes: Some(5),
            method: "GET".into(),
            route: Some("/users/{id}".into()),
            status_code: Some(200),
            scheme: Some("http".into()),
            error_type: None,
            trace: None,
        }));
        srv.metrics.trap();
        let r = get(srv.addr, "/metrics").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert!(
            r.body
                .contains("# TYPE http_server_requests_total counter\n")
        );
        assert!(r.body.contains(
            "http_server_requests_total{http_request_method=\"GET\",http_route=\"/users/{id}\",http_response_status_code=\"200\",url_scheme=\"http\",error_type=\"\"} 1\n"
        ));
        assert!(r.body.contains("runtime_host_guest_traps_total 1\n"));
        assert!(r.body.contains(
            "runtime_host_build_info{version=\"0.1.0\",wasmtime_version=\"48.0.8\"} 1\n"
        ));
        assert_eq!(
            r.header("content-length")
                .map(|l| l.parse::<usize>().unwrap()),
            Some(r.body.len())
        );
    }

    #[tokio::test]
    async fn methods_and_unknown_paths() {
        let srv = start().await;
        let a = srv.addr;
        for path in [
            "/",
            "/metricsx",
            "/livez/",
            "/readyz/compiled",
            "/favicon.ico",
        ] {
            let r = get(a, path).await;
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(r.header("content-type"), Some(TEXT_PLAIN));
        }
        let r = request(a, "POST", "/nope").await;
        assert_eq!(r.status, 404);
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let r = request(a, method, "/livez").await;
            assert_eq!(r.status, 405, "{method}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
        // HEAD: same status and headers, no body.
        let r = request(a, "HEAD", "/livez").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "");
        assert_eq!(r.header("content-length"), Some("2"));
        let r = request(a, "HEAD", "/readyz").await;
        assert_eq!((r.status, r.body.as_str()), (503, ""));
        let r = request(a, "HEAD", "/metrics").await;
        assert_eq!((r.status, r.body.as_str()), (200, ""));
    }

    #[tokio::test]
    async fn keep_alive_and_shutdown() {
        let mut srv = start().await;
        // Two requests on one keep-alive connection.
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        for _ in 0..2 {
            s.write_all(b"GET /livez HTTP/1.1\r\nHost: admin\r\n\r\n")
                .await
                .unwrap();
            let n = s.read(&mut buf).await.unwrap();
            let r = parse_reply(&buf[..n]);
            assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        }

        // Shutdown: serve returns promptly, closing the idle connection and the listener.
        srv.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(3), &mut srv.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .expect("idle connection closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(TcpStream::connect(srv.addr).await.is_err());
    }

    #[test]
    fn verbose_query() {
        assert!(has_verbose(Some("verbose")));
        assert!(has_verbose(Some("verbose=")));
        assert!(has_verbose(Some("verbose=false")));
        assert!(has_verbose(Some("a=1&verbose")));
        assert!(!has_verbose(None));
        assert!(!has_verbose(Some("")));
        assert!(!has_verbose(Some("verbosely")));
        assert!(!has_verbose(Some("a=verbose")));
    }
}

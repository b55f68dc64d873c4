//! Serving: compile once, pre-instantiate, reuse instances (WASI 0.3 allows several
//! concurrent requests per instance), one store per instance, hyper HTTP/1.1 with keep-alive,
//! and clear limits (deadline, memory, concurrency, header and body size).

use crate::admin;
use crate::chain::LinkedPre;
use crate::cli::Args;
use crate::cli::ChainMode;
use crate::components::{self, Backend, Source};
use crate::engine::{self, EngineLimits};
use crate::guest_output::{GuestOutput, OutputSink};
use crate::health::Health;
use crate::metric_event::MetricEvent;
use crate::metrics::HostMetrics;
use crate::upstream::{self, Upstream};
use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use wasmtime::component::{GuestTaskId, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, Proxy, ProxyHandler, ProxyPre, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// The data of one store (one component instance).
pub struct StoreState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Hooks,
    limits: StoreLimits,
    stdout: GuestOutput,
    stderr: GuestOutput,
    /// Linked chains: the handler of every chain position, outermost first.
    pub(crate) chain: Vec<Arc<wasmtime_wasi_http::p3::bindings::Service>>,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outgoing HTTP of the guests: to the origin in upstream mode, else wasmtime's default.
struct Hooks {
    upstream: Option<Arc<Upstream>>,
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _result: IoFuture,
    ) -> Box<
        dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), wasmtime_wasi_http::Error>>
            + Send,
    > {
        match &self.upstream {
            Some(upstream) => {
                let upstream = upstream.clone();
                Box::new(async move {
                    let response = upstream.send(request).await?;
                    // The client's pool drives the connection; nothing more to poll here.
                    Ok((response, Box::new(async { Ok(()) }) as IoFuture))
                })
            }
            None => Box::new(async move {
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as IoFuture,
                ))
            }),
        }
    }
}

/// How a chain is instantiated.
enum ChainPre {
    /// One component composed with wac-graph.
    Composed(ProxyPre<StoreState>),
    /// Separate instances wired by the host.
    Linked(LinkedPre),
}

impl ChainPre {
    async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Proxy> {
        match self {
            ChainPre::Composed(pre) => pre.instantiate_async(store).await,
            ChainPre::Linked(pre) => Ok(Proxy::P3(pre.instantiate(store).await?)),
        }
    }
}

/// Everything a worker needs to create stores and instances.
struct Shared {
    engine: Engine,
    pre: ChainPre,
    env: Vec<(String, String)>,
    sink: Arc<OutputSink>,
    upstream: Option<Arc<Upstream>>,
    metrics: Arc<HostMetrics>,
    max_memory: usize,
    request_timeout: Duration,
    max_instance_reuse: usize,
    max_instance_concurrency: usize,
    /// Instances with work in progress (requests, or work after the response such as the
    /// middleware's log line); the shutdown drain waits for it to reach zero.
    busy_instances: Arc<AtomicUsize>,
}

impl Shared {
    fn new_store(&self) -> Store<StoreState> {
        let stdout = GuestOutput::stdout(&self.sink);
        let stderr = GuestOutput::stderr(&self.sink);
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.env)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        let state = StoreState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: Hooks {
                upstream: self.upstream.clone(),
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(self.max_memory)
                .trap_on_grow_failure(true)
                .build(),
            stdout,
            stderr,
            chain: Vec::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        // Yield to the host at every epoch tick so deadlines can fire during a busy loop.
        store.epoch_deadline_async_yield_and_update(1);
        store.set_epoch_deadline(1);
        store
    }
}

impl HandlerState for Shared {
    type StoreData = StoreState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<StoreState, Expiration, Worker>> {
        let start = Instant::now();
        let mut store = self.new_store();
        let proxy = tokio::time::timeout(self.request_timeout, self.pre.instantiate(&mut store))
            .await
            .map_err(|_| wasmtime::format_err!("instantiation timed out"))??;
        self.metrics.instantiated(start.elapsed());
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                idle_timeout: Duration::from_secs(5),
                request_timeout: self.request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
                busy_instances: self.busy_instances.clone(),
                busy: false,
            },
            state: Worker {
                max_reuse: self.max_instance_reuse,
                max_concurrency: self.max_instance_concurrency,
                request_timeout: self.request_timeout,
                metrics: self.metrics.clone(),
            },
        })
    }
}

/// Per-instance policy: how many requests, how long, and what to do when it ends.
struct Worker {
    max_reuse: usize,
    max_concurrency: usize,
    request_timeout: Duration,
    metrics: Arc<HostMetrics>,
}

impl WorkerState for Worker {
    type StoreData = StoreState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrency {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, StoreState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<StoreState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            let text = format!("{error:?}");
            if text.contains("timed out") {
                tracing::warn!("dropped an instance whose guest ran past the request timeout");
            } else {
                self.metrics.trap();
                tracing::error!(error = %format!("{error:#}"), "guest trapped; its instance was dropped");
            }
        }
        let state = store.into_data();
        state.stdout.flush_partial();
        state.stderr.flush_partial();
    }
}

/// Second line of defence for deadlines (see `WorkerState::on_request_start` in
/// wasmtime-wasi-http): expire the whole instance once its newest request is overdue.
struct Expiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Shared count of busy instances, and whether this one is counted in it.
    busy_instances: Arc<AtomicUsize>,
    busy: bool,
}

impl Drop for Expiration {
    fn drop(&mut self) {
        if self.busy {
            self.busy_instances.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        // The worker polls this whenever it waits, with its current status.
        let busy = status != WorkerStatus::Idle;
        if busy != self.busy {
            self.busy = busy;
            if busy {
                self.busy_instances.fetch_add(1, Ordering::SeqCst);
            } else {
                self.busy_instances.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let timeout = match status {
            WorkerStatus::Idle => self.idle_timeout,
            // Work after the response (streaming a body, writing the log line) gets the
            // same allowance as a request.
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout * 2,
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// A prepared server: components compiled and pre-instantiated, sockets bound.
pub struct Server {
    handler: ProxyHandler<Shared>,
    listener: TcpListener,
    admin_listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<HostMetrics>,
    limits: RequestLimits,
    shutdown_grace: Duration,
    upstream: Option<Arc<Upstream>>,
    description: String,
    /// OTLP export, flushed at shutdown (issue 10).
    otlp: Option<Arc<crate::otlp::Otlp>>,
}

#[derive(Clone)]
struct RequestLimits {
    requests: Arc<Semaphore>,
    max_header_bytes: usize,
    max_body_bytes: u64,
    draining: Arc<AtomicBool>,
    next_id: Arc<AtomicU64>,
    request_timeout: Duration,
}

/// Check names shown by `/readyz?verbose`.
const CHECK_COMPONENTS: &str = "components";
const CHECK_UPSTREAM: &str = "upstream";

impl Server {
    /// Loads, checks, composes, compiles and pre-instantiates the components and binds both
    /// addresses. Every user mistake ends here with a clear error.
    pub async fn prepare(args: &Args) -> Result<Server> {
        args.validate()?;
        let env = args.component_env()?;
        check_middleware_settings(&env, args.strict_config)?;

        let metrics = Arc::new(HostMetrics::new(
            env!("CARGO_PKG_VERSION"),
            wasmtime_version(),
        ));
        let middlewares = components::middleware_sources(&args.middleware, args.no_middleware)?;
        let upstream = match &args.upstream {
            Some(url) => Some(Arc::new(Upstream::new(
                url,
                args.upstream_connect_timeout,
                metrics.clone(),
            )?)),
            None => None,
        };
        if let Some(upstream) = &upstream
            && !upstream.reachable().await
        {
            bail!(
                "upstream {} is not reachable (nothing accepts connections there)",
                upstream.origin()
            );
        }
        let backend = match (&upstream, &args.app) {
            (Some(_), _) => Backend::Upstream,
            (None, Some(path)) => Backend::App(Source::from_file(path)?),
            (None, None) => Backend::App(Source::embedded("demo app", components::EMBEDDED_APP)),
        };
        let description = describe(&middlewares, &backend, upstream.as_deref());
        let (bytes, imports_handler) = components::compose(&middlewares, &backend)?;

        let max_instances =
            (args.max_concurrent_requests / args.max_instance_concurrency + 16).min(1000) as u32;
        let engine = engine::new_engine(&EngineLimits {
            max_memory: args.max_memory,
            max_instances,
            perfmap: args.perfmap,
        })?;
        let cache_dir = if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(engine::default_cache_dir)
        };
        let compile_start = Instant::now();
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("adding WASI 0.2 to the linker")?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("adding WASI 0.3 to the linker")?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("adding wasi:http 0.3 to the linker")?;
        let pre = match args.chain {
            ChainMode::Composed => {
                let component = engine::compile(&engine, &bytes, cache_dir.as_deref())?;
                if imports_handler {
                    upstream::add_handler_to_linker(&mut linker)?;
                }
                let instance_pre = linker.instantiate_pre(&component).map_err(|error| {
                    anyhow::anyhow!(
                        "the components cannot run here: {error:#}\n(a component that imports `{}` needs a middleware chain or --upstream in front of it)",
                        components::HANDLER
                    )
                })?;
                let pre = wasmtime_wasi_http::p3::bindings::ServicePre::new(instance_pre).map_err(
                    |error| {
                        anyhow::anyhow!(
                            "the chain does not export `{}`: {error:#}",
                            components::HANDLER
                        )
                    },
                )?;
                ChainPre::Composed(ProxyPre::P3(pre))
            }
            ChainMode::Linked => {
                let mut compiled = Vec::new();
                for source in middlewares.iter().chain(match &backend {
                    Backend::App(app) => Some(app),
                    Backend::Upstream => None,
                }) {
                    compiled.push(
                        engine::compile(&engine, &source.bytes, cache_dir.as_deref())
                            .with_context(|| source.origin.clone())?,
                    );
                }
                let add_upstream =
                    |linker: &mut Linker<StoreState>| upstream::add_handler_to_linker(linker);
                ChainPre::Linked(LinkedPre::new(
                    &linker,
                    &compiled,
                    if imports_handler {
                        Some(&add_upstream)
                    } else {
                        None
                    },
                )?)
            }
        };
        tracing::debug!(elapsed = ?compile_start.elapsed(), "components ready");

        let listener = bind(args.addr, "--addr").await?;
        let admin_listener = bind(args.admin_addr, "--admin-addr").await?;

        let health = Arc::new(Health::new(if upstream.is_some() {
            &[CHECK_COMPONENTS, CHECK_UPSTREAM]
        } else {
            &[CHECK_COMPONENTS]
        }));

        // OTLP export (issue 10): fed by the sink, flushed at shutdown.
        let otlp = crate::otlp::Otlp::from_args(args, metrics.otlp().clone())?;
        let sink = OutputSink::with_otlp(
            metrics.clone(),
            args.print_metric_events,
            otlp.clone(),
            args.print_span_events,
        );
        let shared = Shared {
            engine: engine.clone(),
            pre,
            env,
            sink,
            upstream: upstream.clone(),
            metrics: metrics.clone(),
            max_memory: args.max_memory as usize,
            request_timeout: args.request_timeout,
            max_instance_reuse: args.max_instance_reuse,
            max_instance_concurrency: args.max_instance_concurrency,
            busy_instances: Arc::new(AtomicUsize::new(0)),
        };

        // One instantiation now proves the components can run before any client waits.
        let mut probe = shared.new_store();
        shared
            .pre
            .instantiate(&mut probe)
            .await
            .map_err(anyhow::Error::from)
            .context("instantiating the components")?;
        drop(probe);
        health.set_check(CHECK_COMPONENTS, true);

        spawn_epoch_ticker(engine);

        Ok(Server {
            handler: ProxyHandler::new(shared),
            listener,
            admin_listener,
            health,
            metrics,
            limits: RequestLimits {
                requests: Arc::new(Semaphore::new(args.max_concurrent_requests)),
                max_header_bytes: args.max_header_bytes as usize,
                max_body_bytes: args.max_body_bytes,
                draining: Arc::new(AtomicBool::new(false)),
                next_id: Arc::new(AtomicU64::new(1)),
                request_timeout: args.request_timeout,
            },
            shutdown_grace: args.shutdown_grace,
            upstream,
            description,
            otlp,
        })
    }

    /// The bound HTTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener.local_addr().expect("bound listener")
    }

    /// Serves until `shutdown` resolves, then drains: readiness turns 503 at once, no new
    /// connections are accepted, in-flight requests get `shutdown_grace` to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server {
            handler,
            listener,
            admin_listener,
            health,
            metrics,
            limits,
            shutdown_grace,
            upstream,
            description,
            otlp,
        } = self;

        tracing::info!(
            addr = %listener.local_addr()?,
            admin_addr = %admin_listener.local_addr()?,
            serving = %description,
            "runtime-host serving"
        );

        let (stop_tx, stop_rx) = watch::channel(false);
        // The admin server outlives the drain, so probes see /readyz turn 503 while
        // in-flight requests finish.
        let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
        let admin_task = tokio::spawn(admin::serve(
            admin_listener,
            health.clone(),
            metrics.clone(),
            stopped(admin_stop_rx),
        ));
        if let Some(upstream) = upstream {
            tokio::spawn(watch_upstream(upstream, health.clone(), stop_rx.clone()));
        }
        health.set_started();

        let mut connections = tokio::task::JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(pair) => pair,
                        Err(error) => {
                            // Out of file descriptors and the like: keep serving the others.
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(
                        stream,
                        handler.clone(),
                        limits.clone(),
                        metrics.clone(),
                        stop_rx.clone(),
                    ));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }

        tracing::info!(in_flight = connections.len(), grace = ?shutdown_grace, "draining");
        health.set_draining();
        limits.draining.store(true, Ordering::SeqCst);
        drop(listener);
        let _ = stop_tx.send(true);
        let grace_end = tokio::time::Instant::now() + shutdown_grace;
        let drained = tokio::time::timeout_at(grace_end, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = connections.len(),
                "grace period over; closing the remaining connections"
            );
            connections.abort_all();
        }
        // The guests finish what they do after a response (the middleware writes its log
        // line and metric event then) before the process exits, within the grace period.
        let busy = &handler.state().busy_instances;
        let finished = tokio::time::timeout_at(grace_end, async {
            while busy.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if finished.is_err() {
            tracing::warn!("grace period over; instances still busy are dropped");
        }
        // What the exporters hold is sent within the rest of the grace period (issue 10).
        if let Some(otlp) = &otlp {
            otlp.shutdown(grace_end).await;
        }
        let _ = admin_stop_tx.send(true);
        let _ = admin_task.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves once the flag turns true (or its sender is gone).
async fn stopped(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({flag})"))
}

/// The wasmtime version this host embeds (a `runtime_host_build_info` label).
pub fn wasmtime_version() -> &'static str {
    "48.0.8"
}

fn describe(middlewares: &[Source], backend: &Backend, upstream: Option<&Upstream>) -> String {
    let mut parts: Vec<String> = middlewares.iter().map(|m| m.origin.clone()).collect();
    parts.push(match (backend, upstream) {
        (Backend::App(app), _) => app.origin.clone(),
        (Backend::Upstream, Some(u)) => format!("upstream {}", u.origin()),
        (Backend::Upstream, None) => "upstream".into(),
    });
    parts.join(" -> ")
}

/// Reports invalid `EDGE_OBS_*` settings at start-up, with the same parser the component
/// uses, so mistakes show before the first request.
fn check_middleware_settings(env: &[(String, String)], strict: bool) -> Result<()> {
    let (_, issues) = edge_observability::Middleware::from_env(env.iter().cloned());
    for issue in &issues {
        tracing::error!(
            variable = %issue.variable,
            value = %issue.value,
            reason = %issue.reason,
            default_used = %issue.default_used,
            "invalid middleware setting"
        );
    }
    if strict && !issues.is_empty() {
        bail!(
            "{} invalid middleware setting(s) (--strict-config)",
            issues.len()
        );
    }
    Ok(())
}

fn spawn_epoch_ticker(engine: Engine) {
    // A plain thread: it must tick even when every tokio worker is busy running guests.
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            loop {
                std::thread::sleep(engine::EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}

async fn watch_upstream(upstream: Arc<Upstream>, health: Arc<Health>, stop: watch::Receiver<bool>) {
    let mut was_ok = None;
    loop {
        let ok = upstream.reachable().await;
        health.set_check(CHECK_UPSTREAM, ok);
        if was_ok != Some(ok) {
            if ok {
                tracing::info!(origin = %upstream.origin(), "upstream reachable");
            } else {
                tracing::warn!(origin = %upstream.origin(), "upstream unreachable; /readyz answers 503");
            }
            was_ok = Some(ok);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = stopped(stop.clone()) => return,
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    handler: ProxyHandler<Shared>,
    limits: RequestLimits,
    metrics: Arc<HostMetrics>,
    stop: watch::Receiver<bool>,
) {
    let max_header = limits.max_header_bytes;
    let max_buf = max_header.max(8192);
    let rejections = metrics.clone();
    let service = hyper::service::service_fn(move |request| {
        let handler = handler.clone();
        let limits = limits.clone();
        let metrics = metrics.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(request, handler, limits, metrics).await) }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(max_buf)
        // max_buf_size alone lets heads of up to about twice the limit through.
        .max_header_size(max_header)
        // Slow clients (slowloris) may not hold a connection open forever sending headers.
        .header_read_timeout(Duration::from_secs(10))
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(stop) => {
            // Finish the request in flight, then close instead of keeping the connection alive.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // hyper answered these itself (431/414, 400) without calling the service.
        if error.is_parse_too_large() {
            rejections.rejected("header_too_large");
            tracing::debug!("request header section too large");
        } else if error.is_parse() {
            rejections.rejected("bad_request");
            tracing::debug!(%error, "malformed request");
        } else if !error.is_incomplete_message() && !error.is_canceled() {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}

type HostBody = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

async fn handle(
    request: hyper::Request<hyper::body::Incoming>,
    handler: ProxyHandler<Shared>,
    limits: RequestLimits,
    metrics: Arc<HostMetrics>,
) -> hyper::Response<HostBody> {
    if limits.draining.load(Ordering::Relaxed) {
        metrics.rejected("draining");
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is shutting down.",
            Some(1),
        );
    }
    // Over the limit, answer at once: a bounded number of requests in flight keeps memory
    // bounded and tells clients (and load balancers) to come back.
    let Ok(permit) = limits.requests.clone().try_acquire_owned() else {
        metrics.rejected("overload");
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is at its concurrency limit.",
            Some(1),
        );
    };
    if request.method() == http::Method::CONNECT {
        // hyper takes a 2xx answer to CONNECT for an established tunnel and fails to send it
        // (the client got nothing); runtime-host serves requests, it does not tunnel.
        metrics.observe(&host_answer(
            "CONNECT",
            StatusCode::NOT_IMPLEMENTED,
            "501",
            Duration::ZERO,
        ));
        return problem(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not supported.",
            None,
        );
    }
    if let Some(length) = edge_observability::exchange::content_length(request.headers())
        && length > limits.max_body_bytes
    {
        metrics.rejected("body_too_large");
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.",
            None,
        );
    }

    let method = request.method().clone();
    let active = metrics.active_request(&method, SCHEME);
    let start = Instant::now();
    let id = limits.next_id.fetch_add(1, Ordering::Relaxed);

    let request = match absolute_uri(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let max_body = limits.max_body_bytes;
    let request = request.map(move |body| {
        Limited::new(body, max_body as usize)
            .map_err(move |_| wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body)))
            .boxed_unsync()
    });

    // The instance's worker expires the request at the deadline (`on_request_start`), which
    // also stops that instance from taking new requests. This outer timeout is the backstop
    // for a guest the worker cannot interrupt at once (a blocking host call): the client gets
    // its answer shortly after the deadline and the worker's expiration drops the instance.
    // It fires a little later so that, normally, the worker has marked the instance first: a
    // request the client sends right after its 504 must not be queued on the stuck instance.
    let backstop = limits.request_timeout + BACKSTOP_MARGIN;
    let outcome = tokio::time::timeout(backstop, handler.handle((), request)).await;
    let outcome = match outcome {
        Ok(result) => result,
        Err(_) => Err(ExpirationError.into()),
    };
    match outcome {
        Ok(response) => response.map(|body| {
            GuardedBody {
                inner: body,
                _guards: (permit, active),
            }
            .boxed_unsync()
        }),
        Err(error) => {
            let (status, error_type, detail) = if error.is::<ExpirationError>() {
                metrics.timeout();
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "The application did not answer in time.",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "guest_trap",
                    "The application failed.",
                )
            };
            tracing::warn!(request = id, %method, error = %format!("{error:#}"), "request failed in the host");
            // The guest could not report this request, so the host records it.
            metrics.observe(&host_answer(
                crate::metric_event::normalize_method(method.as_str()),
                status,
                error_type,
                start.elapsed(),
            ));
            drop(active);
            drop(permit);
            problem(status, detail, None)
        }
    }
}

/// The scheme of every request: runtime-host serves plain HTTP (no TLS termination).
const SCHEME: &str = "http";

/// The metric event of a request the host answered itself, in place of the guest's.
fn host_answer(
    method: &str,
    status: StatusCode,
    error_type: &str,
    duration: Duration,
) -> MetricEvent {
    MetricEvent {
        duration_s: duration.as_secs_f64(),
        request_body_bytes: None,
        response_body_bytes: None,
        method: method.to_owned(),
        route: None,
        status_code: Some(status.as_u16()),
        scheme: Some(SCHEME.to_owned()),
        error_type: Some(error_type.to_owned()),
    }
}

/// How much later than the worker's deadline the host answers 504 by itself: a few epoch
/// ticks, the time the worker needs to interrupt a busy guest and expire its request.
const BACKSTOP_MARGIN: Duration = Duration::from_millis(200);

/// Gives the guest an absolute URI (scheme and authority from `Host`), as hosts do.
#[allow(clippy::result_large_err)]
fn absolute_uri(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Request<hyper::body::Incoming>, hyper::Response<HostBody>> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.scheme().is_none() {
        let authority = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok());
        let mut uri = http::uri::Parts::from(parts.uri);
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority =
            Some(authority.unwrap_or_else(|| http::uri::Authority::from_static("localhost")));
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        parts.uri = match http::Uri::from_parts(uri) {
            Ok(uri) => uri,
            Err(_) => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "The request target is invalid.",
                    None,
                ));
            }
        };
    }
    Ok(hyper::Request::from_parts(parts, body))
}

/// An `application/problem+json` answer from the host itself.
fn problem(
    status: StatusCode,
    detail: &str,
    retry_after: Option<u32>,
) -> hyper::Response<HostBody> {
    let body = format!(
        r#"{{"type":"about:blank","title":"{}","status":{},"detail":"{}"}}"#,
        status.canonical_reason().unwrap_or(""),
        status.as_u16(),
        detail
    );
    let mut response = hyper::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
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

//! The data of one store (one instance of the chain): WASI contexts, outgoing-HTTP hooks,
//! memory limits and the guests' output, and how a new store is made.

use crate::serving::guest_output::{GuestOutput, OutputSink, Role};
use crate::serving::outbound::Outbound;
use crate::serving::upstream::{Upstream, UpstreamView};
use http_body_util::BodyExt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::WasiCliCtxView;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// The data of one store.
pub struct StoreState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// The guests' own requests (`wasi:http/client`).
    hooks: Hooks,
    /// The host-provided handler import of upstream mode: to the origin.
    upstream: UpstreamHooks,
    limits: MemoryLimiter,
    stdout: GuestOutput,
    stderr: GuestOutput,
    /// The app's own stdout, kept apart from the middleware's (see [`crate::serving::app_output`]).
    pub(crate) app_stdout: GuestOutput,
    /// The WASI context whose stdout is [`StoreState::app_stdout`], for an app's
    /// `wasi:cli/stdout@0.3.0`; made on first use.
    app_wasi: Option<WasiCtx>,
    /// Linked chains: the handler of every chain position, outermost first.
    pub(crate) chain: Vec<Arc<wasmtime_wasi_http::p3::bindings::Service>>,
}

impl StoreState {
    /// Set once a guest of this store was refused memory: a request that fails on it failed
    /// for the memory limit, not for a bug.
    pub(crate) fn memory_exceeded(&self) -> Arc<AtomicBool> {
        self.limits.exceeded.clone()
    }

    /// A new handle to the app's stdout in the resource table.
    pub(crate) fn push_app_stdout(
        &mut self,
    ) -> wasmtime::Result<Resource<wasmtime_wasi::p2::DynOutputStream>> {
        use wasmtime_wasi::cli::StdoutStream;
        let stream = self.app_stdout.p2_stream();
        Ok(self.table.push(stream)?)
    }

    /// The app's WASI 0.3 stdout (see [`crate::serving::app_output`]).
    pub(crate) fn app_cli(&mut self) -> WasiCliCtxView<'_> {
        let stdout = &self.app_stdout;
        let wasi = self
            .app_wasi
            .get_or_insert_with(|| WasiCtxBuilder::new().stdout(stdout.clone()).build());
        WasiCliCtxView {
            ctx: wasi.cli(),
            table: &mut self.table,
        }
    }

    /// Passes on the guests' unfinished last lines (when the store goes away).
    pub(crate) fn flush_output(&self) {
        self.stdout.flush_partial();
        self.stderr.flush_partial();
        self.app_stdout.flush_partial();
    }
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

impl UpstreamView for StoreState {
    fn upstream_http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.upstream,
        }
    }
}

/// wasmtime's store limits, remembering whether a memory growth was refused.
struct MemoryLimiter {
    inner: StoreLimits,
    exceeded: Arc<AtomicBool>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let result = self.inner.memory_growing(current, desired, maximum);
        if !matches!(result, Ok(true)) {
            self.exceeded.store(true, Ordering::Relaxed);
        }
        result
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
}

/// The guests' own outgoing requests (`wasi:http/client`: an app's calls, the middleware's
/// OTLP export): wasmtime's default client, to the hosts `--allowed-outbound-hosts` allows
/// (others get `HttpRequestDenied`, as under Spin).
#[derive(Clone)]
struct Hooks {
    outbound: Arc<Outbound>,
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

type SendFuture = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), wasmtime_wasi_http::Error>>
        + Send,
>;

/// The default rule, without the default method's cost: it builds a new `Arc` closure on
/// every call, and it is called for every header field a guest sets (about 20 allocations
/// per request through a middleware).
fn is_forbidden_header(name: &http::HeaderName) -> bool {
    wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

impl WasiHttpHooks for Hooks {
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        is_forbidden_header(name)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _result: IoFuture,
    ) -> SendFuture {
        if !self.outbound.allowed.allows(request.uri()) {
            self.outbound.refusals.refused(request.uri());
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}

/// What the host-provided handler import sends through (upstream mode): the origin's
/// keep-alive pool. Only the request the chain forwards goes there, never a guest's own.
struct UpstreamHooks {
    upstream: Option<Arc<Upstream>>,
    guests: Hooks,
}

impl WasiHttpHooks for UpstreamHooks {
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        is_forbidden_header(name)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        result: IoFuture,
    ) -> SendFuture {
        match &self.upstream {
            Some(upstream) => {
                let upstream = upstream.clone();
                Box::new(async move {
                    let response = upstream.send(request).await?;
                    // The client's pool drives the connection; nothing more to poll here.
                    Ok((response, Box::new(async { Ok(()) }) as IoFuture))
                })
            }
            // The import is only linked in upstream mode.
            None => self.guests.send_request(request, options, result),
        }
    }
}

/// What every store of a server gets.
pub struct StoreTemplate {
    /// The engine stores are made in.
    pub engine: Engine,
    /// The guests' environment.
    pub env: Vec<(String, String)>,
    /// Where the guests' lines go.
    pub sink: Arc<OutputSink>,
    /// The origin in upstream mode.
    pub upstream: Option<Arc<Upstream>>,
    /// Largest linear memory of one instance, in bytes.
    pub max_memory: usize,
    /// Where the guests' own requests may go.
    pub outbound: Arc<Outbound>,
    /// Who writes to the store's own stdout: the middleware, or (with no middleware in the
    /// chain) the app.
    pub stdout_role: Role,
}

impl StoreTemplate {
    /// A new store with its own output buffers, limits and epoch deadline.
    pub fn new_store(&self) -> Store<StoreState> {
        let stdout = GuestOutput::stdout(&self.sink, self.stdout_role);
        let stderr = GuestOutput::stderr(&self.sink);
        let app_stdout = GuestOutput::stdout(&self.sink, Role::App);
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.env)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        let state = StoreState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: Hooks {
                outbound: self.outbound.clone(),
            },
            upstream: UpstreamHooks {
                upstream: self.upstream.clone(),
                guests: Hooks {
                    outbound: self.outbound.clone(),
                },
            },
            limits: MemoryLimiter {
                inner: StoreLimitsBuilder::new()
                    .memory_size(self.max_memory)
                    .trap_on_grow_failure(true)
                    .build(),
                exceeded: Arc::new(AtomicBool::new(false)),
            },
            stdout,
            stderr,
            app_stdout,
            app_wasi: None,
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

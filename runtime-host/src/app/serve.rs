//! The server, top-down: [`Server::prepare`] loads and checks the chain, links and
//! pre-instantiates it, binds the addresses and proves one instantiation works; then
//! [`Server::run`] accepts connections until shutdown and drains.
//!
//! The pieces live in their own layers: serving ([`crate::serving`]: store data, the instance
//! pool policy, per-request handling and the host's own answers), telemetry (the
//! [`Pipeline`] every guest line feeds) and the admin server ([`crate::admin`]).

use crate::admin::dashboard::auth::{AdminHosts, AdminToken};
use crate::admin::dashboard::{ChainInfo, Dashboard};
use crate::admin::{self, AdminContext};
use crate::app::settings;
use crate::cli::{Args, ChainMode};
use crate::health::Health;
use crate::serving::answers::HostAnswers;
use crate::serving::app_output;
use crate::serving::chain::LinkedPre;
use crate::serving::components::{self, AppStdout, Backend, Composition, Source};
use crate::serving::engine;
use crate::serving::guest_output::{OutputSink, Role};
use crate::serving::outbound::AllowedHosts;
use crate::serving::pool::{ChainPre, InstanceFactory};
use crate::serving::rate_limit::RateLimiter;
use crate::serving::request::{self, Requests, stopped};
use crate::serving::store::{StoreState, StoreTemplate};
use crate::serving::upstream::{self, Upstream};
use anyhow::{Context as _, Result, bail};
use edge_observability::Middleware;
use edge_observability::otlp::Signal;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use telemetry::metrics::HostMetrics;
use telemetry::pipeline::Pipeline;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi_http::handler::{ProxyHandler, ProxyPre};

/// A prepared server: components compiled and pre-instantiated, sockets bound.
pub struct Server {
    requests: Arc<Requests>,
    listener: TcpListener,
    admin_listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<HostMetrics>,
    shutdown_grace: Duration,
    shutdown_delay: Duration,
    upstream: Option<Arc<Upstream>>,
    description: String,
    /// The admin page's state, unless `--no-admin-page`.
    dashboard: Option<Arc<Dashboard>>,
    admin_token: Option<AdminToken>,
    admin_hosts: AdminHosts,
    /// `--max-connections`, as the open files limit allows.
    max_connections: usize,
    /// Guest lines in, metrics and exports out; flushed at shutdown.
    pipeline: Arc<Pipeline>,
}

/// Check names shown by `/readyz?verbose`.
const CHECK_COMPONENTS: &str = "components";
const CHECK_UPSTREAM: &str = "upstream";

/// The chain to serve, loaded and checked.
struct LoadedChain {
    composition: Composition,
    /// Each component on its own, for `--chain linked`: the middlewares, then the app.
    parts: Vec<Source>,
    has_app: bool,
    has_middleware: bool,
    upstream: Option<Arc<Upstream>>,
    description: String,
    /// What the admin page shows of the chain.
    info: ChainInfo,
}

impl Server {
    /// Loads, checks, composes, compiles and pre-instantiates the components and binds both
    /// addresses. Every user mistake ends here with a clear error.
    pub async fn prepare(args: &Args) -> Result<Server> {
        args.validate()?;
        let mut env = args.component_env()?;
        // `/metrics` is made from the middleware's metric event lines, which it leaves out when
        // it exports metrics itself: keep them, unless the user chose.
        if !env.iter().any(|(k, _)| k == "EDGE_OBS_METRICS") {
            env.push(("EDGE_OBS_METRICS".into(), "on".into()));
        }
        let middleware = check_middleware_settings(&env, args.strict_config)?;
        // The same parser the component runs tells which signals it exports itself; the host
        // then exports none of those, so nothing is sent twice.
        let component_exports: Vec<Signal> = if args.no_middleware {
            Vec::new()
        } else {
            let otlp = &middleware.config().otlp;
            Signal::ALL
                .into_iter()
                .filter(|s| otlp.exports(*s))
                .collect()
        };
        let outbound = Arc::new(settings::outbound(args)?);
        warn_of_refused_export(&middleware, &outbound.allowed);
        let page = settings::dashboard(args);
        // The admin page's request list is kept only while the page is on.
        let recent_requests = if page.is_some() {
            args.recent_requests
        } else {
            0
        };
        let pipeline = Pipeline::start(settings::pipeline(
            args,
            recent_requests,
            &component_exports,
        ))?;
        let metrics = pipeline.metrics().clone();

        let chain = load_chain(args, &middleware, &metrics).await?;
        let engine = engine::new_engine(&settings::engine(args))?;
        let pre = link_chain(args, &engine, &chain)?;

        let listener = bind(args.addr, "--addr").await?;
        let admin_listener = bind(args.admin_addr, "--admin-addr").await?;
        let health = Arc::new(Health::new(if chain.upstream.is_some() {
            &[CHECK_COMPONENTS, CHECK_UPSTREAM]
        } else {
            &[CHECK_COMPONENTS]
        }));

        // The admin page: its state, and the access lines the pipeline keeps for it.
        let dashboard = page.map(|config| {
            Dashboard::new(
                &config,
                settings::limits(args),
                &env,
                chain.info.clone(),
                health.clone(),
                metrics.clone(),
                pipeline.recent().cloned(),
            )
        });
        let admin_token = settings::admin_token(args, admin_listener.local_addr()?)?;
        let sink = OutputSink::new(pipeline.clone());
        let factory = InstanceFactory {
            stores: StoreTemplate {
                engine: engine.clone(),
                env,
                sink: sink.clone(),
                upstream: chain.upstream.clone(),
                max_memory: args.max_memory as usize,
                outbound: outbound.clone(),
                // Library mode: the app is its own middleware.
                stdout_role: if chain.has_middleware || args.library_mode {
                    Role::Middleware
                } else {
                    Role::App
                },
            },
            pre,
            metrics: metrics.clone(),
            limits: settings::pool(args),
            busy_instances: Arc::new(AtomicUsize::new(0)),
            stopped: Arc::new(AtomicBool::new(false)),
            slot_freed: Arc::default(),
        };
        probe(&factory).await?;
        // The limiter finds the client address with the middleware's own settings.
        let rate_limiter = args.rate_limit.map(|rate| {
            RateLimiter::new(
                rate,
                args.rate_limit_burst,
                args.rate_limit_key.clone(),
                middleware.config().client_addr.clone(),
                args.rate_limit_max_keys,
                metrics.clone(),
            )
            .start()
        });
        health.set_check(CHECK_COMPONENTS, true);
        if let Some(upstream) = &chain.upstream {
            health.set_check(CHECK_UPSTREAM, upstream.reachable().await);
        }
        spawn_epoch_ticker(engine);

        Ok(Server {
            requests: Arc::new(Requests {
                handler: ProxyHandler::new(factory),
                in_flight: Arc::new(Semaphore::new(args.max_concurrent_requests)),
                max_header_bytes: args.max_header_bytes as usize,
                max_body_bytes: args.max_body_bytes,
                draining: Arc::new(AtomicBool::new(false)),
                request_timeout: args.request_timeout,
                metrics: metrics.clone(),
                answers: HostAnswers::new(middleware, sink),
                rate_limiter,
                upstream: chain.upstream.clone(),
            }),
            listener,
            admin_listener,
            health,
            metrics,
            shutdown_grace: args.shutdown_grace,
            shutdown_delay: args.shutdown_delay,
            upstream: chain.upstream,
            description: chain.description,
            dashboard,
            admin_token,
            admin_hosts: AdminHosts::new(&args.admin_host),
            max_connections: connection_cap(args.max_connections),
            pipeline,
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

    /// Serves until `shutdown` resolves, then drains: readiness turns 503 at once; new
    /// connections are still accepted for the shutdown delay (so load balancers notice
    /// first), then no more; in-flight requests get the grace period to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server {
            requests,
            listener,
            admin_listener,
            health,
            metrics,
            shutdown_grace,
            shutdown_delay,
            upstream,
            description,
            dashboard,
            admin_token,
            admin_hosts,
            max_connections,
            pipeline,
        } = self;

        let addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;

        let (stop_tx, stop_rx) = watch::channel(false);
        // The admin server outlives the drain, so probes see /readyz turn 503 while
        // in-flight requests finish.
        let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
        let admin = AdminContext {
            dashboard,
            token: admin_token,
            hosts: admin_hosts,
            ..AdminContext::new(health.clone(), metrics.clone())
        };
        let admin_task = tokio::spawn(admin::serve(admin_listener, admin, stopped(admin_stop_rx)));
        if let Some(upstream) = upstream {
            tokio::spawn(watch_upstream(upstream, health.clone(), stop_rx.clone()));
        }
        health.set_started();
        // Said once ready: whoever waits for this line may send requests and expect /readyz
        // to answer 200.
        tracing::info!(
            %addr,
            %admin_addr,
            serving = %description,
            "runtime-host serving"
        );

        let mut connections = tokio::task::JoinSet::new();
        let mut at_cap_said = false;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut accept_until: Option<tokio::time::Instant> = None;
        loop {
            let delay_over = async {
                match accept_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown, if accept_until.is_none() => {
                    health.set_draining();
                    if shutdown_delay.is_zero() {
                        break;
                    }
                    tracing::info!(delay = ?shutdown_delay, "readiness is 503; still accepting connections for the shutdown delay");
                    accept_until = Some(tokio::time::Instant::now() + shutdown_delay);
                }
                () = delay_over => break,
                // At the cap, new connections wait in the backlog: slow clients holding
                // connections cannot take the file descriptors the probes need.
                accepted = listener.accept(), if connections.len() < max_connections => {
                    if connections.len() + 1 == max_connections && !at_cap_said {
                        tracing::warn!(max_connections, "connection cap reached; new connections wait until one closes (--max-connections)");
                        at_cap_said = true;
                    }
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(error) => {
                            // Out of file descriptors and the like: keep serving the others.
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    connections.spawn(request::serve_connection(
                        stream,
                        peer,
                        requests.clone(),
                        stop_rx.clone(),
                    ));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }

        // Flags first, then the line: whoever reads "draining" may rely on it being in force.
        health.set_draining();
        requests.draining.store(true, Ordering::SeqCst);
        tracing::info!(in_flight = connections.len(), grace = ?shutdown_grace, "draining");
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
        let busy = &requests.handler.state().busy_instances;
        let finished = tokio::time::timeout_at(grace_end, async {
            while busy.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if finished.is_err() {
            tracing::warn!("grace period over; instances still busy are dropped");
        }
        // What the exporters hold is sent within the rest of the grace period.
        pipeline.shutdown(grace_end).await;
        let _ = admin_stop_tx.send(true);
        let _ = admin_task.await;
        // From here the runtime lets the idle instances go; that is no trap.
        requests
            .handler
            .state()
            .stopped
            .store(true, Ordering::SeqCst);
        tracing::info!("stopped");
        Ok(())
    }
}

/// Step 1: the components (files or embedded), the upstream origin, and their composition.
async fn load_chain(
    args: &Args,
    middleware: &Middleware,
    metrics: &Arc<HostMetrics>,
) -> Result<LoadedChain> {
    let middlewares = components::middleware_sources(&args.middleware, args.no_middleware)?;
    let upstream = match &args.upstream {
        Some(url) => Some(Arc::new(Upstream::new(
            url,
            args.upstream_connect_timeout,
            metrics.clone(),
            middleware.config().request_id.header.clone(),
        )?)),
        None => None,
    };
    if let Some(upstream) = &upstream
        && !upstream.reachable().await
    {
        if args.require_upstream {
            bail!(
                "upstream {} is not reachable (nothing accepts connections there; --require-upstream)",
                upstream.origin()
            );
        }
        // In Kubernetes an exit here would be a crash loop; not ready is the honest state.
        tracing::warn!(
            origin = %upstream.origin(),
            "upstream not reachable yet; serving with /readyz at 503 until it is"
        );
    }
    let backend = match (&upstream, &args.app) {
        (Some(_), _) => Backend::Upstream,
        (None, Some(path)) => Backend::App(Source::from_file(path)?),
        (None, None) => Backend::App(Source::embedded("demo app", components::EMBEDDED_APP)),
    };
    let description = describe(&middlewares, &backend, upstream.as_deref());
    let info = settings::chain_info(
        &middlewares,
        &backend,
        upstream.as_ref().map(|u| u.origin()),
        args.chain,
    );
    let composition = components::compose(&middlewares, &backend, AppStdout::Apart)?;
    let has_middleware = !middlewares.is_empty();
    let mut parts = middlewares;
    let has_app = match backend {
        Backend::App(app) => {
            parts.push(app);
            true
        }
        Backend::Upstream => false,
    };
    Ok(LoadedChain {
        composition,
        parts,
        has_app,
        has_middleware,
        upstream,
        description,
        info,
    })
}

/// Step 2: compile (or load from the cache), link the host's imports and pre-instantiate.
fn link_chain(args: &Args, engine: &Engine, chain: &LoadedChain) -> Result<ChainPre> {
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(engine::default_cache_dir)
    };
    let compile_start = Instant::now();
    let mut linker = Linker::new(engine);
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
            let composition = &chain.composition;
            let component = engine::compile(engine, &composition.bytes, cache_dir.as_deref())?;
            if composition.imports_handler {
                upstream::add_handler_to_linker(&mut linker)?;
            }
            if composition.app_stdout_apart {
                app_output::add_to_linker(&mut linker, app_output::APP_STDOUT)?;
            }
            if chain.has_app && chain.has_middleware {
                app_output::add_wasi_0_3_to_linker(&mut linker)?;
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
            for source in &chain.parts {
                compiled.push(
                    engine::compile(engine, &source.bytes, cache_dir.as_deref())
                        .with_context(|| source.origin.clone())?,
                );
            }
            // What the innermost component imports from the host: the upstream handler, or
            // (an app behind middleware) a stdout of its own.
            let app_stdout = match compiled.last() {
                Some(app) if chain.has_app && chain.has_middleware => {
                    let ty = app.component_type();
                    app_output::stdout_import(ty.imports(engine).map(|(name, _)| name))
                        .map(str::to_owned)
                }
                _ => None,
            };
            let innermost = |linker: &mut Linker<StoreState>| -> Result<()> {
                if !chain.has_app {
                    return upstream::add_handler_to_linker(linker);
                }
                if let Some(name) = &app_stdout {
                    linker.allow_shadowing(true);
                    app_output::add_to_linker(linker, name)?;
                }
                if chain.has_middleware {
                    app_output::add_wasi_0_3_to_linker(linker)?;
                }
                Ok(())
            };
            ChainPre::Linked(LinkedPre::new(&linker, &compiled, Some(&innermost))?)
        }
    };
    tracing::debug!(elapsed = ?compile_start.elapsed(), "components ready");
    Ok(pre)
}

/// Step 3 (after binding): one instantiation proves the components can run before any
/// client waits.
async fn probe(factory: &InstanceFactory) -> Result<()> {
    let mut store = factory.stores.new_store();
    factory
        .pre
        .instantiate(&mut store)
        .await
        .map_err(anyhow::Error::from)
        .context("instantiating the components")?;
    Ok(())
}

/// The listen backlog: connections the kernel holds while the host is at its connection cap
/// or busy (the kernel caps it at `net.core.somaxconn`; Rust's default is 128).
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As std's bind does: a restarted host can listen at once.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().with_context(|| format!("cannot listen on {addr} ({flag})"))
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
/// uses, so mistakes show before the first request. Returns the middleware the host answers
/// with itself.
fn check_middleware_settings(env: &[(String, String)], strict: bool) -> Result<Middleware> {
    let (middleware, issues) = Middleware::from_env(env.iter().cloned());
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
    Ok(middleware)
}

/// Says at start, once per endpoint, when the middleware exports OTLP to a collector the
/// guests may not reach: otherwise the first sign would be the component's
/// `host not allowed` line at the first export.
fn warn_of_refused_export(middleware: &Middleware, allowed: &AllowedHosts) {
    let otlp = &middleware.config().otlp;
    if !middleware.config().enabled {
        return;
    }
    let mut said = Vec::new();
    for endpoint in otlp.endpoints.iter().flatten() {
        let scheme = if endpoint.https { "https" } else { "http" };
        let Ok(uri) = format!("{scheme}://{}/", endpoint.authority).parse::<http::Uri>() else {
            continue;
        };
        let hint = AllowedHosts::hint(&uri);
        if !allowed.allows(&uri) && !said.contains(&hint) {
            tracing::warn!(
                collector = %hint,
                "the middleware exports OTLP to a host --allowed-outbound-hosts does not allow; its exports will be refused (add `--allowed-outbound-hosts {hint}`)"
            );
            said.push(hint);
        }
    }
}

/// File descriptors kept for everything but the main port's connections: the admin
/// address (at most 256 connections), compiled code, the cache, upstream and guest requests.
const FD_RESERVE: u64 = 1024;

/// Raises the soft limit of open files to the hard limit (as servers commonly do), and
/// returns `--max-connections`, lowered when the limit leaves no room for it.
fn connection_cap(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::debug!(
                from = limit.rlim_cur,
                to = limit.rlim_max,
                "raised the open files limit"
            );
            limit.rlim_cur = limit.rlim_max;
        }
    }
    let room = limit.rlim_cur.saturating_sub(FD_RESERVE).max(16);
    let cap = usize::try_from(room).unwrap_or(usize::MAX).min(wanted);
    if cap < wanted {
        tracing::warn!(
            max_connections = cap,
            open_files_limit = limit.rlim_cur,
            "--max-connections lowered to leave file descriptors for the admin address and the components"
        );
    }
    cap
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

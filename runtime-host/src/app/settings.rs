//! The command line split into each part's own settings (as linkerd2-proxy's `Config::build`
//! splits one config per subsystem): the telemetry pipeline, the engine, the instance pool and
//! the admin page each get a value of their own type and never see [`Args`].

use crate::admin::dashboard::auth::AdminToken;
use crate::admin::dashboard::{ChainInfo, ComponentInfo, DashboardConfig, Limits};
use crate::cli::{Args, ChainMode};
use crate::serving::components::{Backend, Source};
use crate::serving::engine::EngineLimits;
use crate::serving::outbound::{AllowedHosts, Outbound};
use crate::serving::pool::PoolLimits;
use telemetry::otlp::settings::{OtlpSettings, Signal};
use telemetry::pipeline::PipelineSettings;
use telemetry::window::Objectives;

/// The wasmtime version this host embeds, as `Cargo.lock` pins it (see `build.rs`).
pub const WASMTIME_VERSION: &str = env!("RUNTIME_HOST_WASMTIME_VERSION");

/// The telemetry pipeline's settings: what is printed, the admin page's ring (only when the
/// page is on) and OTLP export (the `--otlp-*` flags and the `OTEL_*` environment), without
/// the signals the middleware exports itself (`component_exports`): the component wins, so
/// nothing is sent twice.
pub fn pipeline(
    args: &Args,
    recent_requests: usize,
    component_exports: &[Signal],
) -> PipelineSettings {
    let mut otlp = OtlpSettings::from_env(args.otlp_endpoint.as_deref(), &|name| {
        std::env::var(name).ok()
    });
    if args.otel_service_name.is_some() {
        otlp.service_name = args.otel_service_name.clone();
    }
    for signal in Signal::ALL {
        if component_exports.contains(&signal) && otlp.endpoint(signal).is_some() {
            otlp.disable(signal);
            tracing::info!(
                signal = signal.as_str(),
                "the middleware exports this signal itself; runtime-host does not"
            );
        }
    }
    PipelineSettings {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        wasmtime_version: WASMTIME_VERSION.to_owned(),
        print_metric_events: args.print_metric_events,
        print_span_events: args.print_span_events,
        recent_requests,
        otlp: Some(otlp),
    }
}

/// Where the guests' own requests may go (`--allowed-outbound-hosts`).
pub fn outbound(args: &Args) -> anyhow::Result<Outbound> {
    Ok(Outbound {
        allowed: AllowedHosts::new(args.allowed_outbound_hosts.clone())
            .map_err(anyhow::Error::msg)?,
        refusals: Default::default(),
    })
}

/// The admin token (`--admin-token`, `RUNTIME_HOST_ADMIN_TOKEN`), for serve and collect mode
/// alike, with a warning when an admin address beyond loopback has none.
pub fn admin_token(
    args: &Args,
    admin_addr: std::net::SocketAddr,
) -> anyhow::Result<Option<AdminToken>> {
    let token = args
        .admin_token
        .as_deref()
        .map(AdminToken::new)
        .transpose()
        .map_err(|reason| anyhow::anyhow!("--admin-token: {reason}"))?;
    crate::admin::dashboard::warn_if_exposed(admin_addr, token.is_some());
    Ok(token)
}

/// The admin page's settings; `None` when the page is switched off.
pub fn dashboard(args: &Args) -> Option<DashboardConfig> {
    (!args.no_admin_page).then(|| DashboardConfig {
        objectives: Objectives {
            availability: args.slo_availability / 100.0,
            latency: args.slo_latency.0,
            ..Objectives::DEFAULT
        },
    })
}

/// The host's limits, as the admin page shows them.
pub fn limits(args: &Args) -> Limits {
    Limits {
        max_concurrent_requests: args.max_concurrent_requests,
        request_timeout_s: args.request_timeout.as_secs_f64(),
        max_body_bytes: args.max_body_bytes,
        max_header_bytes: args.max_header_bytes,
        max_memory_bytes: args.max_memory,
        max_instance_reuse: args.max_instance_reuse,
        max_instance_concurrency: args.max_instance_concurrency,
        shutdown_grace_s: args.shutdown_grace.as_secs_f64(),
    }
}

/// Instance slots for the pooling allocator. Every request in flight can hold an instance of
/// its own for a moment (the serving loop starts a worker whenever none is free, and instances
/// whose reuse is used up drain while new ones start), so there is a slot for each, plus one
/// for each instance the concurrency limit fills and a few for idle ones. Waiting for a slot
/// (see `pool::PoolExhausted`) covers what is left.
pub fn max_instances(max_concurrent_requests: usize, per_instance: usize) -> u32 {
    let slots = max_concurrent_requests + max_concurrent_requests.div_ceil(per_instance) + 16;
    u32::try_from(slots).unwrap_or(u32::MAX)
}

/// The engine's limits: memory per instance, and enough instances for the concurrency limit.
pub fn engine(args: &Args) -> EngineLimits {
    EngineLimits {
        max_memory: args.max_memory,
        max_instances: max_instances(args.max_concurrent_requests, args.max_instance_concurrency),
        perfmap: args.perfmap,
    }
}

/// Per-instance limits of the pool.
pub fn pool(args: &Args) -> PoolLimits {
    PoolLimits {
        max_reuse: args.max_instance_reuse,
        max_concurrency: args.max_instance_concurrency,
        request_timeout: args.request_timeout,
    }
}

/// What the admin page shows of the chain.
pub fn chain_info(
    middlewares: &[Source],
    backend: &Backend,
    upstream: Option<String>,
    mode: ChainMode,
) -> ChainInfo {
    let mut components: Vec<ComponentInfo> = middlewares
        .iter()
        .map(|m| ComponentInfo::new("middleware", &m.origin, m.bytes.len()))
        .collect();
    if let Backend::App(app) = backend {
        components.push(ComponentInfo::new("app", &app.origin, app.bytes.len()));
    }
    let mode = match mode {
        ChainMode::Composed => "composed",
        ChainMode::Linked => "linked",
    };
    ChainInfo::new(mode, components, upstream)
}

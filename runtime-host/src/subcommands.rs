//! Modes other than serving: `runtime-host collect` follows Spin's log files and serves
//! `/metrics`, probes and OTLP export from them (see [`crate::collect`]); `runtime-host
//! compose` writes the composed chain as one component for hosts without middleware support;
//! `runtime-host slo-rules` writes the Prometheus SLO rules and their unit tests (see
//! [`crate::slo`]).

use crate::cli::{Args, parse_duration};
use crate::components::{self, Backend, Source};
use crate::slo::{self, BurnTier, PromDuration, Severity, SloConfig};
use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A mode to run instead of serving.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Follow the log files Spin writes (`.spin/logs/<component>_stdout.txt`) and serve the
    /// same /metrics, probes and OTLP export as serving mode, from the middleware's lines in
    /// them. Rotation and truncation are handled.
    Collect(CollectArgs),
    /// Compose the middleware chain and an app into one component (the same wac-graph
    /// composition runtime-host serves), for `wasmtime serve`, wasmCloud or jco.
    Compose(ComposeArgs),
    /// Write the Prometheus SLO rules (recording rules, burn-rate and host alerts) and their
    /// `promtool test rules` unit tests.
    SloRules(SloRulesArgs),
}

/// Arguments of `runtime-host collect` (the admin address, grace period, OTLP and log flags
/// are the serving mode's, given before or after `collect`).
#[derive(ClapArgs, Debug, Clone)]
pub struct CollectArgs {
    /// The files to follow.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Read the files from their start (default: only what is appended from now on, so past
    /// runs are not counted again).
    #[arg(long)]
    pub from_start: bool,

    /// How often the files are checked for new lines.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
}

/// Arguments of `runtime-host compose`.
#[derive(ClapArgs, Debug, Clone)]
pub struct ComposeArgs {
    /// Where to write the composed component.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// A middleware component; repeat for a chain, outermost first. Default: the embedded
    /// edge observability middleware.
    #[arg(long = "middleware", value_name = "PATH")]
    pub middleware: Vec<PathBuf>,

    /// The app component. Default: the embedded demo app.
    #[arg(long, value_name = "PATH")]
    pub app: Option<PathBuf>,
}

/// Arguments of `runtime-host slo-rules`; defaults are the service-level plan.
#[derive(ClapArgs, Debug, Clone)]
pub struct SloRulesArgs {
    /// Directory to write `slo-rules.yml` and its unit tests (`slo-rules.test*.yml`) into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Availability objective: share of requests without a 5xx or error_type.
    #[arg(long, default_value_t = 0.995)]
    pub availability_objective: f64,

    /// Latency objective: share of requests within --latency-threshold.
    #[arg(long, default_value_t = 0.95)]
    pub latency_objective: f64,

    /// Latency threshold in seconds; a bucket bound of http_server_request_duration_seconds.
    #[arg(long, default_value_t = 0.5)]
    pub latency_threshold: f64,

    /// Label matchers selecting the service's series (without braces).
    #[arg(long, default_value = r#"job="runtime-host""#)]
    pub selector: String,

    /// Prefix of the alerts' runbook_url annotations (where docs/runbooks is browsable).
    #[arg(long, default_value = "docs/runbooks")]
    pub runbook_base_url: String,

    /// Fast page tier: LONG,SHORT,FACTOR,FOR.
    #[arg(long, default_value = "1h,5m,14.4,2m")]
    pub page_fast: String,

    /// Slow page tier: LONG,SHORT,FACTOR,FOR.
    #[arg(long, default_value = "6h,30m,6,15m")]
    pub page_slow: String,

    /// Ticket tier: LONG,SHORT,FACTOR,FOR.
    #[arg(long, default_value = "3d,6h,1,1h")]
    pub ticket: String,

    /// Window of the traps, timeouts and overload alerts.
    #[arg(long, default_value = "10m")]
    pub host_window: String,

    /// `for:` of the timeouts and overload alerts.
    #[arg(long, default_value = "5m")]
    pub host_for: String,

    /// Share of requests that may time out before a ticket.
    #[arg(long, default_value_t = 0.01)]
    pub timeout_ratio: f64,

    /// Share of requests that may be rejected for overload before a page.
    #[arg(long, default_value_t = 0.01)]
    pub overload_ratio: f64,

    /// How long scrapes may fail before a page.
    #[arg(long, default_value = "2m")]
    pub down_for: String,

    /// Write only the rule file (the unit tests need default-like windows).
    #[arg(long)]
    pub no_tests: bool,
}

impl SloRulesArgs {
    /// The generator's parameters.
    pub fn config(&self) -> Result<SloConfig> {
        let config = SloConfig {
            availability_objective: self.availability_objective,
            latency_objective: self.latency_objective,
            latency_threshold: self.latency_threshold,
            selector: self.selector.clone(),
            runbook_base_url: self.runbook_base_url.clone(),
            tiers: vec![
                BurnTier::parse("FastBurn", Severity::Page, &self.page_fast)
                    .context("--page-fast")?,
                BurnTier::parse("SlowBurn", Severity::Page, &self.page_slow)
                    .context("--page-slow")?,
                BurnTier::parse("BudgetBurn", Severity::Ticket, &self.ticket)
                    .context("--ticket")?,
            ],
            host_window: PromDuration::parse_window(&self.host_window).context("--host-window")?,
            host_hold: PromDuration::parse(&self.host_for).context("--host-for")?,
            timeout_ratio: self.timeout_ratio,
            overload_ratio: self.overload_ratio,
            down_hold: PromDuration::parse(&self.down_for).context("--down-for")?,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Runs a mode other than serving; `shutdown` ends the long-running ones.
pub async fn run(args: &Args, command: &Command, shutdown: impl Future<Output = ()>) -> Result<()> {
    match command {
        Command::Collect(collect) => crate::collect::run(args, collect, shutdown).await,
        Command::Compose(compose_args) => compose(compose_args),
        Command::SloRules(slo_args) => slo_rules(slo_args),
    }
}

fn compose(args: &ComposeArgs) -> Result<()> {
    let middlewares = components::middleware_sources(&args.middleware, false)?;
    let app = match &args.app {
        Some(path) => Source::from_file(path)?,
        None => Source::embedded("demo app", components::EMBEDDED_APP),
    };
    // A portable artifact: every component prints through the host's usual stdout.
    let composition = components::compose(
        &middlewares,
        &Backend::App(app),
        components::AppStdout::Shared,
    )?;
    if composition.imports_handler {
        bail!("the composition still imports `{}`", components::HANDLER);
    }
    let bytes = composition.bytes;
    write(&args.out, &bytes)?;
    tracing::info!(
        out = %args.out.display(),
        bytes = bytes.len(),
        middlewares = middlewares.len(),
        "composed component written"
    );
    Ok(())
}

fn slo_rules(args: &SloRulesArgs) -> Result<()> {
    let config = args.config()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write(
        &args.out.join(slo::RULES_FILE),
        slo::render_rules(&config)?.as_bytes(),
    )?;
    if !args.no_tests {
        for (name, text) in slo::render_tests(&config)? {
            write(&args.out.join(name), text.as_bytes())?;
        }
    }
    tracing::info!(out = %args.out.display(), "SLO rules written");
    Ok(())
}

/// Writes through a temporary file, so a failed run leaves no half-written output.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

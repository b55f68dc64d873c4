//! The app layer: the wiring of each mode, top-down by phase, and the only code that reads
//! the command line ([`crate::cli`]). It turns the flags into each part's own settings and
//! hands them over: serving ([`serve`]), collecting Spin's log files ([`collect`]), composing a
//! chain into one component and writing the SLO rules (here).

pub mod collect;
pub mod serve;
pub mod settings;

use crate::cli::{Args, Command, ComposeArgs, SloRulesArgs};
use crate::serving::components::{self, Backend, Source};
use anyhow::{Context, Result, bail};
use std::future::Future;
use std::path::Path;
use telemetry::slo::{self, PromDuration, SloConfig};

/// Runs the mode the command line asks for; `shutdown` ends the long-running ones.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<()> {
    match &args.command {
        None => serve::Server::prepare(&args).await?.run(shutdown).await,
        Some(Command::Collect(collect)) => collect::run(&args, collect, shutdown).await,
        Some(Command::Compose(compose_args)) => compose(compose_args),
        Some(Command::SloRules(slo_args)) => slo_rules(slo_args),
    }
}

/// The SLO generator's parameters from `runtime-host slo-rules`' flags.
pub fn slo_config(args: &SloRulesArgs) -> Result<SloConfig> {
    let config = SloConfig {
        availability_objective: args.availability_objective,
        latency_objective: args.latency_objective,
        latency_threshold: args.latency_threshold,
        selector: args.selector.clone(),
        runbook_base_url: args.runbook_base_url.clone(),
        tiers: SloConfig::tiers(&args.page_fast, &args.page_slow, &args.ticket)?,
        host_window: PromDuration::parse_window(&args.host_window).context("--host-window")?,
        host_hold: PromDuration::parse(&args.host_for).context("--host-for")?,
        timeout_ratio: args.timeout_ratio,
        overload_ratio: args.overload_ratio,
        down_hold: PromDuration::parse(&args.down_for).context("--down-for")?,
    };
    config.validate()?;
    Ok(config)
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
    let config = slo_config(args)?;
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

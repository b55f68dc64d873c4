//! `runtime-host`: see `runtime-host --help` and the README.
// A native program: in a `--workspace` build for wasm32-wasip2 (the components) this binary
// is empty, so that such a build works.
#![cfg_attr(target_family = "wasm", no_main)]
#![cfg(not(target_family = "wasm"))]

use clap::Parser;
use runtime_host::cli::{Args, LogFormat};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: fewer instructions per request (bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // wasmtime creates (and drops) errors on its hot path; with `RUST_BACKTRACE=1` in the
    // environment each would capture a backtrace, costing ~6% of throughput. Panics still
    // print backtraces when asked; only library (error) backtraces are turned off, unless
    // the user chose otherwise.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let args = Args::parse();
    // Held to the end: dropping it writes out the host's last log lines.
    let _log_writer = init_tracing(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(runtime_host::app::run(args, shutdown_signal()));
    runtime_host::serving::stdio::drain();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One clear line for a user mistake; no backtrace.
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can still be killed; serve on.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

/// The host's own log on stderr, written by a thread of its own (tracing-appender): a stalled
/// reader of stderr loses host lines instead of freezing requests and probes.
fn init_tracing(args: &Args) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match args.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

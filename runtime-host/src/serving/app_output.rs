//! Keeps the app's stdout apart from the middleware's, so that only middleware components
//! feed the HTTP request metrics: a metric event line printed by the app is printed, never
//! counted.
//!
//! In a composed chain every component would import the same `wasi:cli/stdout`, and the host
//! could not tell who printed a line. The composition therefore hands the app its own import
//! of that interface under another name, [`APP_STDOUT`], which the host links to a stdout of
//! the app's role. In a linked chain the app's own linker gets that stdout under the usual
//! name.
//!
//! WASI 0.3's `wasi:cli/stdout@0.3.0` (what a WASI 0.3 app may write through) is the app's
//! in both: the middleware writes through WASI 0.2 only, so in a composed chain every write
//! there comes from the app (or from a middleware of someone else's that does the same, whose
//! lines are then printed, never counted: the safe side). In a linked chain only the app's
//! linker gets it.

use crate::serving::store::StoreState;
use anyhow::{Context, Result};
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;
use wasmtime_wasi::cli::WasiCli;

/// The name of the composed chain's import that gives the app its stdout.
pub const APP_STDOUT: &str = "runtime-host-app-stdout";

/// The WASI 0.2 stdout interface among a component's import names, e.g.
/// `wasi:cli/stdout@0.2.6`.
pub fn stdout_import<'a>(mut imports: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    imports.find(|name| name.starts_with("wasi:cli/stdout@0.2."))
}

/// Defines `get-stdout` of the instance `name` as the app's stdout.
pub fn add_to_linker(linker: &mut Linker<StoreState>, name: &str) -> Result<()> {
    linker
        .instance(name)
        .and_then(|mut instance| {
            instance.func_wrap(
                "get-stdout",
                |mut store: StoreContextMut<'_, StoreState>, (): ()| {
                    Ok((store.data_mut().push_app_stdout()?,))
                },
            )
        })
        .map_err(anyhow::Error::from)
        .with_context(|| format!("linking the app's stdout as `{name}`"))
}

/// Defines `wasi:cli/stdout@0.3.0` as the app's stdout, shadowing the one every component
/// gets.
pub fn add_wasi_0_3_to_linker(linker: &mut Linker<StoreState>) -> Result<()> {
    linker.allow_shadowing(true);
    wasmtime_wasi::p3::bindings::cli::stdout::add_to_linker::<StoreState, WasiCli>(
        linker,
        StoreState::app_cli,
    )
    .map_err(anyhow::Error::from)
    .context("linking the app's WASI 0.3 stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_wasi_0_2_stdout_only() {
        let names = [
            "wasi:cli/environment@0.2.6",
            "wasi:cli/stdout@0.2.6",
            "wasi:io/streams@0.2.6",
        ];
        assert_eq!(
            stdout_import(names.into_iter()),
            Some("wasi:cli/stdout@0.2.6")
        );
        let names = ["wasi:cli/stdout@0.3.0", "wasi:http/handler@0.3.0"];
        assert_eq!(stdout_import(names.into_iter()), None);
    }
}

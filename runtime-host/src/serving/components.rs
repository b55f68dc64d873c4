//! Loading, checking and chaining the components to serve.
//!
//! Chaining follows Spin 4.1's middleware: each middleware's import `wasi:http/handler@0.3.0`
//! is satisfied by the next component's export of the same name (exact match), composed with
//! `wac-graph` into one component whose export is the outermost middleware's handler.

use crate::serving::app_output;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

/// The interface every served component exports and every middleware imports.
pub const HANDLER: &str = "wasi:http/handler@0.3.0";

/// The edge observability middleware, built by `build.rs`.
pub const EMBEDDED_MIDDLEWARE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/edge_observability.wasm"));

/// The demo app, built by `build.rs`.
pub const EMBEDDED_APP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello_app.wasm"));

/// Library mode's demo app (`examples/library-app`: the middleware core linked into the app),
/// built by `build.rs`. Not embedded: tests and benchmarks serve it with
/// `--no-middleware --library-mode --app <this path>`.
pub const LIBRARY_APP_PATH: &str = concat!(env!("OUT_DIR"), "/library_app.wasm");

/// A component's bytes and where they came from, for error messages.
#[derive(Clone)]
pub struct Source {
    /// File path, or `embedded <name>`.
    pub origin: String,
    /// The component binary.
    pub bytes: Vec<u8>,
}

impl Source {
    /// Reads a component file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Source {
            origin: path.display().to_string(),
            bytes,
        })
    }

    /// An embedded component.
    pub fn embedded(name: &str, bytes: &[u8]) -> Self {
        Source {
            origin: format!("embedded {name}"),
            bytes: bytes.to_vec(),
        }
    }
}

/// What runs behind the middleware chain.
pub enum Backend {
    /// An app component exporting `wasi:http/handler@0.3.0`.
    App(Source),
    /// An HTTP origin; the host provides the innermost middleware's handler import.
    Upstream,
}

/// Resolves the middleware list from the command line (embedded default, or none).
pub fn middleware_sources(paths: &[PathBuf], none: bool) -> Result<Vec<Source>> {
    if none {
        return Ok(Vec::new());
    }
    if paths.is_empty() {
        return Ok(vec![Source::embedded(
            "edge-observability middleware",
            EMBEDDED_MIDDLEWARE,
        )]);
    }
    paths.iter().map(|p| Source::from_file(p)).collect()
}

/// A chain composed into one component.
pub struct Composition {
    /// The component binary.
    pub bytes: Vec<u8>,
    /// Whether it still imports `wasi:http/handler` (upstream mode: the host provides it).
    pub imports_handler: bool,
    /// Whether the app's stdout is the import [`app_output::APP_STDOUT`] (an app behind
    /// middleware that prints through WASI 0.2); otherwise the app, if any, shares the
    /// chain's stdout only when it is served alone.
    pub app_stdout_apart: bool,
}

/// Where the app's WASI 0.2 stdout goes in a composition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppStdout {
    /// Its own import, [`app_output::APP_STDOUT`], so the host can tell its lines from the
    /// middleware's (serving in runtime-host).
    Apart,
    /// The chain's `wasi:cli/stdout`, as any host provides it (a portable artifact).
    Shared,
}

/// Checks every component and composes the chain into one component.
pub fn compose(
    middlewares: &[Source],
    backend: &Backend,
    app_stdout: AppStdout,
) -> Result<Composition> {
    let mut graph = CompositionGraph::new();
    let mut registered = Vec::new();
    for (i, mw) in middlewares.iter().enumerate() {
        let id = register(&mut graph, &format!("chain:middleware{i}"), mw)?;
        let world = &graph.types()[graph[id].ty()];
        if !world.exports.contains_key(HANDLER) {
            bail!(
                "{}: not an HTTP middleware: it does not export `{HANDLER}`",
                mw.origin
            );
        }
        if !world.imports.contains_key(HANDLER) {
            bail!(
                "{}: not an HTTP middleware: it does not import `{HANDLER}` (a plain app? pass it with --app)",
                mw.origin
            );
        }
        registered.push(id);
    }

    let app = match backend {
        Backend::App(app) => {
            let id = register(&mut graph, "chain:app", app)?;
            let world = &graph.types()[graph[id].ty()];
            if !world.exports.contains_key(HANDLER) {
                bail!(
                    "{}: not a WASI 0.3 HTTP component: it does not export `{HANDLER}`",
                    app.origin
                );
            }
            Some((id, app))
        }
        Backend::Upstream => None,
    };

    // Nothing to chain: serve the single component as it is.
    match (registered.len(), &app) {
        (0, Some((_, app))) => {
            return Ok(Composition {
                bytes: app.bytes.clone(),
                imports_handler: false,
                app_stdout_apart: false,
            });
        }
        (1, None) => {
            return Ok(Composition {
                bytes: middlewares[0].bytes.clone(),
                imports_handler: true,
                app_stdout_apart: false,
            });
        }
        (0, None) => bail!("upstream mode needs at least one middleware"),
        _ => {}
    }

    // Instantiate from the inside out: the app (if any), then each middleware with the
    // previous handler export as its `wasi:http/handler` argument.
    let mut app_stdout_apart = false;
    let mut inner = match app {
        Some((id, app)) => {
            let instance = graph.instantiate(id);
            if app_stdout == AppStdout::Apart {
                app_stdout_apart = give_app_its_own_stdout(&mut graph, id, instance)
                    .with_context(|| format!("{}: keeping its stdout apart", app.origin))?;
            }
            Some(
                graph
                    .alias_instance_export(instance, HANDLER)
                    .context("wiring the app's handler export")?,
            )
        }
        None => None,
    };
    for (i, id) in registered.iter().enumerate().rev() {
        let instance = graph.instantiate(*id);
        if let Some(next) = inner {
            graph
                .set_instantiation_argument(instance, HANDLER, next)
                .with_context(|| {
                    format!(
                        "{}: its `{HANDLER}` import does not accept the next component's export",
                        middlewares[i].origin
                    )
                })?;
        }
        inner = Some(
            graph
                .alias_instance_export(instance, HANDLER)
                .context("wiring a middleware's handler export")?,
        );
    }
    let outer = inner.expect("at least one component");
    graph
        .export(outer, HANDLER)
        .context("exporting the chain's handler")?;
    let bytes = graph
        .encode(EncodeOptions::default())
        .context("encoding the composed component")?;
    Ok(Composition {
        bytes,
        imports_handler: app.is_none(),
        app_stdout_apart,
    })
}

/// Satisfies the app's WASI 0.2 stdout import with a separate import of the composition,
/// [`app_output::APP_STDOUT`]. Returns false when the app imports no such stdout.
fn give_app_its_own_stdout(
    graph: &mut CompositionGraph,
    app: wac_graph::PackageId,
    instance: wac_graph::NodeId,
) -> Result<bool> {
    let world = &graph.types()[graph[app].ty()];
    let Some(name) = app_output::stdout_import(world.imports.keys().map(String::as_str)) else {
        return Ok(false);
    };
    let name = name.to_owned();
    // An anonymous copy of the interface: wac encodes every import of an interface with an
    // id once, under that id, which would merge the app's stdout back into the chain's.
    let wac_graph::types::ItemKind::Instance(interface) = world.imports[&name] else {
        return Ok(false);
    };
    let mut anonymous = graph.types()[interface].clone();
    anonymous.id = None;
    let kind = wac_graph::types::ItemKind::Instance(graph.types_mut().add_interface(anonymous));
    let import = graph
        .import(app_output::APP_STDOUT, kind)
        .context("adding the app's stdout import")?;
    graph
        .set_instantiation_argument(instance, &name, import)
        .context("wiring the app's stdout")?;
    Ok(true)
}

/// The top-level import and export names of a component (nested ones are skipped).
pub fn interfaces(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>)> {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.context("invalid component")? {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) if depth > 0 => depth -= 1,
            wasmparser::Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import?.name.0.to_owned());
                }
            }
            wasmparser::Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export?.name.0.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

fn register(
    graph: &mut CompositionGraph,
    name: &str,
    source: &Source,
) -> Result<wac_graph::PackageId> {
    if !wasmparser::Parser::is_component(&source.bytes) {
        if wasmparser::Parser::is_core_wasm(&source.bytes) {
            bail!(
                "{}: is a core WebAssembly module, not a component (build for wasm32-wasip2)",
                source.origin
            );
        }
        bail!("{}: is not a WebAssembly component", source.origin);
    }
    let package = Package::from_bytes(name, None, source.bytes.clone(), graph.types_mut())
        .with_context(|| format!("{}: invalid component", source.origin))?;
    graph
        .register_package(package)
        .with_context(|| format!("{}: cannot be used in a composition", source.origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mw() -> Source {
        Source::embedded("middleware", EMBEDDED_MIDDLEWARE)
    }

    fn app() -> Source {
        Source::embedded("app", EMBEDDED_APP)
    }

    /// The error of a refused composition (the Ok value is too large to print).
    fn refused(result: Result<Composition>) -> anyhow::Error {
        match result {
            Ok(_) => panic!("the composition was accepted"),
            Err(error) => error,
        }
    }

    #[test]
    fn embedded_components_have_the_expected_shape() {
        let (imports, exports) = interfaces(EMBEDDED_APP).unwrap();
        assert_eq!(exports, [HANDLER]);
        assert!(!imports.iter().any(|i| i == HANDLER), "{imports:?}");
        let (imports, exports) = interfaces(EMBEDDED_MIDDLEWARE).unwrap();
        assert_eq!(exports, [HANDLER]);
        assert!(imports.iter().any(|i| i == HANDLER));
    }

    #[test]
    fn chain_exports_handler_and_no_longer_imports_it() {
        let chain = compose(&[mw(), mw()], &Backend::App(app()), AppStdout::Apart).unwrap();
        assert!(!chain.imports_handler);
        let (imports, exports) = interfaces(&chain.bytes).unwrap();
        assert!(exports.contains(&HANDLER.to_owned()), "{exports:?}");
        assert!(!imports.contains(&HANDLER.to_owned()), "{imports:?}");
        // The app prints through its own import; the middleware keeps the usual stdout.
        assert!(chain.app_stdout_apart);
        assert!(
            imports.iter().any(|i| i == app_output::APP_STDOUT),
            "{imports:?}"
        );
        assert!(app_output::stdout_import(imports.iter().map(String::as_str)).is_some());
        // A portable artifact keeps one stdout for all, as any host provides it.
        let shared = compose(&[mw()], &Backend::App(app()), AppStdout::Shared).unwrap();
        assert!(!shared.app_stdout_apart);
        let (imports, _) = interfaces(&shared.bytes).unwrap();
        assert!(
            !imports.iter().any(|i| i == app_output::APP_STDOUT),
            "{imports:?}"
        );
    }

    #[test]
    fn upstream_chain_keeps_the_handler_import() {
        let chain = compose(&[mw(), mw()], &Backend::Upstream, AppStdout::Apart).unwrap();
        assert!(chain.imports_handler);
        assert!(!chain.app_stdout_apart);
        let (imports, _) = interfaces(&chain.bytes).unwrap();
        assert!(imports.contains(&HANDLER.to_owned()), "{imports:?}");
    }

    #[test]
    fn rejects_wrong_components() {
        let garbage = Source {
            origin: "junk.wasm".into(),
            bytes: b"not wasm at all".to_vec(),
        };
        let err = refused(compose(&[], &Backend::App(garbage), AppStdout::Apart));
        assert!(format!("{err:#}").contains("not a WebAssembly component"));

        let core = Source {
            origin: "core.wasm".into(),
            bytes: b"\0asm\x01\0\0\0".to_vec(),
        };
        let err = refused(compose(&[], &Backend::App(core), AppStdout::Apart));
        assert!(format!("{err:#}").contains("core WebAssembly module"));

        // The app is no middleware: it does not import the handler.
        let err = refused(compose(&[app()], &Backend::App(app()), AppStdout::Apart));
        assert!(
            format!("{err:#}").contains("not an HTTP middleware"),
            "{err:#}"
        );

        // The middleware alone as an app: it exports the handler but needs one too; the
        // host's linker reports that when instantiating, here it composes fine.
        assert!(compose(&[], &Backend::App(mw()), AppStdout::Apart).is_ok());
    }
}

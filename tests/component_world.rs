//! The built middleware component must stay within its declared world (`wit/world.wit`,
//! i.e. `wasi:http/middleware@0.3.0`) plus the WASI 0.2 interfaces Rust's std links for
//! `wasm32-wasip2`. Anything else (a Spin-only interface, an accidental extra export) would
//! stop it from running on other WASI 0.3 hosts.

mod common;

use common::world_of;
use runtime_host::serving::components::{
    EMBEDDED_APP, EMBEDDED_MIDDLEWARE, HANDLER, LIBRARY_APP_PATH,
};
use std::collections::BTreeSet;

/// Interfaces the declared world imports, read from `wit/` (`include wasi:http/middleware`).
fn declared_imports() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/deps/http.wit"))
            .unwrap();
    let world = &text[text.find("world middleware").expect("middleware world")..];
    let world = &world[..world.find('}').unwrap()];
    world
        .lines()
        .filter_map(|l| l.trim().strip_prefix("import ")?.strip_suffix(';'))
        .map(|name| {
            if name.contains(':') {
                name.to_owned()
            } else {
                format!("wasi:http/{name}@0.3.0")
            }
        })
        .collect()
}

/// WASI 0.2 interfaces Rust's std (wasm32-wasip2) may import.
fn std_wasip2(name: &str) -> bool {
    [
        "wasi:cli/",
        "wasi:io/",
        "wasi:clocks/",
        "wasi:random/",
        "wasi:filesystem/",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        && name.contains("@0.2.")
}

#[test]
fn middleware_imports_and_exports_only_its_world() {
    let (imports, exports) = world_of(EMBEDDED_MIDDLEWARE);
    assert_eq!(exports, BTreeSet::from([HANDLER.to_owned()]), "exports");
    assert!(
        imports.contains(HANDLER),
        "imports the next handler: {imports:?}"
    );
    let declared = declared_imports();
    assert!(declared.contains(HANDLER), "{declared:?}");
    let extra: Vec<_> = imports
        .iter()
        .filter(|name| !declared.contains(*name) && !std_wasip2(name))
        .collect();
    assert!(extra.is_empty(), "imports outside the world: {extra:?}");
}

#[test]
fn demo_app_is_a_plain_wasi_http_service() {
    let (imports, exports) = world_of(EMBEDDED_APP);
    assert_eq!(exports, BTreeSet::from([HANDLER.to_owned()]));
    assert!(
        !imports.contains(HANDLER),
        "the app is the end of the chain"
    );
}

#[test]
fn library_app_links_the_core_without_the_middleware_world() {
    // With `default-features = false` the core brings neither the middleware's handler
    // export nor its import of the next handler: the app is still a plain service.
    let bytes = std::fs::read(LIBRARY_APP_PATH).expect("library app built by build.rs");
    let (imports, exports) = world_of(&bytes);
    assert_eq!(exports, BTreeSet::from([HANDLER.to_owned()]));
    assert!(
        !imports.contains(HANDLER),
        "library mode imports no next handler: {imports:?}"
    );
}

/// The size budget. It was 300 KB until CORS (about 8 KB), log context (about 3 KB) and the
/// host-answer contract (about 2 KB) were added, then 320 KB until the components were built
/// for speed (`opt-level = 3`: about 30 KB for 8.5 % fewer instructions per request); each
/// step was measured (README, "Size"); then 450 KB for the OTLP export the component carries
/// to leave the edge (about 74 KB: at `opt-level = "s"` it would fit 400 KB, for 8.5 % more
/// instructions on every request; the bigger component costs about 26k instructions more per
/// new instance, measured with `--max-instance-reuse 1`); then 460 KB for passing a piped
/// body's trailers result on, so that a body the app fails mid-stream is logged as an error
/// (about 8 KB: the future and task bindings of that result).
const SIZE_BUDGET: usize = 460 * 1000;

#[test]
fn middleware_release_size_stays_within_budget() {
    let size = EMBEDDED_MIDDLEWARE.len();
    assert!(
        size <= SIZE_BUDGET,
        "middleware is {size} bytes; the budget is {SIZE_BUDGET} bytes"
    );
}

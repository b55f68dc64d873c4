//! Builds the middleware and the demo apps for `wasm32-wasip2` so the binary can embed them
//! (and the tests and benchmarks can load library mode's app with `--app`):
//! `cargo run -p runtime-host` then works on a fresh machine with nothing built by hand.
//!
//! The nested cargo uses its own target directory, so it never waits on the lock of the
//! build that runs this script.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The components to build: (package, wasm file name). The middleware is the package
/// `edge-observability` (`component/`); the core it exports is a library only, so no other
/// build writes a file of the middleware's name and the order does not matter.
const COMPONENTS: &[(&str, &str)] = &[
    ("library-app", "library_app.wasm"),
    ("edge-observability", "edge_observability.wasm"),
    ("hello-app", "hello_app.wasm"),
];

/// The version of `package` that `Cargo.lock` pins (the wasmtime the host embeds, for
/// `runtime_host_build_info`), so it is never a literal that drifts from the build.
fn locked_version(lock: &Path, package: &str) -> String {
    let text = std::fs::read_to_string(lock).expect("reading Cargo.lock");
    let name = format!("name = \"{package}\"");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == name
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = "))
        {
            return version.trim_matches('"').to_owned();
        }
    }
    panic!("{package} is not in Cargo.lock");
}

fn main() {
    // The host is native; built for wasm (a `--workspace` build of the components) the crate
    // is empty and embeds nothing.
    if std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|family| family == "wasm") {
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for dir in [
        "src",
        "component/src",
        "wit",
        "examples/hello-app/src",
        "examples/library-app/src",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "component/Cargo.toml",
        "examples/hello-app/Cargo.toml",
        "examples/library-app/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=RUNTIME_HOST_SKIP_COMPONENT_BUILD");
    println!(
        "cargo:rustc-env=RUNTIME_HOST_WASMTIME_VERSION={}",
        locked_version(&workspace.join("Cargo.lock"), "wasmtime")
    );

    let target_dir = workspace.join("target").join("components");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());

    // An escape hatch for tools that only need the crate to type-check (e.g. rust-analyzer):
    // embed empty placeholders instead of building the components.
    if std::env::var_os("RUNTIME_HOST_SKIP_COMPONENT_BUILD").is_some() {
        for (_, file) in COMPONENTS {
            std::fs::write(out_dir.join(file), []).unwrap();
        }
        return;
    }

    ensure_wasm_target();

    // One cargo run per component: in a single run cargo unifies features across packages,
    // and the app would inherit spin-sdk's `http-middleware` feature (and with it an import
    // of `wasi:http/handler` it must not have).
    // Each file is copied right after its own build, before another build can replace it.
    for (package, file) in COMPONENTS {
        build_component(&workspace, &target_dir, package);
        let built = target_dir
            .join("wasm32-wasip2")
            .join("component")
            .join(file);
        copy(&built, &out_dir.join(file));
    }
}

/// Adds the `wasm32-wasip2` standard library when the toolchain lacks it. rustup installs
/// the targets of `rust-toolchain.toml` by itself only while it may install things on its
/// own; with `RUSTUP_AUTO_INSTALL=0` a fresh machine would fail with "can't find crate for
/// `core`" after building everything else.
fn ensure_wasm_target() {
    const TARGET: &str = "wasm32-wasip2";
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = libdir.is_some_and(|dir| {
        std::fs::read_dir(dir).is_ok_and(|mut entries| {
            entries
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
        })
    });
    if installed {
        return;
    }
    println!(
        "cargo:warning=installing the {TARGET} target with rustup (needed to build the components)"
    );
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`rustup target add {TARGET}` failed ({status}); run it by hand"),
        Err(error) => panic!(
            "the {TARGET} target is missing and rustup could not be run ({error}); install the target for this toolchain"
        ),
    }
}

fn build_component(workspace: &Path, target_dir: &Path, package: &str) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "component",
        ])
        .args(["-p", package])
        .arg("--target-dir")
        .arg(target_dir);
    // Settings of the outer build (flags for the host target, profile overrides, coverage
    // instrumentation) must not leak into the wasm build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_ENCODED_RUSTFLAGS")
            || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_BUILD_")
            || key == "RUSTFLAGS"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "CARGO_TARGET_DIR"
            || key == "CARGO_MAKEFLAGS"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd
        .status()
        .expect("failed to run cargo to build the wasm components");
    assert!(
        status.success(),
        "building the wasm component {package} failed (is the wasm32-wasip2 target installed? \
         `rustup target add wasm32-wasip2`)"
    );
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}

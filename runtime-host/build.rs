//! Builds the middleware and the demo app for `wasm32-wasip2` so the binary can embed them:
//! `cargo run -p runtime-host` then works on a fresh machine with nothing built by hand.
//!
//! The nested cargo uses its own target directory, so it never waits on the lock of the
//! build that runs this script.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The components to embed: (package, wasm file name).
const COMPONENTS: &[(&str, &str)] = &[
    ("edge-observability", "edge_observability.wasm"),
    ("hello-app", "hello_app.wasm"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    for dir in ["src", "wit", "examples/hello-app/src"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for file in ["Cargo.toml", "Cargo.lock", "examples/hello-app/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=RUNTIME_HOST_SKIP_COMPONENT_BUILD");

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

    // One cargo run per component: in a single run cargo unifies features across packages,
    // and the app would inherit spin-sdk's `http-middleware` feature (and with it an import
    // of `wasi:http/handler` it must not have).
    for (package, _) in COMPONENTS {
        build_component(&workspace, &target_dir, package);
    }

    for (_, file) in COMPONENTS {
        let built = target_dir
            .join("wasm32-wasip2")
            .join("component")
            .join(file);
        copy(&built, &out_dir.join(file));
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

#!/usr/bin/env bash
# Installs the release tools from crates.io when they are missing, each with `cargo install
# --locked` at a fixed version into target/release-tools (one shared build directory, so the
# crates they have in common are built once): wasm-tools (the component's WIT), cargo-cyclonedx
# (the SBOMs) and wkg (Wasm OCI push and pull). Sourced by scripts/release.sh and
# scripts/test.sh; prints nothing when all three are there. Building all three from source
# takes a while on two cores (README, "Releasing").
#
#   source scripts/release-tools.sh     # then "$WASM_TOOLS", "$CARGO_CYCLONEDX", "$WKG"
set -euo pipefail

RELEASE_TOOLS=${RELEASE_TOOLS:-target/release-tools}
WASM_TOOLS=$RELEASE_TOOLS/bin/wasm-tools
CARGO_CYCLONEDX=$RELEASE_TOOLS/bin/cargo-cyclonedx
WKG=$RELEASE_TOOLS/bin/wkg

# install_tool BINARY CRATE VERSION [cargo install flags...]
install_tool() {
    local binary=$1 crate=$2 version=$3
    shift 3
    # cargo install records what it installed in the root's .crates.toml.
    if [ -x "$binary" ] && grep -qF "\"$crate $version (" "$RELEASE_TOOLS/.crates.toml" 2>/dev/null; then
        return
    fi
    echo "installing $crate $version from crates.io into $RELEASE_TOOLS..." >&2
    cargo install "$crate" --version "$version" --locked --root "$RELEASE_TOOLS" \
        --target-dir "$RELEASE_TOOLS/build" "$@" >&2
}

# Only what `component wit` and validation need.
install_tool "$WASM_TOOLS" wasm-tools 1.263.0 --no-default-features \
    --features component,validate,print,parse
install_tool "$CARGO_CYCLONEDX" cargo-cyclonedx 0.5.9
install_tool "$WKG" wkg 0.16.1
export WASM_TOOLS CARGO_CYCLONEDX WKG

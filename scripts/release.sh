#!/usr/bin/env bash
# Builds a release into dist/<version>/ (the version of the workspace, Cargo.toml):
#
#   edge_observability.wasm     the middleware component, and hello_app.wasm, the demo app
#   *.sha256                    a checksum per file (`sha256sum -c` reads them), SHA256SUMS
#   edge_observability.wit      the component's world as `wasm-tools component wit` prints it
#   schemas/                    the event schemas it writes (docs/*-event.md), and
#                               schemas.txt: one "<schema version> <file>" line each
#   runtime-host-x86_64-linux   the native host (its components embedded)
#   *.cdx.json                  CycloneDX SBOMs of the component, the app and the host, read
#                               from Cargo.lock by cargo-cyclonedx
#   spin.toml                   a snippet that uses the component by URL and digest
#   LICENSE-MIT, LICENSE-APACHE
#
# The components are built twice, in two target directories, and the script fails unless both
# builds give the same bytes. What that takes: the registry's and the checkout's paths are
# remapped (`--remap-path-prefix`; panic locations of dependencies would otherwise carry the
# builder's $CARGO_HOME) and incremental compilation is off. No network beyond crates.io,
# for the crates and the tools (scripts/release-tools.sh).
#
#   bash scripts/release.sh
#   RELEASE_URL=https://host/path bash scripts/release.sh   # where the files will be served
#   DIST_DIR=somewhere bash scripts/release.sh              # instead of dist/<version>
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
source scripts/release-tools.sh

VERSION=$(cargo metadata --no-deps --format-version 1 --locked | python3 -c '
import json, sys
packages = {p["name"]: p["version"] for p in json.load(sys.stdin)["packages"]}
print(packages["edge-observability"])')
DIST=${DIST_DIR:-dist/$VERSION}
RELEASE_URL=${RELEASE_URL:-https://github.com/OWNER/edge-observability/releases/download/v$VERSION}
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
echo "release $VERSION into $DIST" >&2

# The flags add to .cargo/config.toml's (cargo joins rustflags arrays of all config sources).
REMAP="target.wasm32-wasip2.rustflags=['--remap-path-prefix=$CARGO_HOME=/cargo', '--remap-path-prefix=$ROOT=/build']"
# build_components TARGET_DIR: the middleware and the demo app, one cargo run each as
# runtime-host/build.rs builds them (one run would unify their features).
build_components() {
    local dir=$1 package
    for package in edge-observability hello-app; do
        CARGO_PROFILE_COMPONENT_INCREMENTAL=false cargo build --locked --quiet \
            --target wasm32-wasip2 --profile component -p "$package" \
            --target-dir "$dir" --config "$REMAP"
    done
}
BUILT_A=target/release-build/a/wasm32-wasip2/component
BUILT_B=target/release-build/b/wasm32-wasip2/component
build_components target/release-build/a
# The second build compiles the workspace's crates again, whatever was built before.
cargo clean --quiet --target-dir target/release-build/b --target wasm32-wasip2 \
    --profile component -p edge-observability -p edge-observability-core -p hello-app
build_components target/release-build/b
for file in edge_observability.wasm hello_app.wasm; do
    if ! cmp -s "$BUILT_A/$file" "$BUILT_B/$file"; then
        echo "not reproducible: $file differs between two builds of the same commit" >&2
        exit 1
    fi
done

cargo build --locked --quiet --release -p runtime-host

rm -rf "$DIST"
mkdir -p "$DIST/schemas"
cp "$BUILT_A/edge_observability.wasm" "$BUILT_A/hello_app.wasm" "$DIST/"
cp target/release/runtime-host "$DIST/runtime-host-x86_64-linux"
cp LICENSE-MIT LICENSE-APACHE "$DIST/"
"$WASM_TOOLS" validate --features all "$DIST/edge_observability.wasm"
"$WASM_TOOLS" component wit "$DIST/edge_observability.wasm" >"$DIST/edge_observability.wit"

# Event schemas: the version is the first line's `edge_obs.*.vN`.
: >"$DIST/schemas/schemas.txt"
for doc in docs/*-event.md; do
    schema=$(head -1 "$doc" | grep -o 'edge_obs\.[a-z_]*\.v[0-9]*')
    cp "$doc" "$DIST/schemas/"
    echo "$schema $(basename "$doc")" >>"$DIST/schemas/schemas.txt"
done

# SBOMs from Cargo.lock: the component and the app for wasm32-wasip2, the host for Linux.
# cargo-cyclonedx writes one file next to each package's Cargo.toml; they are moved out.
sbom() {
    local manifest=$1 target=$2 out=$3
    "$CARGO_CYCLONEDX" cyclonedx --manifest-path "$manifest" --format json \
        --target "$target" --override-filename sbom-release >&2
    mv "$(dirname "$manifest")/sbom-release.json" "$DIST/$out"
}
sbom component/Cargo.toml wasm32-wasip2 edge_observability.cdx.json
sbom examples/hello-app/Cargo.toml wasm32-wasip2 hello_app.cdx.json
sbom runtime-host/Cargo.toml x86_64-unknown-linux-gnu runtime-host-x86_64-linux.cdx.json

DIGEST=$(sha256sum "$DIST/edge_observability.wasm" | cut -d' ' -f1)
cat >"$DIST/spin.toml" <<EOF
# edge-observability $VERSION as middleware in front of your app (Spin 4.1 or later).
# In your trigger: dependencies.middleware = [{ component = "edge-observability", inherit_configuration = ["environment"] }]
[component.edge-observability]
source = { url = "$RELEASE_URL/edge_observability.wasm", digest = "sha256:$DIGEST" }
EOF

(
    cd "$DIST"
    # Each .sha256 names its file as it lies beside it, for `sha256sum -c` in that directory.
    for file in *.wasm *.wit *.cdx.json runtime-host-x86_64-linux spin.toml; do
        sha256sum "$file" >"$file.sha256"
    done
    (
        cd schemas
        for file in *.md schemas.txt; do
            sha256sum "$file" >"$file.sha256"
        done
    )
    sha256sum -- *.wasm *.wit *.cdx.json runtime-host-x86_64-linux spin.toml schemas/*.md \
        schemas/schemas.txt LICENSE-* >SHA256SUMS
)
echo "$DIST:" >&2
ls -l "$DIST" >&2

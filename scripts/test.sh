#!/usr/bin/env bash
# The test command (see README): unit tests of every crate, the component world check and the
# end-to-end tests through runtime-host. Installs what the tests need when it is missing
# (Debian's prometheus and chromium packages).
set -euo pipefail
cd "$(dirname "$0")/.."

# The wasm target (rust-toolchain.toml names it; older rustup versions do not add it alone).
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true

# promtool checks the /metrics output and a real Prometheus server scrapes it
# (tests/prometheus_scrape.rs); Debian's prometheus package ships both.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    echo "installing Debian's prometheus package (promtool, prometheus)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# The admin page is checked in a real headless browser (tests/admin_page.rs): Debian's
# chromium (about 30 s to install).
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium package (headless browser)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

cargo test --release --workspace "$@"

#!/usr/bin/env bash
# The long soak test (README, "Reliability"): steady keep-alive load through runtime-host, the
# middleware and the demo app on loopback, then checks that there was no error, that every
# response's request id has exactly one complete log line, that /metrics counted every request
# and that the host's RSS stayed flat after warm-up. Prints the figures.
#
#   SOAK_SECS=180 SOAK_CONCURRENCY=32 bash scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
export SOAK_SECS="${SOAK_SECS:-180}"
export SOAK_CONCURRENCY="${SOAK_CONCURRENCY:-32}"
echo "soak: ${SOAK_SECS} s at concurrency ${SOAK_CONCURRENCY}" >&2
cargo test --release -p runtime-host --test soak -- --ignored --exact long_soak --nocapture

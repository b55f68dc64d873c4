#!/usr/bin/env bash
# Runs the README's `wasmtime serve` example of "Export from the edge" for real, as a user
# would, and checks what a collector receives: the middleware composed with the demo app
# (`runtime-host compose`), served by `wasmtime serve` 48 with the OTLP settings in `--env`, a
# receiver on loopback that decodes with the official protobuf definitions (PyPI's
# `opentelemetry-proto`). Not part of the test suite: it installs `wasmtime-cli` (about 15
# minutes on two cores, into target/wasmtime-cli) the first time.
#
#   bash scripts/try-wasmtime-serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."

WASMTIME=target/wasmtime-cli/bin/wasmtime
if [ ! -x "$WASMTIME" ]; then
    echo "installing wasmtime-cli 48.0.8 (serve only) into target/wasmtime-cli..." >&2
    cargo install wasmtime-cli --version 48.0.8 --locked --no-default-features \
        --features serve,run,cranelift,component-model-async,pooling-allocator,parallel-compilation \
        --root target/wasmtime-cli --target-dir target/wasmtime-cli-build >&2
fi
python3 -c "import opentelemetry.proto" 2>/dev/null \
    || python3 -m pip install --quiet opentelemetry-proto 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages opentelemetry-proto

cargo build --release -p runtime-host >&2
WORK=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

target/release/runtime-host compose --out "$WORK/composed.wasm" >&2
read -r port collector < <(python3 bench/bench.py free-ports 2)

python3 scripts/otlp_count.py "$collector" "$WORK/received.json" &
pids+=($!)
"$WASMTIME" serve -Scli --no-logging-prefix --addr "127.0.0.1:$port" \
    --env "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$collector" \
    --env OTEL_SERVICE_NAME=hello-app --env EDGE_OBS_OTLP_BATCH_AGE_MS=200 \
    "$WORK/composed.wasm" >"$WORK/stdout" 2>"$WORK/stderr" &
pids+=($!)
python3 bench/bench.py wait-http "http://127.0.0.1:$port/hello" 120 >/dev/null

N=20
for i in $(seq 1 "$N"); do
    curl -fsS -o /dev/null -H "traceparent: 00-$(printf '%032x' $((0xe000 + i)))-00f067aa0ba902b7-01" \
        "http://127.0.0.1:$port/users/$i?token=s3cret"
done
sleep 2
echo "--- what the collector received (decoded with opentelemetry-proto):"
cat "$WORK/received.json"
echo "--- stdout of wasmtime serve (first 3 of $(wc -l <"$WORK/stdout") lines):"
head -3 "$WORK/stdout"
python3 - "$WORK/received.json" "$WORK/stdout" "$N" <<'EOF'
import json, sys
received = json.load(open(sys.argv[1]))
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
n = int(sys.argv[3])
# The warm-up request (/hello, a new trace) counts too.
assert received["spans"] >= n, received
assert received["log_records"] >= n, received
assert received["duration_count"] >= n, received
assert received["spans_with_remote_parent"] >= n, received
for line in lines:
    json.loads(line)  # every stdout line is one JSON document, no `stdout [N] ::` prefix
assert not any("s3cret" in l for l in lines), "a secret on stdout"
print(f"ok: {received['spans']} spans, {received['log_records']} log records, "
      f"{received['duration_count']} requests in the duration histogram; "
      f"{len(lines)} stdout lines, each one JSON document")
EOF

#!/usr/bin/env bash
# Instructions per request of runtime-host in several configurations, counted by callgrind.
#
#   bash bench/instructions.sh                       # the standard breakdown (about 3 minutes)
#   bash bench/instructions.sh -- --env EDGE_OBS_LOG=off --middleware other.wasm
#                                                    # one configuration of your own
#
# Instruction counts do not depend on what else the machine is doing, so differences of a few
# per cent are visible here that req/s on a shared machine cannot show: this is the tool for
# deciding whether a change to the middleware's hot path helps. Each configuration runs
# runtime-host under `valgrind --tool=callgrind` (all threads: hyper, wasmtime and the guests'
# code), warms up with 5 s of `wrk -t1 -c4`, then counts 10 s of the same load and divides by
# the requests served. Under valgrind wasmtime falls back from the pooling allocator to
# on-demand allocation; instances are still reused, so this changes little per request.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in valgrind wrk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "installing Debian's $tool..." >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
    fi
done
cargo build --release -p runtime-host >&2
HOST=target/release/runtime-host
WORK=target/bench/callgrind
mkdir -p "$WORK"

# measure LABEL ARGS...: prints "LABEL<TAB>instructions per request<TAB>requests".
measure() {
    local label=$1
    shift
    local port admin
    read -r port admin < <(python3 bench/bench.py free-ports 2)
    local out="$WORK/$port"
    rm -f "$out".*
    valgrind --tool=callgrind --callgrind-out-file="$out.%p" \
        "$HOST" --addr "127.0.0.1:$port" --admin-addr "127.0.0.1:$admin" "$@" >"$out.log" 2>&1 &
    local pid=$!
    if ! python3 bench/bench.py wait-http "http://127.0.0.1:$admin/readyz" 300; then
        echo "runtime-host did not get ready under valgrind; its output:" >&2
        tail -20 "$out.log" >&2
        kill "$pid" 2>/dev/null || true
        return 1
    fi
    wrk -t1 -c4 -d5s "http://127.0.0.1:$port/hello" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    local requests
    requests=$(wrk -t1 -c4 -d10s "http://127.0.0.1:$port/hello" | awk '/requests in/ {print $1}')
    callgrind_control -d "$pid" >/dev/null
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # The dump taken after zeroing is part 1 of the profile.
    local ir
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out.$pid.1")
    printf '%s\t%d\t%d\n' "$label" $((ir / requests)) "$requests"
}

printf 'configuration\tinstructions/request\trequests counted\n'
if [ "${1:-}" = "--" ]; then
    shift
    measure "custom: $*" "$@"
    exit
fi
measure "app alone (--no-middleware)" --no-middleware
measure "middleware, EDGE_OBS_ENABLED=off (pass-through)" --env EDGE_OBS_ENABLED=off
measure "middleware, request id only (log, metrics, trace, security, timing off; body sizes from content-length)" \
    --env EDGE_OBS_LOG=off --env EDGE_OBS_METRICS=off --env EDGE_OBS_BODY_SIZE=content-length \
    --env EDGE_OBS_TRACE_CONTEXT=off --env EDGE_OBS_SECURITY_HEADERS=off --env EDGE_OBS_SERVER_TIMING=off
measure "middleware, EDGE_OBS_LOG=off" --env EDGE_OBS_LOG=off
measure "middleware, EDGE_OBS_METRICS=off" --env EDGE_OBS_METRICS=off
measure "middleware, EDGE_OBS_BODY_SIZE=content-length" --env EDGE_OBS_BODY_SIZE=content-length
measure "middleware, defaults (the product)"

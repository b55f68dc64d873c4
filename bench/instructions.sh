#!/usr/bin/env bash
# Instructions per request of runtime-host in several configurations, counted by callgrind.
#
#   bash bench/instructions.sh                       # the standard breakdown (about 15 minutes)
#   bash bench/instructions.sh -- --env EDGE_OBS_LOG=off --middleware other.wasm
#                                                    # one configuration of your own
#   RUNTIME_HOST=path/to/runtime-host bash bench/instructions.sh -- ...
#                                                    # another build of the host (to compare two
#                                                    # builds side by side; nothing is built)
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
if [ -z "${RUNTIME_HOST:-}" ]; then
    cargo build --release -p runtime-host >&2
fi
# The floor (bench/floor): built with the same profile and target directory as the embedded
# components, so the comparison is like for like.
cargo build --target wasm32-wasip2 --profile component -p floor-middleware -p library-floor \
    --target-dir target/components >&2
FLOOR=target/components/wasm32-wasip2/component/floor_middleware.wasm
LIBRARY_FLOOR=target/components/wasm32-wasip2/component/library_floor.wasm
# The library-mode app, built by runtime-host's build script with the embedded components.
LIBRARY_APP=target/components/wasm32-wasip2/component/library_app.wasm
HOST=${RUNTIME_HOST:-target/release/runtime-host}
WORK=target/bench/callgrind
mkdir -p "$WORK"

# measure_one LABEL ARGS...: prints "LABEL<TAB>instructions per request<TAB>requests".
measure_one() {
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
    measure_one "custom: $*" "$@"
    exit
fi
RESULTS=$WORK/results.tsv
: >"$RESULTS"
# Rows go to the terminal and to $RESULTS, which the summary below reads.
measure() { measure_one "$@" | tee -a "$RESULTS"; }
measure "app alone (--no-middleware)" --no-middleware
measure "middleware, EDGE_OBS_ENABLED=off (pass-through)" --env EDGE_OBS_ENABLED=off
measure "the floor (bench/floor: clone the fields, set one header, rebuild; nothing else)" --middleware "$FLOOR"
measure "the same-output floor (bench/floor with FLOOR_OUTPUT=product: the product's headers and lines as constants)" \
    --middleware "$FLOOR" --env FLOOR_OUTPUT=product
measure "middleware, request id only (log, metrics, trace, security, timing off; body sizes from content-length)" \
    --env EDGE_OBS_LOG=off --env EDGE_OBS_METRICS=off --env EDGE_OBS_BODY_SIZE=content-length \
    --env EDGE_OBS_TRACE_CONTEXT=off --env EDGE_OBS_SECURITY_HEADERS=off --env EDGE_OBS_SERVER_TIMING=off
measure "middleware, EDGE_OBS_LOG=off" --env EDGE_OBS_LOG=off
measure "middleware, EDGE_OBS_METRICS=off" --env EDGE_OBS_METRICS=off
measure "middleware, EDGE_OBS_BODY_SIZE=content-length" --env EDGE_OBS_BODY_SIZE=content-length
measure "middleware, defaults (the product)"
measure "middleware, defaults with EDGE_OBS_SECURITY_HEADERS=off" --env EDGE_OBS_SECURITY_HEADERS=off
measure "library app, EDGE_OBS_ENABLED=off (the same app without observability)" \
    --no-middleware --app "$LIBRARY_APP" --env EDGE_OBS_ENABLED=off
measure "library same-output floor (bench/library-floor: the product's headers and lines as constants)" \
    --no-middleware --library-mode --app "$LIBRARY_FLOOR"
measure "library mode, defaults" --no-middleware --library-mode --app "$LIBRARY_APP"
# OTLP export, with bench-origin on loopback as the collector (it answers OTLP requests 200).
ORIGIN_BIN=target/release/bench-origin
[ -x "$ORIGIN_BIN" ] || cargo build --release -p bench-origin >&2
read -r COLLECTOR_PORT < <(python3 bench/bench.py free-ports 1)
"$ORIGIN_BIN" --addr "127.0.0.1:$COLLECTOR_PORT" >"$WORK/collector.log" 2>&1 &
COLLECTOR_PID=$!
trap 'kill "$COLLECTOR_PID" 2>/dev/null || true' EXIT
python3 bench/bench.py wait-http "http://127.0.0.1:$COLLECTOR_PORT/hello" 30
COLLECTOR=http://127.0.0.1:$COLLECTOR_PORT
measure "defaults, runtime-host exporting OTLP (--otlp-endpoint, all three signals)" --otlp-endpoint "$COLLECTOR"
measure "defaults, the component exporting OTLP itself (OTEL_EXPORTER_OTLP_ENDPOINT for the guest)" \
    --env "OTEL_EXPORTER_OTLP_ENDPOINT=$COLLECTOR" --allowed-outbound-hosts "$COLLECTOR"

# The product's added cost as a multiple of the floor's (both over the app alone), what part of
# it any middleware sending the same headers and lines would pay, and the performance targets
# (bench/README.md).
awk -F'\t' '
    /^app alone/ { app = $2 }
    /^the floor/ { floor = $2 }
    /^the same-output floor/ { same = $2 }
    /^middleware, request id only/ { rid = $2 }
    /^middleware, defaults \(the product\)/ { product = $2 }
    /^library app, EDGE_OBS_ENABLED=off/ { lib_off = $2 }
    /^library same-output floor/ { lib_same = $2 }
    /^library mode, defaults/ { lib = $2 }
    /^defaults, runtime-host exporting OTLP/ { host_otlp = $2 }
    /^defaults, the component exporting OTLP/ { guest_otlp = $2 }
    function verdict(ok) { return ok ? "PASS" : "MISS" }
    END {
        if (app && floor && product)
            printf "\nadded over the app alone: floor %d, product %d = %.2fx the floor (target <= 1.5x: %s)\n",
                floor - app, product - app, (product - app) / (floor - app),
                verdict((product - app) / (floor - app) <= 1.5)
        if (app && floor && same && product)
            printf "same-output floor %d = %.2fx the floor; the product'"'"'s own code beyond it: %d\n",
                same - app, (same - app) / (floor - app), product - same
        if (app && floor && rid)
            printf "request id only adds %d = %.2fx the floor (target <= 1.15x: %s)\n",
                rid - app, (rid - app) / (floor - app), verdict((rid - app) / (floor - app) <= 1.15)
        if (product && host_otlp)
            printf "runtime-host exporting OTLP: %+.1f %% over the product (target <= +5 %%: %s)\n",
                100 * (host_otlp - product) / product, verdict(host_otlp <= product * 1.05)
        if (product && guest_otlp)
            printf "the component exporting OTLP: %+.1f %% over the product (target <= +10 %%: %s)\n",
                100 * (guest_otlp - product) / product, verdict(guest_otlp <= product * 1.10)
        if (lib_off && lib_same && lib)
            printf "library mode adds %d over the same app without observability; sending the output alone adds %d; library mode'"'"'s own code beyond it: %d\n",
                lib - lib_off, lib_same - lib_off, lib - lib_same
    }' "$RESULTS" | tee "$WORK/summary.txt"

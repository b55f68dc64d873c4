#!/usr/bin/env bash
# The benchmark (see bench/README.md): one command, loopback only.
#
#   bash bench/run.sh                      # DURATION=10 s per wrk run, ROUNDS=2
#   DURATION=2 ROUNDS=1 bash bench/run.sh  # a quick check that everything runs
#
# Installs what it needs when missing (wrk from Debian; wasmtime-cli 48.0.8 and wac-cli with
# cargo into target/bench-tools), builds runtime-host and bench-origin in release mode and the
# floor middleware (bench/floor), runs the criterion benchmarks of the middleware's per-request
# logic and of reading its settings, starts the targets on free
# loopback ports, loads each with the same wrk command in interleaved rounds, times start-up to
# /readyz, and writes bench/results/latest.md plus a dated copy. Every process it starts is
# stopped on exit.
#
# Settings (environment): DURATION (s, default 10), ROUNDS (default 2), CONNECTIONS (default 16),
# WASMTIME_SERVE_FLAGS (default below), SKIP_CRITERION=1, SKIP_WASMTIME=1 (no target 3, and no
# long install of wasmtime-cli and wac-cli), SKIP_INSTRUCTIONS=1 (no callgrind breakdown,
# bench/instructions.sh, about 15 minutes), RESULTS_DIR (default bench/results),
# BENCH_TOOLS (where wasmtime and wac are installed, default target/bench-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-16}
ORIGIN_DELAY_MS=${ORIGIN_DELAY_MS:-5}
WASMTIME_VERSION=48.0.8
# WASI 0.3 (p3) components need the component-model-async proposal and wasmtime's p3 support;
# `cli` gives the guest stdout/environment like runtime-host does.
WASMTIME_SERVE_FLAGS=${WASMTIME_SERVE_FLAGS:--Scli,p3 -Wcomponent-model-async}
TOOLS=${BENCH_TOOLS:-$ROOT/target/bench-tools}
# Paths relative to the repository root (the current directory), so the recorded commands
# read as they would be typed there.
WORK=target/bench
RESULTS_DIR=${RESULTS_DIR:-bench/results}
COMPONENTS=target/components/wasm32-wasip2/component
PY="python3 bench/bench.py"
DATA=$WORK/data.jsonl
LOGS=$WORK/logs

mkdir -p "$TOOLS" "$WORK" "$LOGS" "$RESULTS_DIR"
: >"$DATA"
export PATH="$TOOLS/bin:$PATH"

log() { printf '\n== %s\n' "$*" >&2; }
meta() { $PY meta "$DATA" "$1" "$2"; }

# --- processes: every server started here is stopped on exit --------------------------------
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: starts CMD in the background with its output in $LOGS/NAME.log and sets
# PID_<NAME>. The command line is recorded for the report.
start() {
    local name=$1
    shift
    "$@" >"$LOGS/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    meta "cmd.server $name" "$(quote "$@")"
}

# quote ARGS...: the command line as one would type it (shell quoting only where needed).
quote() {
    local arg out=()
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$arg"); else out+=("$(printf '%q' "$arg")"); fi
    done
    echo "${out[*]}"
}

# alive NAME: the server is still running.
alive() { local v="PID_$1"; kill -0 "${!v}" 2>/dev/null; }

# fail KEY MESSAGE: records a failure for the report and prints it.
fail() {
    meta "failed.$1" "$2"
    printf 'FAILED %s:\n%s\n' "$1" "$2" >&2
}

# --- tools --------------------------------------------------------------------------------
log "tools"
if ! command -v wrk >/dev/null 2>&1; then
    echo "installing Debian's wrk..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq wrk >/dev/null
fi
SKIP_WASMTIME=${SKIP_WASMTIME:-0}
if [ "$SKIP_WASMTIME" = 1 ]; then
    echo "SKIP_WASMTIME=1: no wasmtime serve target" >&2
elif ! "$TOOLS/bin/wasmtime" --version 2>/dev/null | grep -q "^wasmtime $WASMTIME_VERSION"; then
    echo "installing wasmtime-cli $WASMTIME_VERSION into $TOOLS (a long compile)..." >&2
    cargo install wasmtime-cli --version "$WASMTIME_VERSION" --locked --root "$TOOLS"
fi
if [ "$SKIP_WASMTIME" != 1 ] && ! [ -x "$TOOLS/bin/wac" ]; then
    echo "installing wac-cli into $TOOLS..." >&2
    # Without the default `registry` feature (a warg registry client we do not use, and a
    # much longer build): `wac plug` only reads local files here.
    cargo install wac-cli --locked --no-default-features --features wit --root "$TOOLS"
fi

# --- build --------------------------------------------------------------------------------
log "build"
BUILD_CMD=(cargo build --release -p runtime-host -p bench-origin)
"${BUILD_CMD[@]}"
meta "cmd.build" "${BUILD_CMD[*]}"
# The floor (bench/floor), built like the embedded components.
FLOOR_CMD=(cargo build --target wasm32-wasip2 --profile component -p floor-middleware -p library-floor --target-dir target/components)
"${FLOOR_CMD[@]}"
meta "cmd.build_floor" "${FLOOR_CMD[*]}"
FLOOR_WASM=$COMPONENTS/floor_middleware.wasm
HOST=target/release/runtime-host
ORIGIN=target/release/bench-origin
MIDDLEWARE_WASM=$COMPONENTS/edge_observability.wasm
APP_WASM=$COMPONENTS/hello_app.wasm
LIBRARY_WASM=$COMPONENTS/library_app.wasm
LIBRARY_FLOOR_WASM=$COMPONENTS/library_floor.wasm
for f in "$HOST" "$ORIGIN" "$MIDDLEWARE_WASM" "$APP_WASM" "$FLOOR_WASM" "$LIBRARY_WASM" "$LIBRARY_FLOOR_WASM"; do
    [ -f "$f" ] || { echo "missing after the build: $f" >&2; exit 1; }
done

COMPOSED=$WORK/composed.wasm
rm -f "$COMPOSED"
COMPOSE_CMD=(wac plug "$MIDDLEWARE_WASM" --plug "$APP_WASM" -o "$COMPOSED")
meta "cmd.compose" "${COMPOSE_CMD[*]}"
if [ "$SKIP_WASMTIME" = 1 ]; then
    fail wasmtime "skipped (SKIP_WASMTIME=1)"
elif ! compose_out=$("${COMPOSE_CMD[@]}" 2>&1); then
    fail wasmtime "wac plug failed: $compose_out"
fi

# --- machine ------------------------------------------------------------------------------
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta duration "$DURATION"
meta rounds "$ROUNDS"
meta connections "$CONNECTIONS"
meta origin_delay_ms "$ORIGIN_DELAY_MS"
meta nproc "$(nproc)"
meta cpu_model "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
meta mem "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
meta kernel "$(uname -srm)"
meta os "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")"
meta rustc "$(rustc --version)"
meta wasmtime "$(wasmtime --version 2>/dev/null || echo "not used")"
meta wac "$(wac --version 2>/dev/null || echo "not used")"
meta wrk "$(wrk --version 2>&1 | head -1 | sed 's/ Copyright.*//' || true)"
meta runtime_host "$("$HOST" --version)"
commit=$(GIT_OPTIONAL_LOCKS=0 git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! GIT_OPTIONAL_LOCKS=0 git diff-index --quiet HEAD -- 2>/dev/null; then commit="$commit (with uncommitted changes)"; fi
meta git "$commit"
meta component_size_bytes "$(stat -c %s "$MIDDLEWARE_WASM")"
meta app_size_bytes "$(stat -c %s "$APP_WASM")"
[ -f "$COMPOSED" ] && meta composed_size_bytes "$(stat -c %s "$COMPOSED")"
[ -f "$LIBRARY_WASM" ] && meta library_app_size_bytes "$(stat -c %s "$LIBRARY_WASM")"

# --- per-request logic natively (criterion), before any server runs -----------------------
if [ "${SKIP_CRITERION:-0}" != 1 ]; then
    log "criterion: per-request logic natively"
    CRIT_CMD=(cargo bench -p edge-observability-core --bench middleware -- --noplot --warm-up-time 1 --measurement-time 3)
    meta "cmd.criterion" "${CRIT_CMD[*]}"
    marker=$WORK/criterion.start
    touch "$marker"
    if "${CRIT_CMD[@]}" >"$LOGS/criterion.log" 2>&1; then
        grep -E '^[a-z_/]+ *time:|^ +time:|^[a-z_/]+$' "$LOGS/criterion.log" >&2 || true
        # Median per benchmark from criterion's own records of this run.
        while IFS= read -r file; do
            dir=$(dirname "$file")
            python3 - "$DATA" "$dir" <<'EOF'
import json, sys
data, d = sys.argv[1], sys.argv[2]
bench = json.load(open(f"{d}/benchmark.json"))
est = json.load(open(f"{d}/estimates.json"))
ns = est["median"]["point_estimate"]
with open(data, "a") as f:
    f.write(json.dumps({"kind": "meta", "key": "criterion." + bench["full_id"], "value": ns}) + "\n")
    if bench["full_id"] == "whole_request/realistic":
        f.write(json.dumps({"kind": "meta", "key": "criterion_whole_request_ns", "value": ns}) + "\n")
EOF
        done < <(find "$ROOT/target/criterion" -path '*/new/estimates.json' -newer "$marker" | sort)
    else
        fail criterion "$(tail -20 "$LOGS/criterion.log")"
    fi
fi

# --- start-up time to /readyz 200 ----------------------------------------------------------
# Same command as the product target, default cache dir. The first start fills the
# compilation cache (if a run before this one has not already); the second is the figure.
log "start-up: process start to /readyz 200"
read -r SP SA < <($PY free-ports 2)
STARTUP_CMD=("$HOST" --addr "127.0.0.1:$SP" --admin-addr "127.0.0.1:$SA")
$PY startup "$DATA" --label "no cache (compiles)" --timeout 120 --log "$LOGS/startup.log" \
    --ready-url "http://127.0.0.1:$SA/readyz" -- "${STARTUP_CMD[@]}" --no-cache || true
$PY startup "$DATA" --label "first start, default cache dir" --timeout 120 --log "$LOGS/startup.log" \
    --ready-url "http://127.0.0.1:$SA/readyz" -- "${STARTUP_CMD[@]}" || true
$PY startup "$DATA" --label "warm cache" --timeout 120 --log "$LOGS/startup.log" \
    --ready-url "http://127.0.0.1:$SA/readyz" -- "${STARTUP_CMD[@]}" || true

# --- is the machine quiet? ----------------------------------------------------------------
# The share of CPU time other processes use over 3 s, measured after the build and criterion
# (which would inflate a load average) and before any server starts.
BUSY_PCT=$($PY cpu-busy 3)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
meta busy_before_pct "$BUSY_PCT"
meta load_before "$LOAD_BEFORE"

# --- servers ------------------------------------------------------------------------------
log "servers"
read -r P_ORIGIN P_BASE P_BASE_ADM P_PROD P_PROD_ADM P_UP P_UP_ADM P_WT < <($PY free-ports 8)
read -r P_FLOOR P_FLOOR_ADM P_R1 P_R1_ADM < <($PY free-ports 4)
read -r P_OTLP P_OTLP_ADM P_SAME P_SAME_ADM < <($PY free-ports 4)

start direct "$ORIGIN" --addr "127.0.0.1:$P_ORIGIN"
start baseline "$HOST" --no-middleware --addr "127.0.0.1:$P_BASE" --admin-addr "127.0.0.1:$P_BASE_ADM"
start product "$HOST" --addr "127.0.0.1:$P_PROD" --admin-addr "127.0.0.1:$P_PROD_ADM"
start floor "$HOST" --middleware "$FLOOR_WASM" --addr "127.0.0.1:$P_FLOOR" --admin-addr "127.0.0.1:$P_FLOOR_ADM"
# 2s: the floor sending the product's default headers and lines as constants (bench/README.md).
start floor_same "$HOST" --middleware "$FLOOR_WASM" --env FLOOR_OUTPUT=product --addr "127.0.0.1:$P_SAME" --admin-addr "127.0.0.1:$P_SAME_ADM"
start reuse1 "$HOST" --max-instance-reuse 1 --addr "127.0.0.1:$P_R1" --admin-addr "127.0.0.1:$P_R1_ADM"
$PY wait-http "http://127.0.0.1:$P_ORIGIN/hello" 30 || { echo "bench-origin did not start" >&2; cat "$LOGS/direct.log" >&2; exit 1; }
# 2o: the product exporting spans, metrics and logs over OTLP to bench-origin (which answers
# OTLP requests with 200), against 2 with export off, in the same run.
start product_otlp env OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$P_ORIGIN" OTEL_METRIC_EXPORT_INTERVAL=1000 \
    "$HOST" --addr "127.0.0.1:$P_OTLP" --admin-addr "127.0.0.1:$P_OTLP_ADM"
start upstream "$HOST" --upstream "http://127.0.0.1:$P_ORIGIN" --addr "127.0.0.1:$P_UP" --admin-addr "127.0.0.1:$P_UP_ADM"
if [ -f "$COMPOSED" ]; then
    # shellcheck disable=SC2086 # the flags are words on purpose
    start wasmtime wasmtime serve $WASMTIME_SERVE_FLAGS --addr "127.0.0.1:$P_WT" "$COMPOSED"
fi

# 5 and 5': library mode (examples/library-app, the middleware core linked into the app), and
# the same app with observability switched off, its baseline; 5s: an unobserved app sending the
# product's output as constants (bench/library-floor), the best any library sending it can do.
read -r P_LIB P_LIB_ADM P_LIBOFF P_LIBOFF_ADM P_LIBSAME P_LIBSAME_ADM < <($PY free-ports 6)
start library "$HOST" --no-middleware --library-mode --app "$LIBRARY_WASM" --addr "127.0.0.1:$P_LIB" --admin-addr "127.0.0.1:$P_LIB_ADM"
start library_off "$HOST" --no-middleware --app "$LIBRARY_WASM" --env EDGE_OBS_ENABLED=off --addr "127.0.0.1:$P_LIBOFF" --admin-addr "127.0.0.1:$P_LIBOFF_ADM"
start library_same "$HOST" --no-middleware --library-mode --app "$LIBRARY_FLOOR_WASM" --addr "127.0.0.1:$P_LIBSAME" --admin-addr "127.0.0.1:$P_LIBSAME_ADM"

# 4 and 4' are also measured on `/delay/$ORIGIN_DELAY_MS`, where the origin takes that long per
# request (like a database call) before the same answer: the same servers, another path.
PID_upstream_slow=${PID_upstream:-}
PID_direct_slow=${PID_direct:-}
declare -A URL=(
    [baseline]="http://127.0.0.1:$P_BASE/hello"
    [product]="http://127.0.0.1:$P_PROD/hello"
    [product_otlp]="http://127.0.0.1:$P_OTLP/hello"
    [floor]="http://127.0.0.1:$P_FLOOR/hello"
    [floor_same]="http://127.0.0.1:$P_SAME/hello"
    [reuse1]="http://127.0.0.1:$P_R1/hello"
    [wasmtime]="http://127.0.0.1:$P_WT/hello"
    [upstream]="http://127.0.0.1:$P_UP/hello"
    [direct]="http://127.0.0.1:$P_ORIGIN/hello"
    [upstream_slow]="http://127.0.0.1:$P_UP/delay/$ORIGIN_DELAY_MS"
    [direct_slow]="http://127.0.0.1:$P_ORIGIN/delay/$ORIGIN_DELAY_MS"
    [library]="http://127.0.0.1:$P_LIB/hello"
    [library_off]="http://127.0.0.1:$P_LIBOFF/hello"
    [library_same]="http://127.0.0.1:$P_LIBSAME/hello"
)
declare -A READY=(
    [baseline]="http://127.0.0.1:$P_BASE_ADM/readyz"
    [product]="http://127.0.0.1:$P_PROD_ADM/readyz"
    [product_otlp]="http://127.0.0.1:$P_OTLP_ADM/readyz"
    [floor]="http://127.0.0.1:$P_FLOOR_ADM/readyz"
    [floor_same]="http://127.0.0.1:$P_SAME_ADM/readyz"
    [reuse1]="http://127.0.0.1:$P_R1_ADM/readyz"
    [upstream]="http://127.0.0.1:$P_UP_ADM/readyz"
    [wasmtime]="http://127.0.0.1:$P_WT/hello"
    [direct]="http://127.0.0.1:$P_ORIGIN/hello"
    [upstream_slow]="http://127.0.0.1:$P_UP_ADM/readyz"
    [direct_slow]="http://127.0.0.1:$P_ORIGIN/hello"
    [library]="http://127.0.0.1:$P_LIB_ADM/readyz"
    [library_off]="http://127.0.0.1:$P_LIBOFF_ADM/readyz"
    [library_same]="http://127.0.0.1:$P_LIBSAME_ADM/readyz"
)
TARGETS=()
for t in baseline product product_otlp floor floor_same reuse1 wasmtime upstream direct upstream_slow direct_slow library library_off library_same; do
    v="PID_$t"
    [ -n "${!v:-}" ] || continue
    if $PY wait-http "${READY[$t]}" 180 && $PY wait-http "${URL[$t]}" 10; then
        TARGETS+=("$t")
        echo "  $t ready: ${URL[$t]}" >&2
    else
        state=$(alive "$t" && echo "still running, not answering 200" || echo "exited")
        fail "$t" "$state; last lines of its output:
$(tail -25 "$LOGS/$t.log")"
        alive "$t" && kill "${!v}" 2>/dev/null || true
    fi
done
for t in baseline product; do
    [[ " ${TARGETS[*]} " == *" $t "* ]] || { echo "target $t is required" >&2; exit 1; }
done

# --- load: the same wrk command against every target, interleaved rounds --------------------
log "peak load: wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS round(s)"
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        v="PID_$t"
        $PY wrk "$DATA" --target "$t" --round "$round" --phase peak --pid "${!v}" \
            --duration "$DURATION" --connections "$CONNECTIONS" "${URL[$t]}"
    done
done

# Moderate load: about half of the product's peak (the lower of 1 and 2: half of the
# baseline's peak can be more than the product carries at all), the same offered load for 1
# and 2. wrk has no rate option (wrk2 is not in Debian), so each connection pauses a whole
# number of ms before each request (bench/paced.lua); the report gives the rate reached.
HALF_OF=$(python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def peak(t):
    rps = [r["rps"] for r in rows if r["kind"] == "wrk" and r["target"] == t and r["phase"] == "peak" and "rps" in r]
    return statistics.median(rps) if rps else float("inf")
print(min(peak("baseline"), peak("product")))' "$DATA")
read -r MOD_C MOD_D < <($PY pace "$HALF_OF")
meta moderate_how "Closed-loop wrk with $MOD_C connections, each pausing $MOD_D ms before every request (\`bench/paced.lua\`): at most $MOD_C × 1000 / $MOD_D = $((MOD_C * 1000 / MOD_D)) req/s offered, aimed at half of the product's median peak ($(printf '%.0f' "$HALF_OF") req/s, the lower peak of 1 and 2). wrk2 (a fixed-rate wrk) is not in Debian, so this stands in for a fixed rate; the response time also counts against the rate, so the rate reached is a little lower. p99 added = p99 of 2 − p99 of 1 at this load."
log "moderate load: $MOD_C connections, $MOD_D ms pause per request"
for round in $(seq "$ROUNDS"); do
    for t in baseline product; do
        v="PID_$t"
        $PY wrk "$DATA" --target "$t" --round "$round" --phase moderate --pid "${!v}" \
            --duration "$DURATION" --connections "$MOD_C" \
            --script bench/paced.lua --script-arg "$MOD_D" "${URL[$t]}"
    done
done

# --- instructions per request (callgrind), the figures the performance targets are set in ----
if [ "${SKIP_INSTRUCTIONS:-0}" != 1 ]; then
    log "instructions per request: bash bench/instructions.sh (about 15 minutes)"
    meta cmd.instructions "bash bench/instructions.sh"
    if bash bench/instructions.sh >"$LOGS/instructions.log" 2>&1; then
        meta instructions_tsv "$(cat "$WORK/callgrind/results.tsv")"
        meta instructions_summary "$(cat "$WORK/callgrind/summary.txt")"
    else
        fail instructions "$(tail -20 "$LOGS/instructions.log")"
    fi
fi

# --- report -------------------------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
meta load_after "$LOAD_AFTER"
caution=""
if [ "$DURATION" -lt 10 ] || [ "$ROUNDS" -lt 2 ]; then
    caution="a short run (DURATION=$DURATION s, ROUNDS=$ROUNDS): a check that the harness works, not a measurement."
    meta short yes
fi
if [ "$BUSY_PCT" -gt 15 ]; then
    caution="${caution:+$caution }The machine was busy before the load started ($BUSY_PCT% of CPU time used by other work over 3 s): it competed with the servers and wrk, so these figures are not meaningful."
    meta noisy yes
fi
[ -n "$caution" ] && meta caution "$caution"

DATED=$RESULTS_DIR/$(date -u +%Y-%m-%d).md
$PY report "$DATA" "$RESULTS_DIR/latest.md" "$DATED" >/dev/null
cp "$DATA" "$RESULTS_DIR/latest.jsonl"
log "results: $RESULTS_DIR/latest.md and $DATED (raw data: $RESULTS_DIR/latest.jsonl, server logs: $LOGS)"
cat "$RESULTS_DIR/latest.md"

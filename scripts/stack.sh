#!/usr/bin/env bash
# A local operations stack: runtime-host (middleware in front of the demo app, or whatever
# RUNTIME_HOST_ARGS says), a real Prometheus scraping it with the SLO rules of
# deploy/prometheus/slo-rules.yml loaded, and a real Alertmanager receiving its alerts.
# Prints the URLs; Ctrl-C stops everything.
#
#   bash scripts/stack.sh
#   RUNTIME_HOST_ARGS="--app my_app.wasm" bash scripts/stack.sh
#
# Ports: HTTP_PORT (3000), ADMIN_PORT (9464), PROMETHEUS_PORT (9090), ALERTMANAGER_PORT (9093).
# Installs Debian's prometheus and prometheus-alertmanager packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

HTTP_PORT=${HTTP_PORT:-3000}
ADMIN_PORT=${ADMIN_PORT:-9464}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
ALERTMANAGER_PORT=${ALERTMANAGER_PORT:-9093}
# Not quoted on use: a list of flags.
RUNTIME_HOST_ARGS=${RUNTIME_HOST_ARGS:---env EDGE_OBS_ROUTES=/users/{id},/status/{code}}

if ! command -v prometheus >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
    echo "installing Debian's prometheus and prometheus-alertmanager packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
fi
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p runtime-host

work=$(mktemp -d "${TMPDIR:-/tmp}/edge-obs-stack.XXXXXX")
pids=()
stop() {
    trap - INT TERM EXIT
    echo >&2
    echo "stopping..." >&2
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
    echo "stopped" >&2
}
trap stop INT TERM EXIT

cp deploy/prometheus/slo-rules.yml "$work/slo-rules.yml"
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - slo-rules.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$ALERTMANAGER_PORT"]
scrape_configs:
  - job_name: runtime-host
    static_configs:
      - targets: ["127.0.0.1:$ADMIN_PORT"]
YAML
# Alerts show in Alertmanager's UI; nothing is sent anywhere.
cat >"$work/alertmanager.yml" <<YAML
route:
  receiver: local
  group_by: [alertname, job, slo]
  group_wait: 10s
  group_interval: 1m
  routes:
    - matchers: ['severity="page"']
      receiver: local
receivers:
  - name: local
YAML

# shellcheck disable=SC2086
target/release/runtime-host --addr "127.0.0.1:$HTTP_PORT" --admin-addr "127.0.0.1:$ADMIN_PORT" \
    $RUNTIME_HOST_ARGS >"$work/runtime-host.stdout" 2>"$work/runtime-host.stderr" &
pids+=($!)
prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/alertmanager" \
    --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address= \
    >"$work/alertmanager.log" 2>&1 &
pids+=($!)
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$work/prometheus.log" 2>&1 &
pids+=($!)

wait_up() { # name url log
    for _ in $(seq 1 240); do
        if curl -fsS -o /dev/null "$2" 2>/dev/null; then
            return 0
        fi
        for pid in "${pids[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "$1 (or another part) exited; its log:" >&2
                tail -n 20 "$3" >&2
                exit 1
            fi
        done
        sleep 0.5
    done
    echo "$1 did not come up; its log:" >&2
    tail -n 20 "$3" >&2
    exit 1
}
wait_up runtime-host "http://127.0.0.1:$ADMIN_PORT/readyz" "$work/runtime-host.stderr"
wait_up alertmanager "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready" "$work/alertmanager.log"
wait_up prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" "$work/prometheus.log"

cat <<TEXT

edge observability stack is up (logs in $work):
  app (through the middleware)   http://127.0.0.1:$HTTP_PORT/users/42
  runtime-host probes, metrics   http://127.0.0.1:$ADMIN_PORT/readyz?verbose  http://127.0.0.1:$ADMIN_PORT/metrics
  Prometheus (SLO rules loaded)  http://127.0.0.1:$PROMETHEUS_PORT/alerts
  Alertmanager                   http://127.0.0.1:$ALERTMANAGER_PORT/
  access log                     tail -f $work/runtime-host.stdout

Try: for i in \$(seq 200); do curl -s -o /dev/null 127.0.0.1:$HTTP_PORT/status/500; done
Press Ctrl-C to stop everything.
TEXT

# Returns when any part exits (or on Ctrl-C, through the trap).
wait -n "${pids[@]}" || true
echo "a part of the stack exited; the last lines of its logs:" >&2
for log in "$work"/*.log "$work"/runtime-host.stderr; do
    echo "== $(basename "$log")" >&2
    tail -n 5 "$log" >&2
done
exit 1

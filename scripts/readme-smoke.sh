#!/usr/bin/env bash
# Runs the README's first command as a new user would (`cargo run --release -p runtime-host`),
# waits for /readyz, sends one request, checks the middleware's headers on it, then stops the
# server with SIGTERM and checks that it exits cleanly. CI runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
cargo run --release -p runtime-host >"$log" 2>&1 &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; }
trap stop EXIT

# The first build can take a while on a fresh machine; readiness comes after it.
for _ in $(seq 1 1800); do
    if curl -fsS -o /dev/null http://127.0.0.1:9464/readyz 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "readme-smoke: the server exited before it was ready:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    sleep 1
done

headers=$(curl -fsS -D - -o /dev/null -H 'x-request-id: readme-smoke-1' http://127.0.0.1:3000/hello)
check() {
    if ! grep -qi "^$1" <<<"$headers"; then
        echo "readme-smoke: missing \`$1\` in the response headers:" >&2
        echo "$headers" >&2
        exit 1
    fi
}
check 'HTTP/1.1 200'
check 'x-request-id: readme-smoke-1'
check 'x-content-type-options: nosniff'
check 'strict-transport-security: '
check 'server-timing: app;dur='

kill -TERM "$pid"
trap - EXIT
if ! wait "$pid"; then
    echo "readme-smoke: the server did not exit cleanly after SIGTERM:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
grep -q '"request_id":"readme-smoke-1"' "$log" || {
    echo "readme-smoke: no access-log line for the request" >&2
    exit 1
}
echo "readme-smoke: the README's first command serves the middleware in front of the demo app"

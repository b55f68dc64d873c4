#!/usr/bin/env python3
"""Helpers for bench/run.sh: ports, readiness, wrk runs (with host CPU and RSS), start-up
timing, and the markdown report. Every measurement is appended as one JSON object per line to
a data file; `report` turns that file into bench/results/*.md.

Subcommands (run.sh is the only intended caller):
  free-ports N                           N free loopback TCP ports, space-separated
  wait-http URL TIMEOUT_S                exit 0 once URL answers 200, 1 on time-out
  meta DATA KEY VALUE                    record a fact (machine, command line, size, ...)
  pace PEAK_RPS                          "CONNECTIONS DELAY_MS" for about PEAK_RPS/2 with wrk
  wrk DATA --target T --round R --phase P --pid PID --duration D --connections C
      [--script LUA --script-arg X] URL                run wrk, record req/s, latency, errors, CPU, RSS
  startup DATA --label L --ready-url URL --timeout S -- CMD...
                                         start CMD, time until URL answers 200, stop it
  cpu-busy SECONDS                       % of CPU time busy over SECONDS (is the machine quiet?)
  report DATA OUT [COPY]                 write the markdown report (and a copy)
"""
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")

# The targets, checked in the report.
TARGET_RATIO_PRODUCT_VS_BASELINE = 0.85
TARGET_P99_ADDED_MS = 1.0
TARGET_RATIO_PRODUCT_VS_WASMTIME = 1.5
TARGET_RATIO_UPSTREAM_VS_DIRECT = 0.8
TARGET_RATIO_OTLP_ON_VS_OFF = 0.95
TARGET_NATIVE_NS = 5000.0
TARGET_STARTUP_S = 1.0
# The product's added CPU per request over the app alone, as a multiple of the floor's.
TARGET_FLOOR_MULTIPLE = 1.5
TARGET_SETTINGS_NS = 20000.0
TARGET_RATIO_LIBRARY_VS_APP = 0.9

# Targets in run order, with the label used in the report.
TARGETS = {
    "baseline": "1. runtime-host --no-middleware (demo app alone)",
    "product": "2. runtime-host (middleware + demo app)",
    "product_otlp": "2o. as 2, exporting spans, metrics and logs over OTLP/HTTP to bench-origin",
    "floor": "2f. runtime-host --middleware floor_middleware.wasm (the floor + demo app)",
    "floor_same": "2s. as 2f, FLOOR_OUTPUT=product (the floor sending the product's default headers and lines)",
    "reuse1": "2r. as 2, --max-instance-reuse 1 (a new instance for every request)",
    "wasmtime": "3. wasmtime serve (middleware + app composed with wac plug)",
    "upstream": "4. runtime-host --upstream (middleware in front of bench-origin)",
    "direct": "4'. bench-origin called directly",
    "upstream_slow": "4s. as 4, origin taking ORIGIN_DELAY_MS per request (/delay/N)",
    "direct_slow": "4s'. as 4', origin taking ORIGIN_DELAY_MS per request (/delay/N)",
    "library": "5. runtime-host --no-middleware --library-mode (library app: middleware core linked into the app)",
    "library_off": "5'. as 5, EDGE_OBS_ENABLED=off (the same app without observability)",
    "library_same": "5s. runtime-host --no-middleware --library-mode, an unobserved app sending the product's default headers and lines (bench/library-floor)",
}


def append(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# --- processes ---------------------------------------------------------------------------


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS"), values.get("VmHWM")


def http_status(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None


# --- wrk ---------------------------------------------------------------------------------

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse_wrk(out):
    """Requests, req/s, p50/p99 (ms), errors from `wrk --latency` output."""
    requests = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not requests or not rps:
        raise ValueError("unexpected wrk output:\n" + out)
    dist = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(requests.group(1)),
        "rps": float(rps.group(1)),
        "p50_ms": to_ms(dist["50"]) if "50" in dist else None,
        "p99_ms": to_ms(dist["99"]) if "99" in dist else None,
        "socket_errors": sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def cmd_wrk(argv):
    data = argv[0]
    opts = {"--script": None, "--script-arg": None}
    rest = argv[1:]
    url = rest.pop()
    for i in range(0, len(rest), 2):
        opts[rest[i]] = rest[i + 1]
    pid = int(opts["--pid"])
    cmd = ["wrk", "-t1", f"-c{opts['--connections']}", f"-d{opts['--duration']}s", "--latency"]
    if opts["--script"]:
        cmd += ["-s", opts["--script"]]
    cmd.append(url)
    if opts["--script-arg"]:
        cmd += ["--", opts["--script-arg"]]
    before = cpu_seconds(pid)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    after = cpu_seconds(pid)
    rss, hwm = memory_kib(pid)
    record = {
        "kind": "wrk",
        "target": opts["--target"],
        "round": int(opts["--round"]),
        "phase": opts["--phase"],
        "cmd": shlex.join(cmd),
        "rss_kib": rss,
        "hwm_kib": hwm,
    }
    try:
        record.update(parse_wrk(proc.stdout))
        record["cpu_us_per_request"] = (
            (after - before) * 1e6 / record["requests"] if record["requests"] else None
        )
    except ValueError as e:
        record["error"] = f"{e}\n{proc.stderr}".strip()
    append(data, record)
    shown = (
        f"{record.get('rps', 0):9.0f} req/s  p50 {fmt_ms(record.get('p50_ms'))}"
        f"  p99 {fmt_ms(record.get('p99_ms'))}  {fmt(record.get('cpu_us_per_request'), 1)} us CPU/req"
    )
    errors = record.get("socket_errors", 0) + record.get("non_2xx", 0)
    print(
        f"  round {record['round']} {record['phase']:8s} {record['target']:9s} {shown}"
        + (f"  ERRORS {errors}" if errors else "")
        + (f"  FAILED: {record['error']}" if "error" in record else ""),
        flush=True,
    )


def cmd_pace(argv):
    """Connections and per-connection delay (whole ms, wrk's granularity) whose open-loop rate
    C * 1000 / D is closest to half of PEAK_RPS (at most 64 connections). The pause is at
    least 2 ms so that the response time, which adds to it, changes the rate little."""
    target = max(float(argv[0]) / 2, 1.0)
    best = None
    for c in range(1, 65):
        d = max(2, round(c * 1000 / target))
        err = abs(c * 1000 / d - target) / target
        if best is None or err < best[0] - 1e-9:
            best = (err, c, d)
    print(best[1], best[2])


# --- start-up --------------------------------------------------------------------------


def cmd_startup(argv):
    sep = argv.index("--")
    data, opts, cmd = argv[0], argv[1:sep], argv[sep + 1 :]
    o = dict(zip(opts[0::2], opts[1::2]))
    timeout = float(o["--timeout"])
    log = open(o["--log"], "ab") if "--log" in o else subprocess.DEVNULL
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)

    def stop(*_):
        proc.kill()
        sys.exit(1)

    signal.signal(signal.SIGTERM, stop)
    ready = None
    try:
        while time.monotonic() - t0 < timeout:
            if http_status(o["--ready-url"], timeout=0.5) == 200:
                ready = time.monotonic() - t0
                break
            if proc.poll() is not None:
                break
            time.sleep(0.002)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    record = {"kind": "startup", "label": o["--label"], "seconds": ready, "cmd": shlex.join(cmd)}
    append(data, record)
    print(f"  start to /readyz 200 ({o['--label']}): "
          + (f"{ready * 1000:.0f} ms" if ready is not None else "NOT READY"), flush=True)
    return 0 if ready is not None else 1


# --- report ----------------------------------------------------------------------------


def fmt(x, digits=0, suffix=""):
    return "n/a" if x is None else f"{x:,.{digits}f}{suffix}"


def fmt_ms(x):
    return "n/a" if x is None else f"{x:.3f} ms"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def summarize(runs):
    """Median over rounds of each figure, plus errors added up."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return None
    return {
        "rounds": len(ok),
        "rps": median(r["rps"] for r in ok),
        "p50_ms": median(r["p50_ms"] for r in ok),
        "p99_ms": median(r["p99_ms"] for r in ok),
        "cpu_us": median(r.get("cpu_us_per_request") for r in ok),
        "rss_kib": max((r["rss_kib"] or 0) for r in ok),
        "hwm_kib": max((r["hwm_kib"] or 0) for r in ok),
        "errors": sum(r["socket_errors"] + r["non_2xx"] for r in ok),
        "rps_all": [r["rps"] for r in ok],
        "cmd": ok[0]["cmd"],
    }


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def cmd_report(argv):
    data, out = argv[0], argv[1]
    copy = argv[2] if len(argv) > 2 else None
    records = load(data)
    meta = {}
    for r in records:
        if r["kind"] == "meta":
            meta.setdefault(r["key"], []).append(r["value"])
    m1 = lambda k, default="n/a": meta.get(k, [default])[-1]  # noqa: E731
    delay = m1("origin_delay_ms")
    TARGETS = {t: label.replace("ORIGIN_DELAY_MS", f"{delay} ms")  # noqa: N806
               for t, label in globals()["TARGETS"].items()}
    peak = {
        t: summarize([r for r in records if r["kind"] == "wrk" and r["target"] == t
                      and r["phase"] == "peak"])
        for t in TARGETS
    }
    moderate = {
        t: summarize([r for r in records if r["kind"] == "wrk" and r["target"] == t
                      and r["phase"] == "moderate"])
        for t in ("baseline", "product")
    }
    startups = {r["label"]: r for r in records if r["kind"] == "startup"}
    failures = {r["key"][len("failed."):]: r["value"] for r in records
                if r["kind"] == "meta" and r["key"].startswith("failed.")}

    L = []
    w = L.append
    w(f"# Benchmark results: {m1('date')}")
    w("")
    w("Produced by `bash bench/run.sh` (see bench/README.md for how to read it). "
      f"Duration {m1('duration')} s per wrk run, {m1('rounds')} interleaved round(s), "
      "median over rounds; loopback only; wrk and the servers share the machine.")
    if m1("noisy", "") == "yes" or m1("short", "") == "yes":
        w("")
        w("**Caution:** " + m1("caution", "these figures come from a short or noisy run."))
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    for key, label in [
        ("cpu_model", "CPU"), ("nproc", "cores (nproc)"), ("mem", "memory"),
        ("kernel", "kernel"), ("os", "OS"), ("rustc", "rustc"), ("wasmtime", "wasmtime CLI"),
        ("wac", "wac"), ("wrk", "wrk"), ("runtime_host", "runtime-host"),
        ("git", "commit"), ("busy_before_pct", "CPU busy with other work just before the load (%)"),
        ("load_before", "load average before the load"),
        ("load_after", "load average after the run"),
    ]:
        w(f"| {label} | {m1(key)} |")
    w("")

    w("## Throughput and latency (peak load: closed loop, "
      f"`wrk -t1 -c{m1('connections')}`, GET /hello)")
    w("")
    w("| target | req/s | p50 | p99 | host CPU per request | host RSS after load (peak) | errors |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for t, label in TARGETS.items():
        s = peak[t]
        if s is None:
            why = failures.get(t, "no result").splitlines()[0] if t in failures else "no result"
            w(f"| {label} | failed ({why}; see below) | | | | | |")
            continue
        w(f"| {label} | {fmt(s['rps'])} | {fmt_ms(s['p50_ms'])} | {fmt_ms(s['p99_ms'])} "
          f"| {fmt(s['cpu_us'], 1)} µs | {fmt(s['rss_kib'] / 1024, 1)} MiB "
          f"({fmt(s['hwm_kib'] / 1024, 1)} MiB) | {s['errors']} |")
    w("")
    w("Per-round req/s: " + "; ".join(
        f"{t} " + ", ".join(f"{x:.0f}" for x in peak[t]["rps_all"])
        for t in TARGETS if peak[t]) + ".")
    w("")

    # Ratios against the targets.
    g = lambda t, k: peak[t][k] if peak[t] else None  # noqa: E731
    r21 = ratio(g("product", "rps"), g("baseline", "rps"))
    r23 = ratio(g("product", "rps"), g("wasmtime", "rps"))
    r4d = ratio(g("upstream", "rps"), g("direct", "rps"))
    r2o = ratio(g("product_otlp", "rps"), g("product", "rps"))
    mb, mp = moderate["baseline"], moderate["product"]
    p99_added = (mp["p99_ms"] - mb["p99_ms"]) if mb and mp else None
    ns = float(m1("criterion_whole_request_ns")) if m1("criterion_whole_request_ns") != "n/a" else None
    warm = startups.get("warm cache")
    warm_s = warm["seconds"] if warm else None

    w("## Ratios and targets")
    w("")
    w("| check | measured | target | verdict |")
    w("|---|---:|---:|---|")
    w(f"| throughput 2 / 1 (product vs app alone) | {fmt(r21, 3)} "
      f"| ≥ {TARGET_RATIO_PRODUCT_VS_BASELINE} "
      f"| {verdict(None if r21 is None else r21 >= TARGET_RATIO_PRODUCT_VS_BASELINE)} |")
    w(f"| p99 added by the middleware at moderate load (2 − 1) | {fmt_ms(p99_added)} "
      f"| ≤ {TARGET_P99_ADDED_MS} ms "
      f"| {verdict(None if p99_added is None else p99_added <= TARGET_P99_ADDED_MS)} |")
    # CPU per request added over the app alone: the product's against the floor's.
    cb, cp, cf = g("baseline", "cpu_us"), g("product", "cpu_us"), g("floor", "cpu_us")
    floor_multiple = (ratio(cp - cb, cf - cb)
                      if None not in (cb, cp, cf) and cf > cb else None)
    w(f"| CPU per request added over the app alone, product as a multiple of the floor "
      f"((2 − 1) / (2f − 1)) | {fmt(floor_multiple, 2, '×')} | ≤ {TARGET_FLOOR_MULTIPLE}× "
      f"| {verdict(None if floor_multiple is None else floor_multiple <= TARGET_FLOOR_MULTIPLE)} |")
    # The same for the floor that sends the product's output: what that output costs any
    # middleware, so what the product's own code adds beyond it.
    cs = g("floor_same", "cpu_us")
    same_multiple = (ratio(cs - cb, cf - cb)
                     if None not in (cb, cs, cf) and cf > cb else None)
    w(f"| CPU per request added over the app alone, same-output floor as a multiple of the "
      f"floor ((2s − 1) / (2f − 1)) | {fmt(same_multiple, 2, '×')} | (reported) | |")
    own = cp - cs if None not in (cp, cs) else None
    w(f"| CPU per request the product adds beyond the same-output floor (2 − 2s) "
      f"| {fmt(own, 1, ' µs')} | (reported) | |")
    r2r = ratio(g("reuse1", "rps"), g("product", "rps"))
    w(f"| throughput 2r / 2 (a new instance per request vs reuse) | {fmt(r2r, 3)} | (reported) | |")
    w(f"| throughput 2 / 3 (runtime-host vs wasmtime serve) | {fmt(r23, 3)} "
      f"| ≥ {TARGET_RATIO_PRODUCT_VS_WASMTIME} "
      f"| {verdict(None if r23 is None else r23 >= TARGET_RATIO_PRODUCT_VS_WASMTIME)} |")
    w(f"| throughput 4 / direct (upstream mode vs origin alone) | {fmt(r4d, 3)} "
      f"| ≥ {TARGET_RATIO_UPSTREAM_VS_DIRECT} "
      f"| {verdict(None if r4d is None else r4d >= TARGET_RATIO_UPSTREAM_VS_DIRECT)} |")
    r4s = ratio(g("upstream_slow", "rps"), g("direct_slow", "rps"))
    w(f"| throughput 4s / 4s' (the same, origin taking {delay} ms per request) | {fmt(r4s, 3)} "
      f"| ≥ {TARGET_RATIO_UPSTREAM_VS_DIRECT} "
      f"| {verdict(None if r4s is None else r4s >= TARGET_RATIO_UPSTREAM_VS_DIRECT)} |")
    w(f"| throughput 2o / 2 (OTLP export on vs off) | {fmt(r2o, 3)} "
      f"| ≥ {TARGET_RATIO_OTLP_ON_VS_OFF} "
      f"| {verdict(None if r2o is None else r2o >= TARGET_RATIO_OTLP_ON_VS_OFF)} |")
    r5 = ratio(g("library", "rps"), g("library_off", "rps"))
    w(f"| throughput 5 / 5' (library mode vs the same app without observability) | {fmt(r5, 3)} "
      f"| ≥ {TARGET_RATIO_LIBRARY_VS_APP} "
      f"| {verdict(None if r5 is None else r5 >= TARGET_RATIO_LIBRARY_VS_APP)} |")
    # What sending the product's output costs any library, so the ratio no library sending it
    # can beat, and what library mode's own code adds beyond it.
    r5s = ratio(g("library_same", "rps"), g("library_off", "rps"))
    w(f"| throughput 5s / 5' (an app sending the product's output as constants vs the same app "
      f"without it: the best any library sending that output can do) | {fmt(r5s, 3)} "
      f"| (reported) | |")
    cl, cs5 = g("library", "cpu_us"), g("library_same", "cpu_us")
    own5 = cl - cs5 if None not in (cl, cs5) else None
    w(f"| CPU per request library mode adds beyond that app (5 − 5s) "
      f"| {fmt(own5, 1, ' µs')} | (reported) | |")
    w(f"| per-request logic natively (criterion, whole request) | "
      f"{fmt(ns / 1000 if ns else None, 2, ' µs')} | < {TARGET_NATIVE_NS / 1000:.0f} µs "
      f"| {verdict(None if ns is None else ns < TARGET_NATIVE_NS)} |")
    settings = m1("criterion.settings/defaults")
    settings_ns = float(settings) if settings != "n/a" else None
    w(f"| reading the default settings natively, once per instance (criterion) | "
      f"{fmt(settings_ns / 1000 if settings_ns else None, 2, ' µs')} "
      f"| < {TARGET_SETTINGS_NS / 1000:.0f} µs "
      f"| {verdict(None if settings_ns is None else settings_ns < TARGET_SETTINGS_NS)} |")
    w(f"| process start to /readyz 200, warm compilation cache | "
      f"{fmt(warm_s * 1000 if warm_s is not None else None, 0, ' ms')} "
      f"| < {TARGET_STARTUP_S * 1000:.0f} ms "
      f"| {verdict(None if warm_s is None else warm_s < TARGET_STARTUP_S)} |")
    w("")

    w("## Moderate load (about half of the product's peak)")
    w("")
    w(f"{m1('moderate_how')}")
    w("")
    w("| target | req/s | share of its own peak | p50 | p99 |")
    w("|---|---:|---:|---:|---:|")
    for t in ("baseline", "product"):
        s = moderate[t]
        if s is None:
            w(f"| {TARGETS[t]} | failed | | | |")
            continue
        w(f"| {TARGETS[t]} | {fmt(s['rps'])} | {fmt(ratio(s['rps'], g(t, 'rps')), 2)} "
          f"| {fmt_ms(s['p50_ms'])} | {fmt_ms(s['p99_ms'])} |")
    w("")

    tsv = m1("instructions_tsv", "")
    if tsv:
        w("## Instructions per request (callgrind, `bash bench/instructions.sh`)")
        w("")
        w("Every thread of runtime-host counted by callgrind over 10 s of `wrk -t1 -c4` "
          "(after 5 s of warm-up), divided by the requests served; `GET /hello`. Counts do not "
          "depend on what else the machine does, so these are the figures the targets are set "
          "in. Each configuration differs from the product (defaults) by what its row says: "
          "what turning one feature off saves is its row's difference from the product's.")
        w("")
        w("| configuration | instructions per request | requests counted |")
        w("|---|---:|---:|")
        for line in tsv.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].isdigit():
                w(f"| {parts[0]} | {int(parts[1]):,} | {int(parts[2]):,} |")
        w("")
        for line in m1("instructions_summary", "").splitlines():
            if line.strip():
                w(f"- {line.strip()}")
        w("")

    w("## Other figures")
    w("")
    w("| figure | value |")
    w("|---|---|")
    size = m1("component_size_bytes")
    w(f"| middleware component (`edge_observability.wasm`, profile `component`) | "
      f"{fmt(int(size)) + ' bytes' if size != 'n/a' else 'n/a'} |")
    for key, label in [("app_size_bytes", "demo app component (`hello_app.wasm`)"),
                       ("composed_size_bytes", "composed component (`wac plug`)"),
                       ("library_app_size_bytes", "library app (`library_app.wasm`)")]:
        v = m1(key)
        w(f"| {label} | {fmt(int(v)) + ' bytes' if v != 'n/a' else 'n/a'} |")
    for label, rec in startups.items():
        v = rec["seconds"]
        w(f"| start to /readyz 200, {label} | "
          f"{fmt(v * 1000 if v is not None else None, 0, ' ms')} |")
    for t in ("baseline", "product", "wasmtime", "upstream"):
        if peak[t]:
            w(f"| RSS after load, {TARGETS[t]} | {fmt(peak[t]['rss_kib'] / 1024, 1)} MiB "
              f"(peak {fmt(peak[t]['hwm_kib'] / 1024, 1)} MiB) |")
    w("")
    crit = [r for r in records if r["kind"] == "meta" and r["key"].startswith("criterion.")]
    if crit:
        w("Criterion (`cargo bench --bench middleware`), median time per call:")
        w("")
        w("| benchmark | time |")
        w("|---|---:|")
        for r in crit:
            w(f"| `{r['key'][len('criterion.'):]}` | {float(r['value']):,.0f} ns |")
        w("")

    w("## Exact commands")
    w("")
    w("Run from the repository root. Each server's stdout and stderr (for 2, 3 and 4 the access "
      "log, one line per request) go to `target/bench/logs/<target>.log`; the load commands "
      "ran once per round.")
    w("")
    w("```sh")
    for r in records:
        if r["kind"] == "meta" and r["key"].startswith("cmd."):
            w(f"# {r['key'][4:]}")
            w(r["value"])
    for t in TARGETS:
        if peak[t]:
            w(f"# load, {t}")
            w(peak[t]["cmd"])
    for t in ("baseline", "product"):
        if moderate[t]:
            w(f"# moderate load, {t}")
            w(moderate[t]["cmd"])
    for label, rec in startups.items():
        w(f"# start-up timing, {label} (timed from spawn to the first 200 from /readyz)")
        w(rec["cmd"])
    w("```")
    if failures:
        w("")
        w("## What failed")
        w("")
        for key, value in failures.items():
            w(f"- **{key}**:")
            w("")
            w("  ```")
            for line in value.splitlines():
                w("  " + line)
            w("  ```")
    text = "\n".join(L) + "\n"
    for path in [out] + ([copy] if copy else []):
        with open(path, "w") as f:
            f.write(text)
    print(text)


# --- small commands ------------------------------------------------------------------


def cmd_free_ports(argv):
    socks = []
    for _ in range(int(argv[0])):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def cmd_wait_http(argv):
    url, timeout = argv[0], float(argv[1])
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if http_status(url) == 200:
            return 0
        time.sleep(0.05)
    return 1


def cmd_cpu_busy(argv):
    """Percentage of all CPUs' time spent busy (not idle or waiting for I/O) over N seconds."""
    def snapshot():
        with open("/proc/stat") as f:
            values = [int(x) for x in f.readline().split()[1:]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)
    busy0, total0 = snapshot()
    time.sleep(float(argv[0]))
    busy1, total1 = snapshot()
    print(round(100 * (busy1 - busy0) / max(total1 - total0, 1)))


def cmd_meta(argv):
    append(argv[0], {"kind": "meta", "key": argv[1], "value": argv[2]})


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cmd, argv = sys.argv[1], sys.argv[2:]
    handler = {
        "free-ports": cmd_free_ports,
        "wait-http": cmd_wait_http,
        "meta": cmd_meta,
        "pace": cmd_pace,
        "wrk": cmd_wrk,
        "startup": cmd_startup,
        "report": cmd_report,
        "cpu-busy": cmd_cpu_busy,
    }.get(cmd)
    if handler is None:
        print(__doc__)
        return 2
    return handler(argv) or 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""CPU time the host spends per request: robust on a shared, noisy machine.

Usage: cpu_per_request.py PORT_OR_PID:URL ... (each entry `pid=URL`)
Runs wrk against each URL in turn (twice, interleaved) and prints host CPU microseconds per
request, read from /proc/<pid>/stat (utime + stime) before and after.
"""
import os, re, subprocess, sys

TICK = os.sysconf("SC_CLK_TCK")

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK

def run(pid, url, seconds=5, connections=16):
    before = cpu_seconds(pid)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True).stdout
    after = cpu_seconds(pid)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return (after - before) * 1e6 / requests, rps

if __name__ == "__main__":
    targets = [arg.split("=", 1) for arg in sys.argv[1:]]
    for round_ in range(int(os.environ.get("ROUNDS", "2"))):
        for pid, url in targets:
            us, rps = run(pid, url)
            print(f"{url:40s} {us:8.1f} us CPU/request {rps:9.0f} req/s")

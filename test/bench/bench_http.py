"""HTTP (SQ routes, driven by wrk) beside the same operations over the ZeroMQ client, and
the cost of metrics collection on the single-CGET round trip.

Usage: python test/bench/bench_http.py [--quick]   (needs wrk: test/bench/setup.sh installs it)
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import time
import urllib.request

import vtpu
from bench_roundtrip import COORD, vtpu_round
from common import ROOT, median, percentile

SELECT = "/api/v2/select?p=bench&c=1.1.1/1.1.1/1.1.1"
UNITS = {"us": 1.0, "ms": 1000.0, "s": 1e6}


def _wrk(url: str, seconds: float, connections: int, script: str | None = None) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} failed responses:\n{out}")
    return {"per_s": rps, "p50_us": float(m.group(1)) * UNITS[m.group(2)]}


def _zmq(call, seconds: float) -> dict:
    for _ in range(500):
        call(0)
    lat, i, t_end = [], 0, time.perf_counter() + seconds
    t_start = time.perf_counter()
    while True:
        t0 = time.perf_counter_ns()
        call(i)
        lat.append((time.perf_counter_ns() - t0) / 1000.0)
        i += 1
        if time.perf_counter() >= t_end:
            break
    lat.sort()
    return {"per_s": i / (time.perf_counter() - t_start), "p50_us": percentile(lat, 0.5)}


def http_vs_zmq(rounds: int, seconds: float) -> dict:
    sc = vtpu.Sidecar(["--http", "0"]).start()
    try:
        with vtpu.connect(sc.address) as c:
            urllib.request.urlopen(sc.http_url + "/api/v2/update?p=bench&c=1.1.1/1.1.1/1.1.1&s=0123456789abcdef").read()
            c.cput(COORD, "0123456789abcdef")
            runs: dict[str, list[dict]] = {k: [] for k in ("http_select", "http_insert", "http_select_c8", "zmq_select", "zmq_insert")}
            script = str(ROOT / "test" / "bench" / "wrk_insert.lua")
            # Warm-up (JIT, connection paths), unmeasured, for both front ends.
            _wrk(sc.http_url + SELECT, 1, 1)
            _wrk(sc.http_url, 1, 1, script)
            for _ in range(rounds):
                runs["http_select"].append(_wrk(sc.http_url + SELECT, seconds, 1))
                runs["http_insert"].append(_wrk(sc.http_url, seconds, 1, script))
                runs["http_select_c8"].append(_wrk(sc.http_url + SELECT, seconds, 8))
                runs["zmq_select"].append(_zmq(lambda i: c.cget(COORD), seconds))
                runs["zmq_insert"].append(_zmq(lambda i: c.cput(f"1.1.1/1.1.1/2.{i // 999 % 999 + 1}.{i % 999 + 1}", "0123456789abcdef"), seconds))
    finally:
        sc.stop()
    out = {k: {f: median([r[f] for r in v]) for f in ("per_s", "p50_us")} for k, v in runs.items()}
    out.update(rounds=rounds, seconds=seconds)
    return out


def metrics_overhead(rounds: int, n: int) -> dict:
    """Single-CGET round trip p50 with metrics on and off (two sidecars, rounds alternated)."""
    on_p50, off_p50 = [], []
    with vtpu.Sidecar() as on, vtpu.Sidecar(["--no-metrics"]) as off, vtpu.connect(on.address) as con, vtpu.connect(off.address) as coff:
        for c in (con, coff):
            c.cput(COORD, b"0123456789abcdef")
        for r in range(rounds):
            pair = [(con, on_p50), (coff, off_p50)]
            for c, sink in pair if r % 2 == 0 else pair[::-1]:
                sink.append(percentile(vtpu_round(c, n), 0.5))
    engine = json.loads(subprocess.run(["node", "test/bench/metrics_bench.js", str(max(3, rounds))], cwd=ROOT,
                                       capture_output=True, text=True, check=True).stdout)
    on_m, off_m = median(on_p50), median(off_p50)
    return {"on_p50_us": on_m, "off_p50_us": off_m, "overhead": on_m / off_m - 1,
            "on_p50_rounds_us": on_p50, "off_p50_rounds_us": off_p50, "rounds": rounds, "calls_per_round": n, "engine": engine}


def run(rounds: int = 5, seconds: float = 5.0, n: int = 20000) -> dict:
    if not shutil.which("wrk"):
        return {"error": "wrk is not installed (run test/bench/setup.sh)", "metrics": metrics_overhead(rounds, n)}
    return {"http": http_vs_zmq(rounds, seconds), "metrics": metrics_overhead(rounds, n)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one short round (a smoke run)")
    a = ap.parse_args()
    print(json.dumps(run(rounds=2, seconds=1.0, n=3000) if a.quick else run(), indent=1))

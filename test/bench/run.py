"""`make bench`: runs every benchmark with its peer in the same run and rewrites BENCHMARKS.md.

Each figure is the median of several rounds printed by the scripts beside this one; nothing
here is typed in by hand. Each suite's result is kept with its command, date and machine in
test/bench/results/<suite>.json, and BENCHMARKS.md is rendered from all kept results, so one
suite can be re-run alone. Usage: python test/bench/run.py [--quick] [--only core,…]
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_attend  # noqa: E402
import bench_batch  # noqa: E402
import bench_durable  # noqa: E402
import bench_fastpath  # noqa: E402
import bench_moe  # noqa: E402
import bench_http  # noqa: E402
import bench_kg  # noqa: E402
import bench_nearest  # noqa: E402
import bench_qwen3  # noqa: E402
import bench_roundtrip  # noqa: E402
import bench_sqlite  # noqa: E402
import bench_sync  # noqa: E402
import crange_data  # noqa: E402
from common import ROOT, machine  # noqa: E402
from report import render  # noqa: E402


SUITES_DIR = Path(__file__).resolve().parent / "results"


def engine_bench(path: str, rounds: int) -> dict:
    out = subprocess.run(["node", "test/bench/engine_bench.js", path, str(rounds)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def core(quick: bool) -> dict:
    """Issue 2's figures: single-op latency, batched throughput, engine CGET and CRANGE."""
    n = 100_000 if quick else bench_batch.N
    rounds = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="vtpu-bench-") as d:
        path = f"{d}/crange.u32"
        crange_data.make(path)
        return {
            "roundtrip": bench_roundtrip.run(rounds=rounds, n=2000 if quick else 20000),
            "batch": bench_batch.run(rounds=min(rounds, 3), n=n),
            "engine": engine_bench(path, rounds),
            "sqlite": bench_sqlite.run(path, repeats=5 if quick else 30),
        }


#: Suite name -> runner(quick) -> JSON-able result; report.py renders each by the same name.
SUITES = {
    "core": core,
    "fastpath": lambda quick: bench_fastpath.run(quick=quick),
    "attend": lambda quick: bench_attend.run(quick=quick, rounds=3 if quick else 5),
    "moe": lambda quick: bench_moe.run(quick=quick),
    "nearest": lambda quick: bench_nearest.run(quick=quick),
    "kg": lambda quick: bench_kg.run(quick=quick),
    "qwen3": lambda quick: bench_qwen3.run(quick=quick),
    "http": lambda quick: bench_http.run(rounds=2 if quick else 5, seconds=1.0 if quick else 5.0, n=2000 if quick else 20000),
    "durable": lambda quick: bench_durable.run(quick=quick),
    "sync": lambda quick: bench_sync.run(quick=quick),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds (a smoke run; writes nothing)")
    ap.add_argument("--only", default="", help="comma-separated suites to run (default: all): " + ", ".join(SUITES))
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        ap.error(f"unknown suite(s) {unknown}; known: {list(SUITES)}")
    SUITES_DIR.mkdir(exist_ok=True)
    for name in names:
        result = SUITES[name](args.quick)
        print(json.dumps({name: result}, indent=1), flush=True)
        if args.quick:
            continue
        meta = {
            "command": "make bench" if not args.only else f"python test/bench/run.py --only {name}",
            "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        (SUITES_DIR / f"{name}.json").write_text(json.dumps({"meta": meta, "result": result}, indent=1) + "\n")
    if not args.quick:
        saved = {p.stem: json.loads(p.read_text()) for p in sorted(SUITES_DIR.glob("*.json")) if p.stem in SUITES}
        (ROOT / "BENCHMARKS.md").write_text(render(saved, list(SUITES)))
        print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()

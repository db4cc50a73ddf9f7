"""`make bench`: runs every benchmark with its peer in the same run and rewrites BENCHMARKS.md.

Each figure is the median of several rounds printed by the scripts beside this one; nothing
here is typed in by hand. Usage: python test/bench/run.py [--quick]
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
import bench_moe  # noqa: E402
import bench_roundtrip  # noqa: E402
import bench_sqlite  # noqa: E402
import crange_data  # noqa: E402
from common import ROOT, machine  # noqa: E402
from report import render  # noqa: E402


def engine_bench(path: str, rounds: int) -> dict:
    out = subprocess.run(["node", "test/bench/engine_bench.js", path, str(rounds)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds and rows (a smoke run; does not write BENCHMARKS.md)")
    args = ap.parse_args()
    n = 100_000 if args.quick else bench_batch.N
    rounds = 2 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="vtpu-bench-") as d:
        path = f"{d}/crange.u32"
        crange_data.make(path)
        results = {
            "roundtrip": bench_roundtrip.run(rounds=rounds, n=2000 if args.quick else 20000),
            "batch": bench_batch.run(rounds=min(rounds, 3), n=n),
            "engine": engine_bench(path, rounds),
            "sqlite": bench_sqlite.run(path, repeats=5 if args.quick else 30),
            "attend": bench_attend.run(quick=args.quick, rounds=3 if args.quick else 5),
            "moe": bench_moe.run(quick=args.quick),
        }
    print(json.dumps(results, indent=1))
    if args.quick:
        return
    meta = {
        "command": "make bench",
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    (ROOT / "BENCHMARKS.md").write_text(render(results, meta))
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()

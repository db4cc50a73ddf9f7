"""`make bench`: runs every benchmark with its peer in the same run and rewrites BENCHMARKS.md.

Each figure is the median of several rounds printed by the scripts beside this one; nothing
here is typed in by hand. Each suite's result is kept with its command, date and machine in
test/bench/results/<suite>.json, and BENCHMARKS.md is rendered from all kept results, so one
suite can be re-run alone; the plots go to benchmarks/ beside it. `--quick` (`make bench-quick`, CI)
runs a reduced size of every suite and checks only that each produced its figures and that the
report renders from them. Usage: python test/bench/run.py [--quick] [--only core,…]
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_attend  # noqa: E402
import bench_batch  # noqa: E402
import bench_cluster  # noqa: E402
import bench_crange_e2e  # noqa: E402
import bench_durable  # noqa: E402
import bench_fastpath  # noqa: E402
import bench_moe  # noqa: E402
import bench_http  # noqa: E402
import bench_kg  # noqa: E402
import bench_nearest  # noqa: E402
import bench_qwen3  # noqa: E402
import bench_qwen3_full  # noqa: E402
import bench_roundtrip  # noqa: E402
import bench_sqlite  # noqa: E402
import bench_sync  # noqa: E402
import crange_data  # noqa: E402
from common import ROOT, machine  # noqa: E402
from report import render  # noqa: E402
from report_plots import write as write_plots  # noqa: E402


SUITES_DIR = Path(__file__).resolve().parent / "results"
#: The plots' folder beside BENCHMARKS.md (relative to it, as the page embeds them).
PLOTS_DIR = "benchmarks"


def engine_bench(path: str, rounds: int, n: int) -> dict:
    out = subprocess.run(["node", "test/bench/engine_bench.js", path, str(rounds), str(n)], cwd=ROOT,
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
            "engine": engine_bench(path, rounds, n),
            "sqlite": bench_sqlite.run(path, repeats=5 if quick else 30),
            "crange_e2e": bench_crange_e2e.run(path, repeats=5 if quick else 30),
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
    "qwen3_full": lambda quick: bench_qwen3_full.run(quick=quick),
    "http": lambda quick: bench_http.run(rounds=2 if quick else 5, seconds=1.0 if quick else 5.0, n=2000 if quick else 20000),
    "durable": lambda quick: bench_durable.run(quick=quick),
    "sync": lambda quick: bench_sync.run(quick=quick),
    "cluster": lambda quick: bench_cluster.run(quick=quick),
}


def _figures(x) -> list[float]:
    """Every number in a result (bools aside)."""
    if isinstance(x, dict):
        return [f for v in x.values() for f in _figures(v)]
    if isinstance(x, list):
        return [f for v in x for f in _figures(v)]
    return [float(x)] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


def check(results: dict, report_dir: Path) -> list[str]:
    """`make bench-quick`'s assertions, never about speed: each suite produced finite figures, and
    the report (claims table and plots included) renders from them. Returns the problems found."""
    problems = []
    for name, res in results.items():
        figs = _figures(res)
        if not figs or not all(math.isfinite(f) for f in figs if f == f):
            problems.append(f"{name}: no figures, or infinite ones")
    saved = {name: {"meta": {"command": "make bench-quick", "machine": machine(), "date": "quick run"}, "result": res}
             for name, res in results.items()}
    try:
        plots = write_plots(results, report_dir / PLOTS_DIR)
        md = render(saved, [n for n in SUITES if n in results], plots)
    except Exception:  # a renderer that breaks on fresh results is what this check is for
        return problems + ["the report did not render:\n" + traceback.format_exc()]
    (report_dir / "BENCHMARKS.md").write_text(md)
    problems += [f"seeds' claims: {line}" for line in md.splitlines() if "| not judged |" in line and "not run" not in line]
    return problems


def write_report() -> None:
    """BENCHMARKS.md and its plots from every kept suite result."""
    saved = {p.stem: json.loads(p.read_text()) for p in sorted(SUITES_DIR.glob("*.json")) if p.stem in SUITES}
    plots = write_plots({n: s["result"] for n, s in saved.items()}, ROOT / PLOTS_DIR)
    (ROOT / "BENCHMARKS.md").write_text(render(saved, list(SUITES), plots))
    print("wrote BENCHMARKS.md and " + PLOTS_DIR + "/")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="reduced size of every suite; checks figures and rendering (never speed); keeps no results")
    ap.add_argument("--only", default="", help="comma-separated suites to run (default: all): " + ", ".join(SUITES))
    ap.add_argument("--report-dir", default="", help="--quick: where to write the rendered check report (default: a temp dir)")
    ap.add_argument("--render-only", action="store_true", help="run nothing: rewrite BENCHMARKS.md and its plots from the kept results")
    args = ap.parse_args()
    if args.render_only:
        return write_report()
    names = [n for n in args.only.split(",") if n] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        ap.error(f"unknown suite(s) {unknown}; known: {list(SUITES)}")
    SUITES_DIR.mkdir(exist_ok=True)
    results, failed = {}, {}
    for name in names:
        t0 = time.perf_counter()
        try:
            result = SUITES[name](args.quick)
        except Exception:  # one broken suite must not hide the others' figures
            failed[name] = traceback.format_exc()
            print(f"suite {name} FAILED:\n{failed[name]}", file=sys.stderr, flush=True)
            continue
        print(json.dumps({name: result}, indent=1), flush=True)
        print(f"suite {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        results[name] = result
        if args.quick:
            continue
        meta = {
            "command": "make bench" if not args.only else f"python test/bench/run.py --only {name}",
            "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        (SUITES_DIR / f"{name}.json").write_text(json.dumps({"meta": meta, "result": result}, indent=1) + "\n")
    if args.quick:
        report_dir = Path(args.report_dir or tempfile.mkdtemp(prefix="vtpu-bench-quick-"))
        report_dir.mkdir(parents=True, exist_ok=True)
        problems = [f"{n}: the suite raised (see above)" for n in failed] + check(results, report_dir)
        print(f"quick report: {report_dir / 'BENCHMARKS.md'}")
        if problems:
            sys.exit("bench-quick FAILED:\n" + "\n".join(problems))
        print(f"bench-quick: {len(results)} suites ran and produced their figures; the report rendered")
        return
    write_report()
    if failed:
        sys.exit(f"suites that failed (their previous results, if any, were kept): {', '.join(failed)}")


if __name__ == "__main__":
    main()

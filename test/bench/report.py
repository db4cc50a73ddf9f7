"""Renders benchmark results (see run.py) as BENCHMARKS.md: our figure, the peer's, the ratio,
the target where one exists, and the verdict under report_common's rules — a miss is printed
as a miss. Each suite's section lives in its own module; this one holds the HTTP section, the
page's head (the machine named once) and the order of the sections."""
from __future__ import annotations

import bench_durable
import bench_sync
import report_attend
import report_claims
import report_cluster
import report_compute
import report_core
import report_fastpath
import report_qwen3
import report_qwen3_full
from report_common import HEAD, _fmt, _row, at_most, ratio_rounds


def _http(h: dict) -> list[str]:
    m = h["metrics"]
    lines = ["## HTTP (SQ routes) beside ZeroMQ, one caller", ""]
    if "http" in h:
        r = h["http"]
        lines += [
            f"HTTP: `wrk -t1 -c1` on loopback against `GET /api/v2/select` and `/api/v2/insert` (16-byte scrolls, "
            f"inserts spread over many scrolls by `test/bench/wrk_insert.lua`). Peer: the same operations from one "
            f"Python thread over the ZeroMQ client (`cget`; `cput`, which overwrites where SQ's insert appends). "
            f"{r['rounds']} rounds × {r['seconds']:g} s after an unmeasured warm-up, median of the rounds. wrk is C; the "
            "ZeroMQ figures include the Python client's own time, so the ratio compares front ends as a user meets them.",
            "", "| operation | HTTP ops/s | HTTP p50 | ZeroMQ ops/s | ZeroMQ p50 | HTTP / ZeroMQ ops/s |", "|---|---|---|---|---|---|",
        ]
        for name, hk, zk in (("select", "http_select", "zmq_select"), ("insert", "http_insert", "zmq_insert")):
            a, b = r[hk], r[zk]
            lines.append(f"| {name} | {_fmt(a['per_s'], '/s')} | {_fmt(a['p50_us'], ' µs')} | {_fmt(b['per_s'], '/s')} | "
                         f"{_fmt(b['p50_us'], ' µs')} | {a['per_s'] / b['per_s']:.2f}× |")
        c8 = r["http_select_c8"]
        lines += ["", f"HTTP select with 8 connections (`wrk -t1 -c8`): {_fmt(c8['per_s'], '/s')}, p50 {_fmt(c8['p50_us'], ' µs')}.", ""]
    else:
        lines += [f"Not measured: {h['error']}.", ""]
    e = m["engine"]
    # the overhead over the extreme pairings of the two sidecars' rounds: its spread in this run
    overheads = [x - 1 for x in ratio_rounds(m.get("on_p50_rounds_us", [m["on_p50_us"]]), m.get("off_p50_rounds_us", [m["off_p50_us"]]))]
    pct = lambda lo, hi: f"{100 * lo:+.1f}% to {100 * hi:+.1f}% over the rounds"  # noqa: E731
    lines += [
        "## Cost of metrics collection",
        f"Single-CGET round trip from Python (as above), one sidecar with metrics and one started with `--no-metrics`, "
        f"rounds alternated: {m['rounds']} rounds × {m['calls_per_round']} calls, median p50.",
        "", HEAD,
        _row("CGET p50 with metrics", _fmt(m["on_p50_us"], " µs"), _fmt(m["off_p50_us"], " µs") + " (off)",
             f"{100 * m['overhead']:+.1f}%", "≤ 3%", at_most(overheads, 0.03, pct)),
        "",
        f"Engine side (`test/bench/metrics_bench.js`): one `Metrics.record` call costs {e['record_ns']:.0f} ns beside "
        f"{e['cget_engine_ns']:.0f} ns for the engine to execute one single CGET; the server adds two `performance.now()` reads.",
        "",
    ]
    if min(overheads) > 0.03:
        lines += [f"**Miss:** even the closest pair of rounds differs by {pct(min(overheads), min(overheads))}. What metrics "
                  f"add per request is one `Metrics.record` ({e['record_ns']:.0f} ns, "
                  f"{100 * e['record_ns'] / 1000 / m['off_p50_us']:.2f}% of the {_fmt(m['off_p50_us'], ' µs')} round trip) "
                  "and two clock reads.", ""]
    return lines




#: Suite name -> renderer(result) -> markdown lines (run.py's SUITES names the same suites).
RENDERERS = {"core": report_core.render, "attend": report_attend.render, "moe": report_compute.moe,
             "nearest": report_compute.nearest, "kg": report_compute.kg, "http": _http, "durable": bench_durable.render,
             "qwen3": report_qwen3.render, "qwen3_full": report_qwen3_full.render, "sync": bench_sync.render, "fastpath": report_fastpath.render,
             "cluster": report_cluster.render}

#: Suite name -> plot files (relative to BENCHMARKS.md) embedded after its section, from report_plots.
Plots = dict[str, list[tuple[str, str]]]


def render(saved: dict, order: list[str], plots: Plots | None = None) -> str:
    """BENCHMARKS.md from kept suite results ``{name: {"meta": …, "result": …}}`` and the plots
    written for them ``{name: [(caption, path), …]}``."""
    machines = sorted({s["meta"]["machine"] for s in saved.values()})
    out = [
        "# Benchmarks",
        "",
        "Every figure below was printed by the command named in its section, each beside its peer measured in the "
        "same run. `make bench` re-runs them all in one go; `make bench-quick` runs a reduced size of each (CI).",
        "",
        f"**Machine:** {machines[0]}." if len(machines) == 1 else
        "**Machines (results from more than one machine: rerun `make bench` for one):** " + "; ".join(machines) + ".",
        "",
        "Verdicts: *met* is stated only where the issue or the design sets a target (target *none*: no verdict); where "
        "the run's own spread (slowest–fastest round) straddles the target the verdict is *within noise* and the spread "
        "is printed.",
        "",
    ]
    out += report_claims.render({name: s["result"] for name, s in saved.items()})
    for name in order:
        if name not in saved:
            out += [f"## {name}", "", "Not run yet on this machine (`python test/bench/run.py --only " + name + "`).", ""]
            continue
        meta = saved[name]["meta"]
        other = f", on another machine: {meta['machine']}" if len(machines) > 1 else ""
        out += [f"<!-- suite {name} -->", f"*Suite `{name}`: `{meta['command']}`, {meta['date']}{other}.*", ""]
        out += RENDERERS[name](saved[name]["result"])
        for caption, path in (plots or {}).get(name, []):
            out += [f"![{caption}]({path})", ""]
    return "\n".join(out) + "\n"

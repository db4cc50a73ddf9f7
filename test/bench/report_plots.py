"""PNG plots for BENCHMARKS.md (matplotlib, no display): written into a folder beside it and
embedded after their suite's section. Each plot draws only figures from the results file."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / name, dpi=110)
    plt.close(fig)
    return f"{folder.name}/{name}"


def latency(r: dict, folder: Path) -> list[tuple[str, str]]:
    """Single-CGET latency distribution against the bare echo (the last round's percentiles)."""
    rt = r["roundtrip"]
    if "cget_quantiles_us" not in rt:
        return []
    q = [100 * x for x in rt["quantiles"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(rt["cget_quantiles_us"], q, label="vTPU CGET (Python client)")
    ax.plot(rt["echo_quantiles_us"], q, label="pyzmq → zeromq.js echo")
    ax.set_xscale("log")
    ax.set_xlabel("round-trip latency (µs, log)")
    ax.set_ylabel("percentile")
    ax.set_title("Single CGET vs bare echo: latency distribution")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return [("Single CGET latency distribution vs the echo", _save(fig, folder, "latency.png"))]


def attend(r: dict, folder: Path) -> list[tuple[str, str]]:
    """CATTEND prefill time against S, beside masked SDPA and compiled flex_attention."""
    pre = sorted(r["prefill"], key=lambda p: p["s"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key, label in (("ours_s", "vTPU CATTEND (end to end)"), ("sdpa_s", "SDPA, boolean mask"),
                       ("flex_s", "torch.compile(flex_attention)"), ("transfer_floor_s", "transfer floor (echo, no compute)")):
        pts = [(p["s"], p[key] * 1e3) for p in pre if key in p]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length S")
    ax.set_ylabel("prefill time (ms, log)")
    ax.set_title(f"Sparse attention prefill (window {r['shape']['window']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return [("CATTEND prefill time vs S against SDPA and flex_attention", _save(fig, folder, "attend.png"))]


def qwen3(r: dict, folder: Path) -> list[tuple[str, str]]:
    """Qwen3 tokens/s per variant (hybrid) and per transformers peer, prefill and decode."""
    vs = [(name, v) for name, v in r["variants"].items() if "error" not in v]
    if not vs:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, phase in zip(axes, ("prefill", "decode")):
        names = [n for n, _ in vs]
        vals = [v[f"{phase}_tps"] for _, v in vs]
        colors = ["tab:gray" if n.startswith(("torch", "llama.cpp")) else "tab:blue" for n in names]
        ax.barh(names, vals, color=colors)
        ax.set_xlabel("tokens/s")
        ax.set_title(f"{phase} (grey: transformers, llama.cpp)")
        ax.invert_yaxis()
    return [("Qwen3 tokens/s per variant and transformers peer", _save(fig, folder, "qwen3.png"))]


def nearest(r: dict, folder: Path) -> list[tuple[str, str]]:
    """CNEAREST queries/s: ours and both exact peers, one thread and all."""
    rows = [("vTPU, 1 thread", r["engine"]["metrics"]["l2"]["queries_per_s"]),
            ("vTPU, read pool", r["engine"]["pool"]["queries_per_s"]),
            ("vTPU, end to end", r["e2e"]["queries_per_s"])]
    for peer, label in (("ckdtree", "cKDTree"), ("faiss", "FAISS flat")):
        for which, threads in (("one_thread", "1 thread"), ("all_threads", "all")):
            got = r.get(peer, {}).get(which, {}).get("queries_per_s")
            if got:
                rows.append((f"{label}, {threads}", got))
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.barh([n for n, _ in rows], [v for _, v in rows], color=["tab:blue"] * 3 + ["tab:gray"] * (len(rows) - 3))
    ax.set_xscale("log")
    ax.set_xlabel("queries/s (log)")
    ax.set_title(f"Exact k={r['k']} nearest over {r['n']:,} points")
    ax.invert_yaxis()
    return [("CNEAREST queries/s beside cKDTree and FAISS", _save(fig, folder, "nearest.png"))]


#: Suite name -> plotter(result, folder) -> [(caption, path relative to BENCHMARKS.md)].
PLOTTERS = {"core": latency, "attend": attend, "qwen3": qwen3, "nearest": nearest}


def write(results: dict, folder: Path) -> dict[str, list[tuple[str, str]]]:
    """Writes every plot whose suite has a result into ``folder``; returns what to embed, by suite."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: PLOTTERS[name](res, folder) for name, res in results.items() if name in PLOTTERS}

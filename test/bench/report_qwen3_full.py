"""BENCHMARKS.md section of the full-size Qwen3-30B-A3B suite (``bench_qwen3_full``): the sidecar's
q4 experts against llama.cpp Q4_0 on the same weights, memory of every process, transformers alone."""
from __future__ import annotations

from report_common import HEAD, _fmt, _row, at_least, ratio_rounds, spread, gib



def _tps(rounds: list[float]) -> str:
    lo, hi = spread(rounds)
    return f"{_fmt(sorted(rounds)[len(rounds) // 2], '/s')} ({_fmt(lo)}–{_fmt(hi)})"


def _transformers(t: dict, layers: int) -> str:
    if t.get("built"):
        return (f"transformers alone built the whole model in torch (bf16, {layers} layers, {gib(t['bytes'])} of parameters) "
                f"under an address-space cap of {gib(t['cap_bytes'])}, in {t['seconds']:.1f} s.")
    cap = f" under an address-space cap of {gib(t['cap_bytes'])} (the machine's memory less 2 GiB)" if "cap_bytes" in t else ""
    took = f" after {t['seconds']:.1f} s" if "seconds" in t else ""
    return (f"transformers alone, building the whole model in torch (bf16){cap}, failed{took}: `{t.get('error', '?')}`. "
            "Uncapped, Linux overcommits and the OOM killer ends the process once initialisation touches the pages.")


def render(r: dict) -> list[str]:
    c, s, ll = r["config"], r["sidecar"], r.get("llama", {})
    shape = "Qwen3-30B-A3B's exact config" if not c["overrides"] else "a toy shape of it (quick run)"
    lines = [f"## Qwen3-30B-A3B at full size: {c['layers']} of 48 layers of {shape}, sidecar q4 experts vs llama.cpp Q4_0"]
    if "error" in s:
        return lines + ["", f"The sidecar run failed: {s['error']}.", ""]
    lines += [
        f"`examples/qwen3_30b_a3b.py`: seeded random weights (the reply is gibberish by design), the dense half in torch "
        f"{s['dtype']} ({s['threads']} threads), the experts generated a chunk at a time straight into the sidecar as "
        f"{s['expert_format']}. Peer: llama.cpp through node-llama-cpp on the same weights written as GGUF (experts Q4_0, "
        f"dense matrices BF16, norms and routers F32), the same {len(s['prompt_ids'])} prompt ids and threads. Prefill: "
        f"the prompt; decode: {c['new_tokens']} greedy tokens. Median of {c['rounds']} round{'s' if c['rounds'] != 1 else ''} after a warm-up "
        "(spread: slowest–fastest round). Each in its own process, one after the other (`test/bench/bench_qwen3_full.py`).",
        "", HEAD,
    ]
    # an external sidecar's peak is not readable here: no memory ratio rather than a Python-only one
    both = s["python_peak_rss"] + s["sidecar_peak_rss"] if s["sidecar_peak_rss"] else None
    if "error" in ll or not ll:
        lines += [_row(f"{p} tokens/s, {s['expert_format']} experts", _tps(s[f"{p}_tps_rounds"]), "–", "–", "reported", True) for p in ("prefill", "decode")]
        lines += ["", f"llama.cpp did not run: {ll.get('error', 'not run')}."]
    else:
        for phase, target in (("prefill", None), ("decode", 0.5)):
            pairs = ratio_rounds(s[f"{phase}_tps_rounds"], ll[f"{phase}_tps_rounds"])
            ratio = s[f"{phase}_tps"] / ll[f"{phase}_tps"]
            lines.append(_row(f"{phase} tokens/s, {s['expert_format']} experts vs llama.cpp Q4_0", _tps(s[f"{phase}_tps_rounds"]),
                              _tps(ll[f"{phase}_tps_rounds"]), f"{ratio:.2f}× ({min(pairs):.2f}–{max(pairs):.2f})",
                              f"≥ {target}× (target; moonshot 1×)" if target else "reported",
                              at_least(pairs, target) if target else True))
        lines.append(_row("peak memory (Python + sidecar) vs llama.cpp (its process)", gib(both), gib(ll["peak_rss_bytes"]),
                          f"{both / ll['peak_rss_bytes']:.2f}×" if both else "–", "reported", True))
        n = min(len(s["tokens"]), len(ll["tokens"]))
        same = s["tokens"][:n] == ll["tokens"][:n]
        lines += ["", f"Greedy tokens: {'the same' if same else '**not** the same'} in both for the {n} compared "
                  f"({'same weights, same prompt' if same else 'the two 4-bit formats round the same weights differently: Q4_0 keeps fp16 scales, the sidecar fp32 ones'}). "
                  f"GGUF file: {gib(ll['gguf_bytes'])}, written in {ll['gguf_write_s']:.0f} s (not timed in the figures)."]
    lines += [
        "",
        f"Memory: Python peaked at {gib(s['python_peak_rss'])} and the sidecar at {gib(s['sidecar_peak_rss'])}; a layer "
        f"holds {s['expert_bytes_per_layer'] / 2**20:.0f} MiB of {s['expert_format']} expert weights, the sidecar's RSS grew "
        f"{s['sidecar_rss_per_layer'] / 2**20:.0f} MiB a layer after the first, and torch holds "
        f"{s['dense_bytes_per_layer'] / 2**20:.0f} MiB of dense weights a layer plus {gib(s['fixed_bytes'])} fixed "
        f"(embeddings, lm_head). The experts took {s['upload_s']:.0f} s to generate and upload "
        f"({s['upload_s'] / c['layers']:.1f} s a layer)."
        + ("" if c["layers"] == 48 else f" At these rates all 48 layers would take about {gib(s['projected_48_layers_bytes'])} "
           f"in both processes; this machine fits about {s['deepest_fitting_layers']} (a projection, not a measurement)."),
        "",
        _transformers(r.get("transformers", {}), c["layers"]),
        "",
    ]
    return lines

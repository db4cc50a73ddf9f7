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


def _pair(s: dict, ll: dict, dense: str, ours_bytes: int | None, memory: str) -> list[str]:
    """Rows of one sidecar variant against its llama.cpp peer (the same dense precision)."""
    peer = f"llama.cpp Q4_0 experts, {ll.get('dense', 'BF16')} dense"  # results from before the Q8_0 pair had BF16 only
    if "error" in ll or not ll:
        return ([_row(f"{p} tokens/s, {s['expert_format']} experts, {dense}", _tps(s[f"{p}_tps_rounds"]), "–", "–", "reported", True)
                 for p in ("prefill", "decode")] + ["", f"llama.cpp ({dense} pair) did not run: {ll.get('error', 'not run')}.", ""])
    rows = []
    for phase, target in (("prefill", None), ("decode", 0.5)):
        pairs = ratio_rounds(s[f"{phase}_tps_rounds"], ll[f"{phase}_tps_rounds"])
        ratio = s[f"{phase}_tps"] / ll[f"{phase}_tps"]
        rows.append(_row(f"{phase} tokens/s, {s['expert_format']} experts + {dense} vs {peer}", _tps(s[f"{phase}_tps_rounds"]),
                         _tps(ll[f"{phase}_tps_rounds"]), f"{ratio:.2f}× ({min(pairs):.2f}–{max(pairs):.2f})",
                         f"≥ {target}× (target; moonshot 1×)" if target else "reported", at_least(pairs, target) if target else True))
    rows.append(_row(f"memory ({memory}) vs llama.cpp ({ll.get('dense', 'BF16')} dense, its process's peak)", gib(ours_bytes),
                     gib(ll["peak_rss_bytes"]), f"{ours_bytes / ll['peak_rss_bytes']:.2f}×" if ours_bytes else "–", "reported", True))
    return rows


def _same_tokens(s: dict, ll: dict) -> str:
    n = min(len(s["tokens"]), len(ll["tokens"]))
    same = s["tokens"][:n] == ll["tokens"][:n]
    why = ("same weights, same prompt" if same else "the two sides round the same weights differently: 4-bit blocks of 128 with "
           "fp32 scales against Q4_0's blocks of 32 with fp16 ones" + ("; int8 per row against Q8_0's blocks of 32" if ll.get("dense") == "Q8_0" else ""))
    return (f"Greedy tokens ({ll.get('dense', 'BF16')} dense pair): {'the same' if same else '**not** the same'} in both for the {n} compared ({why}); "
            f"GGUF {gib(ll['gguf_bytes'])}, written in {ll['gguf_write_s']:.0f} s (not timed in the figures).")


def _rest(i8: dict) -> str:
    """What the int8 run kept in float (embeddings, norms, routers), when its result says."""
    return f"; embeddings, norms and routers in {i8['rest_dtype']}" if i8.get("rest_dtype") else ""


def render(r: dict) -> list[str]:
    c, s, ll = r["config"], r["sidecar"], r.get("llama", {})
    shape = "Qwen3-30B-A3B's exact config" if not c["overrides"] else "a toy shape of it (quick run)"
    lines = [f"## Qwen3-30B-A3B at full size: {c['layers']} of 48 layers of {shape}, sidecar q4 experts vs llama.cpp Q4_0"]
    if "error" in s:
        return lines + ["", f"The sidecar run failed: {s['error']}.", ""]
    lines += [
        f"`examples/qwen3_30b_a3b.py`: seeded random weights (the reply is gibberish by design), the dense half in torch "
        f"{s['dtype']} ({s['threads']} threads), the experts generated a chunk at a time straight into the sidecar as "
        f"{s['expert_format']}"
        + ("; then, on the same upload, with the attention projections and lm_head converted to torch's dynamic int8 "
           f"(`vtpu.integrations.dense_int8`{_rest(s['int8_dense'])})" if s.get("int8_dense") else "")
        + (f"; then with those matrices held in the sidecar instead, as {s['sidecar_dense']['format']} dense layers "
           "(`vq.offload_projections`, `vq.offload_head`; the same seeded weights, the rest of the dense half in float32)"
           if s.get("sidecar_dense") else "")
        + ". Peers: llama.cpp through node-llama-cpp on the same weights written as GGUF (experts Q4_0; dense matrices BF16"
        + (", or Q8_0 beside the int8 variant" if s.get("int8_dense") else "")
        + f"; norms and routers F32), the same {len(s['prompt_ids'])} prompt ids and threads. Each variant is judged "
        "against the peer of its own dense precision. Prefill: "
        f"the prompt; decode: {c['new_tokens']} greedy tokens. Median of {c['rounds']} round{'s' if c['rounds'] != 1 else ''} after a warm-up "
        "(spread: slowest–fastest round). Each in its own process, one after the other (`test/bench/bench_qwen3_full.py`).",
        "", HEAD,
    ]
    # an external sidecar's peak is not readable here: no memory ratio rather than a Python-only one
    both = s["python_peak_rss"] + s["sidecar_peak_rss"] if s["sidecar_peak_rss"] else None
    lines += _pair(s, ll, f"{s['dtype']} dense", both, "Python + sidecar, peaks")
    i8, lq = s.get("int8_dense"), r.get("llama_q8_dense")
    if i8:
        # Python's peak was the first variant's: after the conversion its current RSS is what it holds
        now = i8["python_rss_after"] + s["sidecar_peak_rss"] if s["sidecar_peak_rss"] else None
        lines += _pair({**s, **i8}, lq or {"error": "not run"}, "int8 dense", now, "Python's RSS after the run + the sidecar's peak")
    sd = s.get("sidecar_dense")
    if sd:
        held = sd["python_rss_after"] + sd["sidecar_peak_rss_after"] if sd.get("sidecar_peak_rss_after") else None
        lines += _pair({**s, **sd}, ll, f"{sd['format']} dense in the sidecar", held, "Python's RSS after the run + the sidecar's peak")
    notes = [_same_tokens(v, peer) for v, peer in ((s, ll), ({**s, **(i8 or {})}, lq)) if peer and "error" not in peer]
    lines += ["", " ".join(notes)] if notes else []
    lines += [
        "",
        f"Memory: Python peaked at {gib(s['python_peak_rss'])} and the sidecar at {gib(s['sidecar_peak_rss'])}; a layer "
        f"holds {s['expert_bytes_per_layer'] / 2**20:.0f} MiB of {s['expert_format']} expert weights, the sidecar's RSS grew "
        f"{s['sidecar_rss_per_layer'] / 2**20:.0f} MiB a layer after the first, and torch holds "
        f"{s['dense_bytes_per_layer'] / 2**20:.0f} MiB of dense weights a layer plus {gib(s['fixed_bytes'])} fixed "
        f"(embeddings, lm_head)"
        + (f"; in int8, {s['int8_dense']['dense_bytes_per_layer'] / 2**20:.0f} MiB a layer and {gib(s['int8_dense']['fixed_bytes'])} fixed"
           if s.get("int8_dense") else "")
        + f". The experts took {s['upload_s']:.0f} s to generate and upload "
        f"({s['upload_s'] / c['layers']:.1f} s a layer)."
        + ("" if c["layers"] == 48 else f" At these rates all 48 layers would take about {gib(s['projected_48_layers_bytes'])} "
           f"in both processes; this machine fits about {s['deepest_fitting_layers']} (a projection, not a measurement)."),
        "",
        _transformers(r.get("transformers", {}), c["layers"]),
        "",
    ]
    return lines

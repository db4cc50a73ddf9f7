"""BENCHMARKS.md section of the Qwen3-MoE suite (``bench_qwen3``): hybrid vs every transformers
experts implementation and llama.cpp, the round-trip split, memory of every process, misses."""
from __future__ import annotations

from report_common import HEAD, _fmt, _row, at_least, gib, ratio_rounds


def _sidecar(x: dict) -> tuple[int, str]:
    """The sidecar's bytes for a memory row, and what they are: its peak, or (older results) its RSS at the end."""
    if x.get("sidecar_peak_rss_bytes"):
        return x["sidecar_peak_rss_bytes"], "sidecar peak"
    return x.get("sidecar_rss_bytes") or 0, "sidecar RSS at end"


def _same(v: str, x: dict) -> str:
    if v == "torch":
        return "–"
    return "yes" if x.get("same_tokens_as_torch") else f"**no** ({x.get('token_agreement', 0):.0%} of positions)"


#: Suffixes of transformers variants run with another OpenMP wait than every variant's short spin
#: (``GOMP_SPINCOUNT``, ``vtpu.integrations.SHORT_SPIN``; bench_qwen3.py): libgomp's default spin
#: (~3 ms after each op) and passive threads (``OMP_WAIT_POLICY=PASSIVE``).
SPIN, PASSIVE = "+spin", "+passive"


def peer_label(v: str, x: dict) -> str:
    """A transformers variant as the tables name it: its experts implementation, and how its OpenMP threads wait."""
    how = " (OpenMP spinning)" if v.endswith(SPIN) else " (OpenMP passive)" if v.endswith(PASSIVE) else ""
    return f"transformers {x.get('experts_implementation', v)}{how}"


def best_peer(vs: dict, phase: str, prefix: str = "torch") -> tuple[str, dict]:
    """The transformers variant (``torch``: its default experts implementation, ``torch-eager``, each
    also ``+spin`` and ``+passive``; with ``prefix`` the int8 dense peers instead) with the most tokens/s in ``phase``,
    and its figures."""
    runs = {v: x for v, x in vs.items() if v.startswith(prefix) and "error" not in x and f"{phase}_tps" in x}
    name = max(runs, key=lambda v: runs[v][f"{phase}_tps"])
    return peer_label(name, runs[name]), runs[name]


def _impls(vs: dict) -> list[str]:
    """The transformers experts implementations that ran, by name."""
    return list(dict.fromkeys(f"`{x.get('experts_implementation', v)}`" for v, x in vs.items() if v.startswith("torch") and "error" not in x))


#: The hybrid format compared with each llama.cpp one, and the decode target against it (issue 14).
#: llama.cpp variant -> the hybrid variants of the same precision (its F32 dense matrices: ours in fp32, in
#: torch or with the lm_head in the sidecar), and the decode target against it.
LLAMA_PAIRS = {"llama.cpp-Q4_0": (("q4", "q4-head", "q4-proj"), 0.5), "llama.cpp-Q8_0": (("q8", "q8-head", "q8-proj"), 0.5),
               "llama.cpp-Q4_0-denseQ8_0": (("q4-int8dense",), 0.5)}
#: transformers with the int8 dense half: the matched peer of the hybrid variants that have it too.
INT8_DENSE_PEER, INT8_DENSE_SUFFIX = "int8dense-torch", "-int8dense"


def _reported(label: str, x: dict, peer: dict, peer_note: str = "", phases: tuple[str, ...] = ("prefill", "decode")) -> list[str]:
    """Rows of ``x`` against ``peer`` in each of ``phases``, with no target: the ratio and its spread."""
    return [_row(f"{p} tokens/s, {label}", _fmt(x[f"{p}_tps"], "/s"), _fmt(peer[f"{p}_tps"], "/s") + peer_note,
                 _spread(x[f"{p}_tps"] / peer[f"{p}_tps"], x.get(f"{p}_tps_rounds"), peer.get(f"{p}_tps_rounds")), "reported", True)
            for p in phases]


def _llama_rows(v: str, peer: dict, vs: dict) -> list[str]:
    """llama.cpp on the same weights: each hybrid variant of its precision against it, and both processes' memory."""
    fmts, target = LLAMA_PAIRS[v]
    ran = [f for f in fmts if vs.get(f) and "error" not in vs[f]]
    if not ran:
        return [_row(f"{p} tokens/s, {v} (peer; hybrid {fmts[0]} not run)", "–", _fmt(peer[f"{p}_tps"], "/s"), "–", "reported", True)
                for p in ("prefill", "decode")]
    rows = []
    for fmt in ran:
        ours = vs[fmt]
        for phase in ("prefill", "decode"):
            pairs = ratio_rounds(ours[f"{phase}_tps_rounds"], peer[f"{phase}_tps_rounds"])
            ratio = ours[f"{phase}_tps"] / peer[f"{phase}_tps"]
            met: bool | str = at_least(pairs, target) if phase == "decode" else True
            rows.append(_row(f"{phase} tokens/s, {fmt} experts vs {v}", _fmt(ours[f"{phase}_tps"], "/s"), _fmt(peer[f"{phase}_tps"], "/s"),
                             f"{ratio:.2f}× ({min(pairs):.2f}–{max(pairs):.2f})", f"≥ {target}× (target)" if phase == "decode" else "reported", met))
        if ours.get("inference_peak_rss_bytes"):
            side, what = _sidecar(ours)
            both = ours["inference_peak_rss_bytes"] + side
            rows.append(_row(f"memory in inference, {fmt} (Python peak + {what}) vs {v} (node peak RSS)", gib(both),
                             gib(peer["inference_peak_rss_bytes"]), f"{both / peer['inference_peak_rss_bytes']:.2f}×", "reported", True))
    return rows


def render(r: dict) -> list[str]:
    """Markdown for BENCHMARKS.md: hybrid vs transformers per variant, round trips, memory, misses."""

    c, vs = r["config"], r["variants"]
    base = vs.get("torch", {})
    order = r.get("run_order", [])
    alternating = ", transformers' runs alternating with ours" if len(order) > 1 and not order[1].startswith("torch") else ""
    shape = "Qwen3-30B-A3B's layer shape" if not c.get("overrides") else "a reduced shape (quick run)"
    lines = [
        f"## Qwen3-MoE, experts in the sidecar (hybrid) vs transformers on CPU: {c['layers']} layer(s) of {shape}",
        f"Peer: the same seeded weights in transformers, in each phase the fastest of the experts implementations it "
        f"offers that ran on this CPU ({', '.join(_impls(vs))}; default `{base.get('experts_implementation', '?')}`), "
        f"each with OpenMP's idle threads spinning briefly (`GOMP_SPINCOUNT=10000`, as every variant), passive "
        f"(`OMP_WAIT_POLICY=PASSIVE`, `{PASSIVE}`) and spinning for libgomp's default ~3 ms (`{SPIN}`), "
        f"{c['threads']} torch threads for every variant; lm_head included. Prefill: a "
        f"{c['prompt']}-token prompt; decode: {c['decode']} greedy tokens one at a time with the KV cache. Each variant "
        f"in its own process{alternating}; median of {c['rounds']} rounds after a warm-up (`test/bench/bench_qwen3.py`).",
        "", HEAD,
    ]
    misses, unavailable = [], []
    if "error" in base or not base:
        return lines + ["", f"The baseline failed: {base.get('error', 'not run')}.", ""]
    for v, x in vs.items():
        if v == "torch":
            continue
        if v.startswith("torch-") and "error" in x:
            unavailable.append(f"`{v.removeprefix('torch-')}` ({x['error']})")
            continue
        if "error" in x:
            misses.append(f"- **{v}**: the run failed: {x['error']}")
            continue
        if v.startswith("llama.cpp"):
            lines += _llama_rows(v, x, vs)
            continue
        if v.startswith(INT8_DENSE_PEER):  # a peer, shown beside the baseline; the hybrid's rows compare with the faster
            lines += _reported(f"transformers {x.get('experts_implementation', '?')} experts + int8 dense (peer)", x, base, " (fp32 dense)")
            continue
        if v.startswith(("torch-", "torch+")):  # another transformers run, against its default one
            lines += _reported(f"{peer_label(v, x)} experts (peer)", x, base, f" ({peer_label('torch', base)})")
            continue
        # the must is plain fp32 (the lm_head in torch); fp32-head and fp32-frames are held to the same 1×, as targets
        target = 1.0 if v.startswith("fp32") else 2.0
        for phase in ("prefill", "decode"):
            # The peer a user would pick: the faster of transformers' experts implementations in this phase.
            name, peer = best_peer(vs, phase)
            ratio = x[f"{phase}_tps"] / peer[f"{phase}_tps"]
            ours_r, base_r = x.get(f"{phase}_tps_rounds"), peer.get(f"{phase}_tps_rounds")
            if ours_r and base_r:  # the ratio's spread over both runs' rounds decides, not the medians alone
                pairs = ratio_rounds(ours_r, base_r)
                met: bool | str = at_least(pairs, target)
                shown = f"{ratio:.2f}× ({min(pairs):.2f}–{max(pairs):.2f})"
            else:
                met, shown = ratio >= target, f"{ratio:.2f}×"
            lines.append(_row(f"{phase} tokens/s, {v} experts", _fmt(x[f"{phase}_tps"], "/s"), f"{_fmt(peer[f'{phase}_tps'], '/s')} ({name})",
                              shown, f"≥ {target:.0f}× ({'must' if v == 'fp32' else 'target'})", met))
            if met is False or met == "**no**":
                misses.append(f"- **{phase}, {v}**: {ratio:.2f}× the fastest transformers variant, {name} (target ≥ {target:.0f}×).")
        if v.endswith(INT8_DENSE_SUFFIX) and any(k.startswith(INT8_DENSE_PEER) and "error" not in p for k, p in vs.items()):
            # the recipe's own peer, the faster of transformers' int8 dense runs in each phase (no target: the issue's is fp32)
            for phase in ("prefill", "decode"):
                name, peer8 = best_peer(vs, phase, INT8_DENSE_PEER)
                lines += _reported(f"{v} vs {name} experts + int8 dense", x, peer8, phases=(phase,))
        if x.get("inference_peak_rss_bytes") and base.get("inference_peak_rss_bytes"):
            # both processes: Python's peak in inference plus the sidecar's RSS, which holds the offloaded experts
            side, what = _sidecar(x)
            ours_b = x["inference_peak_rss_bytes"] + side
            mem = ours_b / base["inference_peak_rss_bytes"]
            lines.append(_row(f"memory in inference, {v} experts offloaded (Python peak + {what})", gib(ours_b),
                              gib(base["inference_peak_rss_bytes"]), f"{mem:.2f}×", "reported", True))
    lines += ["", "Per decode token (ms): the experts calls seen from Python (wall), the sidecar's request time "
              "(metrics: requests through the socket and runs through the doorbell), of which inside the expert runtime "
              "(the hook's `sidecar_ms`), and transport = wall − request time (encoding, ZeroMQ or the doorbell's "
              "futexes, decoding, waiting); none for the `-head` and `-proj` variants, whose doorbell time includes their dense layers' runs.", "",
              "| variant | decode step | experts (Python wall) | sidecar request | of which compute | transport | same greedy tokens as torch |",
              "|---|---|---|---|---|---|---|"]
    for v, x in vs.items():
        if "error" in x:
            continue
        cells = [x.get(k) for k in ("sidecar_ms_per_token", "compute_ms_per_token", "transport_ms_per_token")]
        ex = x.get("experts_ms_per_token")  # none for llama.cpp: its experts are not timed apart
        lines.append(f"| {v} | {x['decode_ms_per_token']:.2f} | {'–' if ex is None else f'{ex:.2f}'} | "
                     + " | ".join("–" if c is None else f"{c:.2f}" for c in cells) + f" | {_same(v, x)} |")
    lines += _parts(vs)
    if len(set(base.get("tokens", []))) == 1:
        lines += ["", f"The greedy output is one id repeated ({base['tokens'][0]}) on these random weights, so the token "
                  "column cannot tell the variants apart; the parity tests (`test/py/test_qwen3_parity.py`) compare logits."]
    lines += ["", "Peak memory of the Python process (whole run, build included; and from the model ready to the end "
              "of inference: the hybrid variants never held the experts in Python), and the "
              "sidecar's peak over the run (the upload included) and RSS at the end:", "",
              "| variant | peak RSS | inference peak RSS | sidecar peak RSS | sidecar RSS at end |", "|---|---|---|---|---|"]
    for v, x in vs.items():
        if "error" not in x:
            lines.append(f"| {v} | {gib(x['peak_rss_bytes'])} | {gib(x.get('inference_peak_rss_bytes'))} | "
                         f"{gib(x.get('sidecar_peak_rss_bytes'))} | {gib(x.get('sidecar_rss_bytes'))} |")
    if unavailable:
        lines += ["", "transformers experts implementations that did not run on this CPU: " + "; ".join(unavailable) + "."]
    lines += [""] + (["Misses:", ""] + misses + [""] if misses else [])
    # Explained against the peer the decode verdicts used, not the default implementation's run.
    peer = best_peer(vs, "decode")
    lines += _caveat(peer, vs.get("fp32", {}))
    lines += _head(vs, peer)
    if misses:
        lines += _why(peer, vs)
    return lines


def _parts(vs: dict) -> list[str]:
    """Where a decode step goes, per variant that timed its parts: the module hooks' wall times and
    each thread group's CPU time (older results have neither: no table)."""
    runs = {v: x for v, x in vs.items() if "error" not in x and x.get("lm_head_ms_per_token") is not None}
    if not runs:
        return []
    out = ["", "Where a decode token goes (ms): wall time of the experts calls, of the layers' attention (projections, "
           "rope, cache, sdpa) and of the lm_head, seen from Python, the rest of the step (norms, routers, embedding, "
           "Python); then CPU time by thread group over the same steps (`/proc`): this process's main thread, its other "
           "threads (torch's OpenMP helpers), the sidecar's, and their sum over the step's wall time (cores kept busy).", "",
           "| variant | decode step | experts | attention | lm_head | rest | CPU: Python main | Python other | sidecar | cores busy |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for v, x in runs.items():
        step, cpu = x["decode_ms_per_token"], x.get("cpu_ms_per_token", {})
        timed = x["experts_ms_per_token"] + x["attention_ms_per_token"] + x["lm_head_ms_per_token"]
        side = cpu.get("sidecar")
        busy = sum(cpu.values()) / step if cpu else None
        out.append(f"| {v} | {step:.1f} | {x['experts_ms_per_token']:.1f} | {x['attention_ms_per_token']:.1f} | "
                   f"{x['lm_head_ms_per_token']:.1f} | {step - timed:.1f} | {_ms(cpu.get('python_main'))} | "
                   f"{_ms(cpu.get('python_other'))} | {_ms(side)} | {'–' if busy is None else f'{busy:.2f}'} |")
    return out


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _dense_split(f: dict, base: dict) -> str:
    """The non-expert part of two runs, part by part where both timed them."""
    if f.get("lm_head_ms_per_token") is None or base.get("lm_head_ms_per_token") is None:
        return "a difference not measured apart"
    return (f"attention {f['attention_ms_per_token']:.2f} vs {base['attention_ms_per_token']:.2f} ms, lm_head "
            f"{f['lm_head_ms_per_token']:.2f} vs {base['lm_head_ms_per_token']:.2f} ms (the table above)")


def _caveat(peer: tuple[str, dict], f: dict) -> list[str]:
    """A met fp32 decode ratio that the experts themselves did not earn is said to be parity, not a win."""
    name, p = peer
    if "decode_tps" not in f or f["decode_tps"] < p["decode_tps"] or f.get("experts_ms_per_token", 0) <= p.get("experts_ms_per_token", 0):
        return []
    rest, peer_rest = f["decode_ms_per_token"] - f["experts_ms_per_token"], p["decode_ms_per_token"] - p["experts_ms_per_token"]
    return [f"Caveat: fp32 decode reaches {f['decode_tps'] / p['decode_tps']:.2f}× {name} only through the rest of the step. Its "
            f"experts cost {f['experts_ms_per_token']:.2f} ms per token from Python against that peer's {p['experts_ms_per_token']:.2f} ms; "
            f"the non-expert part (the same work) took {rest:.2f} ms vs {peer_rest:.2f} ms: {_dense_split(f, p)}. "
            "Read it as parity within noise, not a win.", ""]


#: suffix -> (the variant it adds to, what it moves into the sidecar, how, the timed part that holds it)
_MOVES = {"-head": ("", "the lm_head's product", "`vq.hook(..., lm_head=True)`", "lm_head"),
          "-proj": ("-head", "every attention projection", "`vq.hook(..., lm_head=True, projections=True)`", "attention")}


def _head(vs: dict, peer: tuple[str, dict]) -> list[str]:
    """What each ``-head`` / ``-proj`` variant adds to the one before it (the lm_head's product, the
    attention projections in the sidecar), said apart from the experts."""
    name, p = peer
    out = []
    for v, h in vs.items():
        suffix = next((x for x in _MOVES if v.endswith(x)), None)
        if suffix is None:
            continue
        before, what, how, part = _MOVES[suffix]
        base = v.removesuffix(suffix) + before
        f, key = vs.get(base, {}), f"{part}_ms_per_token"
        if any(x.get(key) is None for x in (h, f, p)) or "decode_tps" not in p:
            continue
        out += [f"{v} is {base} with {what} in the sidecar as well ({how}): "
                f"{h['decode_tps'] / p['decode_tps']:.2f}× {name} in decode against {base}'s {f['decode_tps'] / p['decode_tps']:.2f}×. "
                f"The difference is {what}, not the experts: {part} {h[key]:.2f} ms per token from Python against "
                f"{f[key]:.2f} ms in {base} and {p[key]:.2f} ms in {name} (torch's one-row "
                f"products on one core; the sidecar's kernel on every core), experts {h['experts_ms_per_token']:.2f} vs "
                f"{f['experts_ms_per_token']:.2f} ms.", ""]
    return out


def _why(peer: tuple[str, dict], vs: dict) -> list[str]:
    """What the per-token split says about the misses (all figures from this run), against the decode peer."""
    name, p = peer
    step, ex = p["decode_ms_per_token"], p["experts_ms_per_token"]
    share = ex / step
    out = [f"Why: in the decode peer ({name}) the experts take {ex:.2f} of {step:.2f} ms per decode token ({100 * share:.0f}%); the "
           f"rest (attention, norms, the {p.get('vocab', 0):,}-word LM head) is the same work in every variant (the `-head` ones move the LM head into the sidecar), so with this many "
           f"layers even free experts would give at most {1 / (1 - share):.2f}× in decode.", ""]
    f = vs.get("fp32", {})
    if "experts_ms_per_token" in f and f.get("compute_ms_per_token") is not None:
        out += [f"The sidecar's fp32 experts cost {f['experts_ms_per_token']:.2f} ms per token from Python "
                f"({f['compute_ms_per_token']:.2f} ms inside the expert runtime, {f['transport_ms_per_token']:.2f} ms transport) "
                f"against {ex:.2f} ms for that peer's on the same cores; the non-expert part of a step took "
                f"{f['decode_ms_per_token'] - f['experts_ms_per_token']:.2f} ms in that run vs {step - ex:.2f} ms in the peer's "
                f"(the same work; {_dense_split(f, p)}).", ""]
    if any(x.get("same_tokens_as_torch") is False for x in vs.values()):
        out += ["Quantised formats change the logits slightly, so free-running greedy decoding on this random-weight "
                "model (near-flat logits) leaves the baseline's tokens at the first differing position; per-position top-1 "
                "agreement on the same inputs is what `test/py/test_qwen3_experts.py` asserts (README, Qwen3-MoE section).", ""]
    return out


def _spread(ratio: float, ours: list | None, peer: list | None) -> str:
    """A ratio with the spread of its rounds (both runs' rounds paired), or alone when a run kept none."""
    if not ours or not peer:
        return f"{ratio:.2f}×"
    pairs = ratio_rounds(ours, peer)
    return f"{ratio:.2f}× ({min(pairs):.2f}–{max(pairs):.2f})"

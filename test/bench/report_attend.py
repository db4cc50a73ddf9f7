"""BENCHMARKS.md section of the `attend` suite: CATTEND prefill and decode beside SDPA and flex."""
from __future__ import annotations

from report_common import HEAD, NO_TARGET, _fmt, _row, at_least, faster, ratio_rounds


def _x(lo: float, hi: float) -> str:
    return f"{lo:.2f}–{hi:.2f}× over the rounds"


def render(r: dict) -> list[str]:
    sh = r["shape"]
    lines = [
        f"## CATTEND sparse attention from PyTorch (B {sh['B']}, Hq {sh['Hq']}, Hkv {sh['Hkv']}, D {sh['D']}, "
        f"window {sh['window']}, globals {sh['globals']}, causal, fp32)",
        "End to end through the client: torch tensors in, torch tensor out (every contender's output read once, "
        "one float per page, inside the timing). Peers in the same run: "
        "`F.scaled_dot_product_attention` with the equivalent boolean mask (`enable_gqa=True`) and "
        f"`torch.compile(flex_attention)` with the same mask as a block mask (torch {r['torch']}, "
        f"{r['torch_threads']} threads). Median of the rounds after warm-up calls for "
        "every contender (" + ", ".join(f"S={p['s']}: {p.get('warmup', '?')}" for p in r["prefill"]) + "); the max abs difference "
        "to each peer's output is printed beside it. Decode peers: SDPA over the whole cache with the mask, and the "
        "peer a PyTorch user would write, SDPA over the cache sliced to the positions the new token sees (the global "
        "tokens and the last window), slicing included in its time.",
        "", HEAD,
    ]
    for p in r["prefill"]:
        s = p["s"]
        rounds = f"{p['rounds']} rounds (peers {p['peer_rounds']})"
        ours = p.get("ours_rounds_s", [p["ours_s"]])
        for peer, label, target, detail in (("sdpa", "SDPA", 5, f"{rounds}; "), ("flex", "compiled flex_attention", 1, "")):
            if f"{peer}_s" not in p:
                why = p.get(f"{peer}_error", "not run")
                lines.append(_row(f"prefill S={s}, vs {label}", _fmt(p["ours_s"] * 1e3, " ms"), f"failed: {why}", "n/a",
                                  f"≥ {target}× {peer if peer == 'flex' else label}", "n/a (peer failed)"))
                continue
            ratio = p[f"{peer}_s"] / p["ours_s"]
            lines.append(_row(f"prefill S={s}, vs {label} ({detail}max err {p[f'max_abs_err_vs_{peer}']:.1e})", _fmt(p["ours_s"] * 1e3, " ms"),
                              _fmt(p[f"{peer}_s"] * 1e3, " ms"), faster(ratio), f"≥ {target}× {peer if peer == 'flex' else label}",
                              at_least(ratio_rounds(ours, p.get(f"{peer}_rounds_s", [p[f"{peer}_s"]]), False), target, _x)))
    for d in r["decode"]:
        label = f"decode step at S={d['s']} (KV cache in the sidecar: send new k/v + attend; {d['rounds']} rounds)"
        ours = d.get("ours_rounds_s", [d["ours_s"]])
        for key, peer in (("sdpa", "SDPA, masked full cache"), ("sliced", "SDPA on the cache sliced to the visible positions")):
            if f"{key}_s" not in d:
                continue
            ratios = ratio_rounds(ours, d.get(f"{key}_rounds_s", [d[f"{key}_s"]]), False)
            lines.append(_row(f"{label} vs {peer} (max err {d.get(f'max_abs_err_vs_{key}', float('nan')):.1e})",
                              _fmt(d["ours_s"] * 1e6, " µs"), _fmt(d[f"{key}_s"] * 1e6, " µs"),
                              f"{faster(d[f'{key}_s'] / d['ours_s'])} ({min(ratios):.2f}–{max(ratios):.2f}× the peer's speed over the rounds)", NO_TARGET, True))
    lines += ["", "Forward prefill runs on ONNX Runtime (a band-attention graph built in TS; its intra-op threads use "
              "every core), decode steps on the plain-JS kernel over only the visible cache positions.", ""]
    split = [f"S={p['s']}: {p['ours_s'] * 1e3:.0f} ms in all, sidecar {p['ours_sidecar_s'] * 1e3:.0f} ms"
             + (f", transfer floor {p['transfer_floor_s'] * 1e3:.0f} ms" if p.get("transfer_floor_s") else "")
             for p in r["prefill"] if p.get("ours_sidecar_s")]
    if split:
        lines += ["Where our prefill time goes: the sidecar's own time (request received → reply built, from its "
                  "metrics) and the transfer floor (the same bytes — q, k, v in, o out — through a bare pyzmq → "
                  "zeromq.js echo, no compute, reply read as ours is; same run): " + "; ".join(split) + ".", ""]
    misses = []
    for p in r["prefill"]:
        if "sdpa_s" in p and p["sdpa_s"] / p["ours_s"] < 5:
            target = p["sdpa_s"] / 5
            floor = p.get("transfer_floor_s")
            if floor and floor >= target:
                misses.append(f"- **Prefill S={p['s']} vs SDPA.** 5× SDPA means ≤ {target * 1e3:.0f} ms end to end, but "
                              f"moving the bytes alone took {floor * 1e3:.0f} ms over ZeroMQ on this machine (transfer "
                              "floor above), so no kernel meets it over this transport here; the sidecar's own time was "
                              f"{p['ours_sidecar_s'] * 1e3:.0f} ms.")
            elif floor and p.get("ours_sidecar_s"):
                misses.append(f"- **Prefill S={p['s']} vs SDPA.** 5× SDPA means ≤ {target * 1e3:.0f} ms end to end. Moving "
                              f"the bytes alone took {floor * 1e3:.0f} ms over ZeroMQ on this machine (transfer floor), "
                              f"leaving {(target - floor) * 1e3:.0f} ms for the sidecar, whose own time was "
                              f"{p['ours_sidecar_s'] * 1e3:.0f} ms: reading the received q, k, v (first touch of a fresh "
                              "frame), then the ONNX Runtime graph's key gather, bias add and softmax passes over the band. "
                              "SDPA computes all S² scores, so our advantage grows with S/window.")
            else:
                misses.append(f"- **Prefill S={p['s']} vs SDPA.** SDPA computes all S² scores, so our advantage grows "
                              "with S/window; at small S the band (block + window + globals) is a large share of S and the "
                              "ONNX Runtime graph's gather, bias add and softmax passes cost as much as SDPA's dense kernel.")
        if "flex_s" in p and p["flex_s"] < p["ours_s"]:
            misses.append(f"- **Prefill S={p['s']} vs flex_attention.** Below compiled flex_attention in this run: flex's "
                          "compiled kernel never writes the score blocks out; our graph does, in several passes.")
    return lines + (["**Misses (CATTEND):**", ""] + misses + [""] if misses else [])



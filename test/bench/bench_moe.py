"""CMOE routing + dispatch plan + aux statistics for T tokens over E experts, top-k, beside the
same computed by PyTorch on the CPU (softmax, topk, renormalize, stable argsort and bincount
for the plan, the transformers load-balancing loss, the Switch loss and the z-loss).

vTPU is timed two ways: end to end from Python (numpy logits in, MoeRouting out: Arrow
encoding, the ZeroMQ transfer and decoding included) and engine-side (the op's own
``elapsed_ms``: time inside CMOE, no transfer). PyTorch runs with its default intra-op
threads and with one thread (the engine op is single-threaded). Median of the rounds, after
one unmeasured warm-up round each.

Usage: python test/bench/bench_moe.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import vtpu
from common import median

FULL = {"tokens": 32_768, "experts": 128, "top_k": 8, "rounds": 7}
QUICK = {"tokens": 2_048, "experts": 128, "top_k": 8, "rounds": 5}


def torch_route(logits, k: int) -> dict:
    """The peer: what a PyTorch MoE layer computes for the same outputs."""
    import torch

    T, E = logits.shape
    probs = torch.softmax(logits, dim=-1)
    w, ids = torch.topk(probs, k, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=E)
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    P = probs.mean(0)
    aux = E * ((counts.float() / T) * P).sum()
    switch = E * ((torch.bincount(ids[:, 0], minlength=E).float() / T) * P).sum()
    z = torch.logsumexp(logits, dim=-1).pow(2).mean()
    return {"ids": ids, "w": w, "order": order, "offsets": offsets, "aux": float(aux), "switch": float(switch), "z": float(z)}


def _median_ms(fn, rounds: int) -> float:
    fn()  # warm-up, not counted
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return median(times)


def run(quick: bool = False) -> dict:
    import torch

    cfg = QUICK if quick else FULL
    T, E, k, rounds = cfg["tokens"], cfg["experts"], cfg["top_k"], cfg["rounds"]
    logits = np.random.default_rng(11).standard_normal((T, E), dtype=np.float32)
    lt = torch.from_numpy(logits)
    out: dict = {**cfg}
    with vtpu.connect(timeout=120) as c:
        engine_ms: list[float] = []

        def ours():
            r = c.cmoe(logits, k, renormalize=True)
            engine_ms.append(r.elapsed_ms)
            return r

        out["vtpu_end_to_end_ms"] = _median_ms(ours, rounds)
        out["vtpu_engine_ms"] = median(engine_ms[1:])
        r = ours()
    threads = torch.get_num_threads()
    out["torch_threads"] = threads
    out["torch_ms"] = _median_ms(lambda: torch_route(lt, k), rounds)
    torch.set_num_threads(1)
    try:
        out["torch_1thread_ms"] = _median_ms(lambda: torch_route(lt, k), rounds)
    finally:
        torch.set_num_threads(threads)
    ref = torch_route(lt, k)
    # same answer, or the timings compare different work
    out["same_experts"] = bool(np.array_equal(r.expert_ids, ref["ids"].numpy()))
    out["same_plan"] = bool(np.array_equal(r.order, ref["order"].numpy()) and np.array_equal(r.offsets, ref["offsets"].numpy()))
    out["max_weight_diff"] = float(np.abs(r.weights - ref["w"].numpy()).max())
    out["aux_loss_diff"] = abs(r.aux["aux_loss"] - ref["aux"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help=f"{QUICK['tokens']} tokens, {QUICK['rounds']} rounds")
    print(json.dumps(run(ap.parse_args().quick), indent=1))


if __name__ == "__main__":
    main()

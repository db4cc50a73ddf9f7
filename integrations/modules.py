"""Drop-in ``nn.Module``s whose attention and MoE routing run in vTPU.

:class:`SparseAttention` is multi-head (GQA) self-attention through CATTEND.
:class:`VtpuMoE` is a top-k mixture of experts: the router's linear layer and the expert
FFNs are torch; routing (softmax, top-k, capacity, the dispatch plan, load-balancing
statistics) is CMOE and the weighted combine is CMOE's combine, both in vTPU.

Router gradient: CMOE picks the experts but its returned weights are plain numbers. The
module recomputes the selected weights in torch from the logits and CMOE's
``expert_ids`` (``softmax(logits).gather(expert_ids)``, renormalised when asked), so
autograd reaches the router through ``softmax``; the top-k choice itself is, as in
every top-k router, not differentiated. The load-balancing loss is likewise rebuilt
from the differentiable mean router probabilities and CMOE's ``tokens_per_expert``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F

from . import resolve_client
from .autograd import cattend, moe_combine

__all__ = ["SparseAttention", "ExpertFFN", "VtpuMoE", "moe_dispatch", "selected_weights"]


class SparseAttention(nn.Module):
    """Self-attention (B, S, hidden) -> (B, S, hidden) with CATTEND's sparsity.

    Parameters
    ----------
    hidden : int
        Model width.
    num_heads : int
        Query heads.
    num_kv_heads : int, optional
        Key/value heads (GQA); defaults to ``num_heads``; must divide it.
    head_dim : int, optional
        Defaults to ``hidden // num_heads``.
    window : int, optional
        Local window (``None``: dense).
    global_tokens : iterable of int
        Positions that see and are seen by every other (within causality).
    causal : bool
        Decoder (``True``) or encoder attention.
    bias : bool
        Biases on the projections.
    client : vtpu.Client, optional
        Defaults to :func:`vtpu.integrations.default_client` at call time.
    """

    def __init__(
        self,
        hidden: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        *,
        window: int | None = None,
        global_tokens: Iterable[int] = (),
        causal: bool = True,
        bias: bool = False,
        client: Any = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads or num_heads
        if num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        self.head_dim = head_dim or hidden // num_heads
        self.window, self.global_tokens, self.causal = window, tuple(global_tokens), causal
        self.client = client
        self.q_proj = nn.Linear(hidden, num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(num_heads * self.head_dim, hidden, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.num_kv_heads, self.head_dim).transpose(1, 2)
        o = cattend(q, k, v, window=self.window, global_tokens=self.global_tokens, causal=self.causal, client=self.client)
        return self.o_proj(o.transpose(1, 2).reshape(b, s, -1))

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, window={self.window}, globals={len(self.global_tokens)}"


class ExpertFFN(nn.Module):
    """One SwiGLU expert, ``down(silu(gate(x)) * up(x))`` (as Qwen3-MoE's experts)."""

    def __init__(self, hidden: int, ffn: int) -> None:
        super().__init__()
        self.gate = nn.Linear(hidden, ffn, bias=False)
        self.up = nn.Linear(hidden, ffn, bias=False)
        self.down = nn.Linear(ffn, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


def selected_weights(logits: torch.Tensor, expert_ids: torch.Tensor, renormalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probs (T, E), weights (T, k))`` recomputed in torch from the logits and CMOE's
    choice, so that autograd reaches the router (float32, as CMOE computes them)."""
    probs = torch.softmax(logits.float(), dim=-1)
    w = probs.gather(1, expert_ids)
    if renormalize:
        w = w / w.sum(-1, keepdim=True)
    return probs, w


def moe_dispatch(
    x: torch.Tensor,
    logits: torch.Tensor,
    expert: Callable[[int, torch.Tensor], torch.Tensor],
    top_k: int,
    *,
    renormalize: bool = False,
    capacity_factor: float | None = None,
    client: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Route ``x`` (T, H) with CMOE, run ``expert(e, rows)`` on each expert's slice of the
    plan and combine in vTPU.

    Returns ``(y (T, H), probs (T, E), routing)``; ``y`` is differentiable in ``x``, the
    experts' parameters and ``logits`` (through the recomputed weights).
    """
    r = resolve_client(client).cmoe(logits.detach(), top_k, renormalize=renormalize, capacity_factor=capacity_factor)
    ids = torch.as_tensor(r.expert_ids, device=x.device).long()
    probs, w = selected_weights(logits, ids, renormalize)
    order = torch.as_tensor(r.order, device=x.device).long()
    xs = x[order // top_k]  # each kept assignment's token, grouped by expert
    offsets = [int(o) for o in r.offsets]
    outs = [expert(e, xs[offsets[e] : offsets[e + 1]]) for e in range(len(offsets) - 1) if offsets[e + 1] > offsets[e]]
    expert_out = torch.cat(outs) if outs else xs.new_zeros(0, x.shape[-1])
    y = moe_combine(expert_out, w.to(expert_out.dtype), r, client=client)
    return y.to(x.dtype), probs, r


class VtpuMoE(nn.Module):
    """Top-k mixture of experts: ``(..., hidden) -> ((..., hidden), aux_loss)``.

    Parameters
    ----------
    hidden, ffn : int
        Model width and each expert's inner width.
    num_experts, top_k : int
        Experts, and experts per token.
    renormalize : bool
        Rescale each token's selected weights to sum to 1 (Qwen3-MoE ``norm_topk_prob``).
    capacity_factor : float, optional
        Per-expert capacity as a multiple of ``T * top_k / E``; assignments over it are
        dropped (their share of the output is zero). ``None``: no limit.
    experts : iterable of nn.Module, optional
        Custom experts (each ``(n, hidden) -> (n, hidden)``); default :class:`ExpertFFN`.
    client : vtpu.Client, optional
        Defaults to :func:`vtpu.integrations.default_client` at call time.

    Notes
    -----
    ``forward`` returns the load-balancing loss ``E * sum_e f_e * P_e`` (Switch /
    Qwen3-MoE) as a differentiable scalar; add ``coef * aux_loss`` to train balanced
    routing. ``last_routing`` keeps the latest :class:`MoeRouting` for inspection.
    """

    def __init__(
        self,
        hidden: int,
        ffn: int,
        num_experts: int,
        top_k: int,
        *,
        renormalize: bool = False,
        capacity_factor: float | None = None,
        experts: Iterable[nn.Module] | None = None,
        client: Any = None,
    ) -> None:
        super().__init__()
        if not 0 < top_k <= num_experts:
            raise ValueError(f"top_k must be in 1..{num_experts}, got {top_k}")
        self.num_experts, self.top_k = num_experts, top_k
        self.renormalize, self.capacity_factor, self.client = renormalize, capacity_factor, client
        self.router = nn.Linear(hidden, num_experts, bias=False)
        self.experts = nn.ModuleList(experts if experts is not None else (ExpertFFN(hidden, ffn) for _ in range(num_experts)))
        if len(self.experts) != num_experts:
            raise ValueError(f"{len(self.experts)} experts given for num_experts={num_experts}")
        self.last_routing: Any = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        xf = x.reshape(-1, shape[-1])
        y, probs, r = moe_dispatch(
            xf, self.router(xf), lambda e, xs: self.experts[e](xs), self.top_k,
            renormalize=self.renormalize, capacity_factor=self.capacity_factor, client=self.client,
        )
        self.last_routing = r
        tpe = torch.as_tensor(r.aux["tokens_per_expert"], device=x.device, dtype=probs.dtype)
        aux = self.num_experts * (tpe * probs.mean(0)).sum()
        return y.reshape(shape), aux

    def extra_repr(self) -> str:
        return f"experts={self.num_experts}, top_k={self.top_k}, renormalize={self.renormalize}, capacity_factor={self.capacity_factor}"

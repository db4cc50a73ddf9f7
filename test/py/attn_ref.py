"""Dense reference for sparse attention (CATTEND and any suite that needs the same mask).

Query i sits at absolute position ``p = skv - sq + i``; key j is visible when ``j <= p``
(causal only) and ``window is None or |p - j| < window or j in G or p in G``.
"""

from __future__ import annotations

from typing import Iterable

import torch


def sparse_mask(sq: int, skv: int, window: int | None, globals_: Iterable[int] = (), causal: bool = True) -> torch.Tensor:
    """Boolean (sq, skv) mask, True = visible."""
    p = torch.arange(skv - sq, skv).unsqueeze(1)
    j = torch.arange(skv).unsqueeze(0)
    vis = torch.ones(sq, skv, dtype=torch.bool)
    if window is not None:
        g = torch.zeros(skv, dtype=torch.bool)
        gl = list(globals_)
        if gl:
            g[torch.tensor(gl)] = True
        p_global = torch.zeros(sq, 1, dtype=torch.bool)
        inside = (p >= 0) & (p < skv)
        p_global[inside] = g[p[inside]]
        vis = ((p - j).abs() < window) | g.unsqueeze(0) | p_global
    if causal:
        vis = vis & (j <= p)
    return vis


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense masked attention in float64 with GQA: ``(o, lse)``; rows with no visible key give 0 and -inf.

    ``q`` (..., Hq, Sq, D), ``k``/``v`` (..., Hkv, Skv, D), ``mask`` (Sq, Skv) bool.
    Differentiable (use it under autograd for reference gradients).
    """
    d = q.shape[-1]
    scale = d ** -0.5 if scale is None else scale
    rep = q.shape[-3] // k.shape[-3]
    k = k.repeat_interleave(rep, dim=-3)
    v = v.repeat_interleave(rep, dim=-3)
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse.unsqueeze(-1).clamp_min(torch.finfo(s.dtype).min))
    p = torch.nan_to_num(p, nan=0.0)
    return p @ v, lse

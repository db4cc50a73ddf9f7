"""CATTEND's visibility rule as a dense boolean mask, in plain torch.

The engine never builds this mask; it is the reference the tests compare against and
the form transformers hands to an attention function (``True`` = may attend).
"""

from __future__ import annotations

from typing import Iterable

import torch

__all__ = ["sparse_mask", "dense_attention"]


def sparse_mask(
    sq: int,
    skv: int,
    *,
    window: int | None = None,
    global_tokens: Iterable[int] = (),
    causal: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean ``(sq, skv)`` mask of which keys each query sees under CATTEND's rule.

    Query ``i`` sits at position ``p = skv - sq + i``. Key ``j`` is visible when
    ``causal`` and ``j <= p`` and (no window, or ``p - j < window``, or ``j`` or ``p``
    is a global token); when not ``causal``, ``|p - j| < window`` replaces the
    ordering test.

    Parameters
    ----------
    sq, skv : int
        Query and key lengths (``sq <= skv`` when causal).
    window : int, optional
        Local window width; ``None`` is dense.
    global_tokens : iterable of int
        Positions that see and are seen by every (earlier, when causal) position.
    causal : bool
        Whether keys after the query's position are hidden.
    """
    p = torch.arange(skv - sq, skv, device=device).unsqueeze(1)
    j = torch.arange(skv, device=device).unsqueeze(0)
    if window is None:
        local = torch.ones(sq, skv, dtype=torch.bool, device=device)
    else:
        local = (p - j < window) if causal else ((p - j).abs() < window)
    g = torch.zeros(skv, dtype=torch.bool, device=device)
    idx = [t for t in global_tokens if 0 <= t < skv]
    if idx:
        g[torch.tensor(idx, device=device)] = True
    vis = local | g.unsqueeze(0) | g[p.clamp(min=0)]  # key global, or query global
    return vis & (j <= p) if causal else vis


def dense_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Plain softmax attention in torch with a boolean mask (reference for tests and docs).

    ``q`` (B, Hq, Sq, D), ``k``/``v`` (B, Hkv, Skv, D) with ``Hq % Hkv == 0``; ``mask``
    broadcastable to (B, Hq, Sq, Skv). A query that sees no key gets zeros.
    """
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1).nan_to_num(0.0)
    return w @ v

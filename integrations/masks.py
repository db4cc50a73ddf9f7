"""CATTEND's visibility rule as a dense boolean mask, in plain torch.

The engine never builds this mask; it is the reference the tests compare against and
the form transformers hands to an attention function (``True`` = may attend).
:func:`key_spans` reads such a mask back into what CATTEND takes: per batch row, the
first key it sees (left padding) and the keys that exist (a static cache's filled part).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

__all__ = ["sparse_mask", "span_mask", "key_spans", "dense_attention"]


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


def span_mask(starts: list[int], n: int, sq: int, skv: int, *, causal: bool = True, **rule: Any) -> torch.Tensor:
    """Boolean ``(len(starts), sq, skv)`` mask of a left-padded batch under CATTEND's rule.

    Row ``b`` holds padding in keys ``0..starts[b]-1``, its sequence in ``starts[b]..n-1``
    and nothing in ``n..skv-1``; the queries are the last ``sq`` of the ``n`` positions.
    Within its sequence a row follows :func:`sparse_mask` (``rule``: its ``window``,
    ``global_tokens``, ``device``) with positions counted from the row's first real token,
    so the window and global tokens are per sequence; a query that sits on padding (causal
    only) sees no key.
    """
    out = torch.zeros(len(starts), sq, skv, dtype=torch.bool, device=rule.get("device"))
    for b, s in enumerate(starts):
        qs = max(0, s - (n - sq)) if causal else 0
        if qs < sq:
            out[b, qs:, s:n] = sparse_mask(sq - qs, n - s, causal=causal, **rule)
    return out


def visible(mask: torch.Tensor) -> torch.Tensor:
    """Boolean "may attend" from a boolean or additive float (0 / -inf) mask."""
    if mask.dtype == torch.bool:
        return mask
    hidden = mask <= torch.finfo(mask.dtype).min / 2
    if not bool(((mask == 0) | hidden).all()):
        raise ValueError("vtpu_sparse cannot apply an additive attention bias (only 0 / -inf masks)")
    return ~hidden


def key_spans(mask: torch.Tensor | None, sq: int, skv: int, causal: bool = True) -> tuple[list[int], int]:
    """Read a transformers attention mask as CATTEND's rule over left-padded rows.

    Parameters
    ----------
    mask : torch.Tensor or None
        ``(B|1, H|1, sq, skv)``, boolean or additive; ``None`` is the plain rule.
    sq, skv : int
        Query and key lengths.
    causal : bool
        The rule the mask must be.

    Returns
    -------
    starts : list of int
        First visible key of each mask row (one entry when the mask has batch size 1).
    n : int
        Keys that exist (the same for every row); keys ``n..skv-1`` are hidden from all.

    Raises
    ------
    ValueError
        The mask is not :func:`span_mask` of its spans: right padding, a mask that differs
        between heads, a sliding window, a custom pattern, a row that sees no key.
    """
    if mask is None:
        return [0], skv
    vis = visible(mask)
    if vis.dim() != 4 or tuple(vis.shape[-2:]) != (sq, skv):
        raise ValueError(f"vtpu_sparse expects a (B, H, {sq}, {skv}) mask, got {tuple(vis.shape)}")
    if not bool((vis == vis[:, :1]).all()):
        raise ValueError("vtpu_sparse needs the same attention mask for every head")
    rows = vis[:, 0]
    seen = rows.any(1)  # (B, skv): keys some query of the row sees
    if not bool(seen.any(-1).all()):
        raise ValueError("vtpu_sparse got a mask that hides every key of a row")
    starts = seen.int().argmax(-1)
    ends = skv - seen.flip(-1).int().argmax(-1)
    n = int(ends.max())
    if not bool((ends == n).all()):
        raise ValueError(
            "vtpu_sparse supports left padding only: these rows end at different keys (right padding?); "
            "pad on the left (tokenizer.padding_side = 'left')"
        )
    out = [int(s) for s in starts]
    if not torch.equal(rows, span_mask(out, n, sq, skv, causal=causal, device=rows.device)):
        raise ValueError(
            "vtpu_sparse only applies its own rule to left-padded rows: this mask has padding inside a row, a sliding "
            "window or a custom pattern (set sparsity with vtpu.integrations.transformers.configure, not use_sliding_window)"
        )
    return out, n


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

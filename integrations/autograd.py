"""Autograd through vTPU: CATTEND (sparse attention) and CMOE's combine.

Both run forward and backward in the sidecar; torch sees ordinary differentiable ops.
Results come back as float32 from the engine and are cast to the input's dtype and
device (inputs on an accelerator are copied to host for the trip).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np
import torch

from . import resolve_client

__all__ = ["CAttendFunction", "MoECombineFunction", "cattend", "moe_combine", "with_weights"]


def _like(a: np.ndarray, ref: torch.Tensor) -> torch.Tensor:
    """An engine result as a tensor of ``ref``'s dtype and device."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=ref.device, dtype=ref.dtype)


def _opts(skv: int, window: int | None, global_tokens: Iterable[int], causal: bool, scale: float | None) -> dict[str, Any]:
    # positions past the keys do not exist yet (a global token beyond a short prompt); negatives reach the engine, which refuses them
    g = tuple(sorted({int(t) for t in global_tokens if int(t) < skv}))
    return {"window": window, "global_tokens": g, "causal": causal, "scale": scale}


class CAttendFunction(torch.autograd.Function):
    """``o = CATTEND(q, k, v)``; backward is CATTEND's backward (from the saved log-sum-exp).

    Call as ``CAttendFunction.apply(q, k, v, client, opts)`` with ``opts`` the keyword
    arguments of :meth:`vtpu.Client.cattend` (``window``, ``global_tokens``, ``causal``,
    ``scale``); :func:`cattend` is the friendlier entry point.
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, client: Any, opts: dict[str, Any]) -> torch.Tensor:
        o, lse = client.cattend(q, k, v, return_lse=True, **opts)
        ctx.client, ctx.opts, ctx.o, ctx.lse = client, opts, o, lse  # engine float32, kept as is
        ctx.save_for_backward(q, k, v)
        return _like(o, q)

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor) -> tuple[Any, ...]:
        q, k, v = ctx.saved_tensors
        dq, dk, dv = ctx.client.cattend_backward(q, k, v, ctx.o, do.float(), ctx.lse, **ctx.opts)
        return _like(dq, q), _like(dk, k), _like(dv, v), None, None


def cattend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    window: int | None = None,
    global_tokens: Iterable[int] = (),
    causal: bool = True,
    scale: float | None = None,
    client: Any = None,
) -> torch.Tensor:
    """Sparse attention in vTPU, differentiable in ``q``, ``k`` and ``v``.

    Parameters
    ----------
    q : torch.Tensor
        (B, Hq, Sq, D) queries (SDPA layout).
    k, v : torch.Tensor
        (B, Hkv, Skv, D) keys and values; ``Hq`` a multiple of ``Hkv`` (GQA).
    window, global_tokens, causal, scale
        The visibility rule of :func:`vtpu.integrations.masks.sparse_mask`; no window is
        exact dense (causal) attention. ``scale`` defaults to ``1/sqrt(D)``.
    client : vtpu.Client, optional
        Defaults to :func:`vtpu.integrations.default_client`.

    Returns
    -------
    torch.Tensor
        (B, Hq, Sq, D) in ``q``'s dtype and device. Without grad mode (or when no input
        requires grad) the log-sum-exp is not fetched and no graph is recorded.
    """
    c = resolve_client(client)
    opts = _opts(k.shape[2], window, global_tokens, causal, scale)
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return CAttendFunction.apply(q, k, v, c, opts)
    return _like(c.cattend(q, k, v, **opts), q)


def with_weights(routing: Any, weights: np.ndarray) -> Any:
    """A copy of a :class:`MoeRouting` whose ``weights`` are ``weights`` (T, k) float32."""
    w = np.ascontiguousarray(weights, dtype=np.float32)
    if hasattr(routing, "_replace"):
        return routing._replace(weights=w)
    return dataclasses.replace(routing, weights=w)


class MoECombineFunction(torch.autograd.Function):
    """``y[t] = sum_s kept[t,s] * w[t,s] * expert_out[row of (t,s)]`` run by CMOE's combine.

    Call as ``MoECombineFunction.apply(expert_out, weights, routing, client)``.
    ``weights`` (T, k) replaces ``routing.weights`` so that a differentiable torch
    tensor (e.g. recomputed from the router logits) carries the gradient; backward
    returns CMOE's ``d_expert_out`` and ``d_weights``.
    """

    @staticmethod
    def forward(ctx: Any, expert_out: torch.Tensor, weights: torch.Tensor, routing: Any, client: Any) -> torch.Tensor:
        r = with_weights(routing, weights.detach().float().cpu().numpy())
        y = client.cmoe_combine(expert_out, r)
        ctx.client, ctx.routing = client, r
        ctx.save_for_backward(expert_out, weights)
        return _like(y, expert_out)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        expert_out, weights = ctx.saved_tensors
        d_out, d_w = ctx.client.cmoe_combine_backward(expert_out, ctx.routing, dy.float())
        return _like(d_out, expert_out), _like(d_w, weights), None, None


def moe_combine(expert_out: torch.Tensor, weights: torch.Tensor, routing: Any, *, client: Any = None) -> torch.Tensor:
    """Differentiable CMOE combine: ``(N_kept, H)`` expert outputs in ``routing.order``
    and ``(T, k)`` weights to ``(T, H)``; see :class:`MoECombineFunction`."""
    return MoECombineFunction.apply(expert_out, weights, routing, resolve_client(client))

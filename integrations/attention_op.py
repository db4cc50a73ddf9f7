"""``vtpu::sparse_attention``: ``vtpu_sparse`` attention as one opaque PyTorch op.

``torch.compile`` (``fullgraph=True`` included) sees a custom op
(:func:`torch.library.custom_op`) whose fake kernel gives the output shapes, instead of
tracing the client's numpy and ZeroMQ code. The op reads transformers' attention mask
itself (:func:`vtpu.integrations.masks.key_spans`), so padded batches need no
data-dependent Python in the traced model:

- rows with the same left padding go to CATTEND together, their padding cut off (keys
  before the row's first token, queries that sit on padding); positions, the window and
  global tokens count from each row's first real token, as transformers' position ids do;
- a query that sits on padding sees no key and gets zeros (transformers' padded positions
  are garbage either way: compare real positions only);
- keys past the filled part of a static cache are cut off.

Gradients (``register_autograd``): the backward op ``vtpu::sparse_attention_backward``
runs CATTEND's backward on the same row groups from the saved log-sum-exp.
"""

from __future__ import annotations

import weakref
from typing import Any, Iterator

import torch

from . import resolve_client
from .autograd import _like as _t, _opts
from .masks import key_spans

__all__ = ["sparse_attention", "sparse_attention_backward", "row_groups"]


def row_groups(starts: list[int]) -> Iterator[tuple[Any, int]]:
    """``(rows, start)`` per distinct start: ``rows`` a slice (every row) or an index list."""
    if len(set(starts)) == 1:
        yield slice(None), starts[0]
        return
    by: dict[int, list[int]] = {}
    for b, s in enumerate(starts):
        by.setdefault(s, []).append(b)
    yield from ((rows, s) for s, rows in by.items())


def _client() -> Any:
    from .transformers import _GLOBAL  # the process-wide client of vtpu_sparse

    return resolve_client(_GLOBAL["client"])


#: The last mask read: (weak reference, (version, sq, skv, causal), spans), replaced whole (threads).
_LAST_SPANS: tuple[Any, tuple, tuple[list[int], int]] | None = None


def _spans(mask: torch.Tensor | None, sq: int, skv: int, causal: bool) -> tuple[list[int], int]:
    """:func:`key_spans`, read once per mask: every layer of a forward gets the same mask object,
    and checking it is a few passes over (B, sq, skv). An in-place edit bumps the mask's version."""
    global _LAST_SPANS
    if mask is None:
        return key_spans(None, sq, skv, causal)
    key, last = (mask._version, sq, skv, causal), _LAST_SPANS
    if last is not None and last[0]() is mask and last[1] == key:
        return last[2]
    spans = key_spans(mask, sq, skv, causal)
    _LAST_SPANS = (weakref.ref(mask), key, spans)
    return spans


def _pieces(q: torch.Tensor, mask: torch.Tensor | None, skv: int, causal: bool) -> Iterator[tuple[Any, int, int, int]]:
    """``(rows, first query, first key, n)`` for every group of rows with real queries."""
    sq = q.shape[2]
    starts, n = _spans(mask, sq, skv, causal)
    for rows, s in row_groups(starts):
        qs = max(0, s - (n - sq)) if causal else 0
        if qs < sq:
            yield rows, qs, s, n


@torch.library.custom_op(
    "vtpu::sparse_attention", mutates_args=(),
    schema="(Tensor q, Tensor k, Tensor v, Tensor? mask, int? window, int[] global_tokens, bool causal, float? scale, bool want_lse, int kv_layer) -> (Tensor, Tensor)",
)
def sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, window: int | None,
    global_tokens: list[int], causal: bool, scale: float | None, want_lse: bool, kv_layer: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CATTEND on (B, H, S, D) states under transformers' mask -> ``(o, lse)``.

    ``o`` is shaped like ``q``; ``lse`` (B, Hq, Sq) float32 when ``want_lse``, else empty.
    ``kv_layer >= 0``: keep keys and values in the sidecar's KV cache at that layer and send
    only the new positions' (unpadded batches only).
    """
    client = _client()
    no_lse = q.new_empty(0, dtype=torch.float32)
    sq = q.shape[2]
    pieces = list(_pieces(q, mask, k.shape[2], causal))
    if kv_layer >= 0:
        if len(pieces) != 1 or pieces[0][2] or not isinstance(pieces[0][0], slice):
            raise ValueError("vtpu_sparse with kv_layer (keys in the sidecar's KV cache) does not support padded batches")
        n = pieces[0][3]
        client.kv_put(kv_layer, k[:, :, n - sq : n], v[:, :, n - sq : n], start=n - sq)
        return _t(client.cattend(q, layer=kv_layer, kv_length=n, **_opts(n, window, global_tokens, causal, scale)), q), no_lse
    whole = len(pieces) == 1 and isinstance(pieces[0][0], slice) and pieces[0][1:3] == (0, 0)
    o = None if whole else torch.zeros_like(q)  # unpadded: CATTEND's output is the result, no copy
    lse = q.new_zeros(q.shape[:3], dtype=torch.float32) if want_lse and not whole else no_lse
    for rows, qs, s, n in pieces:
        opts = _opts(n - s, window, global_tokens, causal, scale)
        got = client.cattend(q[rows, :, qs:], k[rows, :, s:n], v[rows, :, s:n], return_lse=want_lse, **opts)
        out, row_lse = (got[0], got[1]) if want_lse else (got, None)
        if whole:
            return _t(out, q), (_t(row_lse, no_lse) if want_lse else no_lse)
        o[rows, :, qs:] = _t(out, q)
        if want_lse:
            lse[rows, :, qs:] = _t(row_lse, lse)
    return o, lse


@sparse_attention.register_fake
def _fake(q, k, v, mask, window, global_tokens, causal, scale, want_lse, kv_layer):  # type: ignore[no-untyped-def]
    return torch.empty_like(q), q.new_empty(q.shape[:3] if want_lse else (0,), dtype=torch.float32)


@torch.library.custom_op(
    "vtpu::sparse_attention_backward", mutates_args=(),
    schema="(Tensor q, Tensor k, Tensor v, Tensor? mask, Tensor o, Tensor lse, Tensor do, int? window, int[] global_tokens, bool causal, float? scale) -> (Tensor, Tensor, Tensor)",
)
def sparse_attention_backward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, o: torch.Tensor, lse: torch.Tensor,
    do: torch.Tensor, window: int | None, global_tokens: list[int], causal: bool, scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CATTEND's backward on the row groups of :func:`sparse_attention` -> ``(dq, dk, dv)``."""
    client = _client()
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    for rows, qs, s, n in _pieces(q, mask, k.shape[2], causal):
        opts = _opts(n - s, window, global_tokens, causal, scale)
        g = client.cattend_backward(
            q[rows, :, qs:], k[rows, :, s:n], v[rows, :, s:n], o[rows, :, qs:].float(), do[rows, :, qs:].float(), lse[rows, :, qs:], **opts)
        dq[rows, :, qs:], dk[rows, :, s:n], dv[rows, :, s:n] = _t(g[0], q), _t(g[1], k), _t(g[2], v)
    return dq, dk, dv


@sparse_attention_backward.register_fake
def _fake_backward(q, k, v, mask, o, lse, do, window, global_tokens, causal, scale):  # type: ignore[no-untyped-def]
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    q, k, v, mask, window, global_tokens, causal, scale, want_lse, _ = inputs
    ctx.opts = (window, list(global_tokens), causal, scale)
    ctx.want_lse = want_lse
    ctx.save_for_backward(q, k, v, mask, *output)


def _backward(ctx: Any, do: torch.Tensor, _dlse: torch.Tensor) -> tuple[Any, ...]:
    if not ctx.want_lse:
        raise RuntimeError("vtpu::sparse_attention was called with want_lse=False: no gradient (call it with want_lse=True)")
    q, k, v, mask, o, lse = ctx.saved_tensors
    dq, dk, dv = sparse_attention_backward(q, k, v, mask, o, lse, do.contiguous(), *ctx.opts)
    return dq, dk, dv, None, None, None, None, None, None, None


sparse_attention.register_autograd(_backward, setup_context=_setup)

"""Putting the shards' answers back together: rows in request order, ranges in coordinate
order, a global top-k, hierarchy counts summed.

Each function takes the parts the shards answered and returns what one sidecar holding all
the data would have answered, in the same form (see :mod:`vtpu.arrow` for value forms).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..arrow import Values
from ..client import RangeResult
from ..coords import DIMS
from ..errors import ProtocolError
from ..progress import BREAK_BYTES

__all__ = ["merge_values", "concat_ranges", "merge_nearest", "merge_hier", "join_phext"]

_LIBRARY_BREAK = BREAK_BYTES[0]  # the byte that ends a library (component 0)


def _stacked(v: Any) -> bool:
    """True for one array of rows (tensors, or fixed-width bytes), False for an object array."""
    if isinstance(v, np.ndarray):
        return v.dtype != object
    return hasattr(v, "dtype") and hasattr(v, "shape")  # a torch tensor (bfloat16 rows)


def _row_object(v: Any, i: int) -> Any:
    row = v[i]
    if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 2:
        return row.tobytes()  # fixed-width bytes rows
    return row


def merge_values(n: int, parts: Sequence[tuple[np.ndarray, Values]]) -> Values:
    """Values for rows ``0 .. n-1`` from ``(row indices, Values)`` parts.

    Stacked when every part with a found row is stacked with one dtype and row shape (the
    form one sidecar gives when all found rows agree), else an object array.
    """
    found = np.zeros(n, dtype=bool)
    for idx, v in parts:
        found[idx] = v.found
    live = [(idx, v) for idx, v in parts if np.any(v.found)]
    if live and all(_stacked(v.values) for _, v in live):
        first = live[0][1].values
        if all(v.values.dtype == first.dtype and tuple(v.values.shape[1:]) == tuple(first.shape[1:]) for _, v in live):
            if isinstance(first, np.ndarray):
                out: Any = np.zeros((n, *first.shape[1:]), dtype=first.dtype)
            else:  # torch
                import torch

                out = torch.zeros((n, *first.shape[1:]), dtype=first.dtype)
            for idx, v in live:
                out[idx] = v.values
            return Values(out, found)
    obj = np.empty(n, dtype=object)
    for idx, v in live:
        for j in np.flatnonzero(v.found):
            obj[idx[j]] = _row_object(v.values, j)
    return Values(obj, found)


def concat_ranges(parts: Sequence[RangeResult], limit: int | None, values: bool) -> RangeResult:
    """Per-range CRANGE answers, given in table (= coordinate) order, as one answer.

    Each part was asked for at most ``limit`` rows, so the first ``limit`` of the
    concatenation are the first ``limit`` overall.
    """
    coords = np.concatenate([p.coords for p in parts]) if parts else np.zeros((0, DIMS), np.uint32)
    truncated = any(p.truncated for p in parts)
    if limit is not None and len(coords) > limit:
        coords, truncated = coords[:limit], True
    n = len(coords)
    if not values:
        return RangeResult(coords, None, None, truncated)
    pieces, at = [], 0
    for p in parts:
        m = min(len(p.coords), n - at)
        if m <= 0:
            break
        pieces.append((np.arange(at, at + m), Values(p.values[:m], p.found[:m])))
        at += m
    v = merge_values(n, pieces)
    return RangeResult(coords, v.values, v.found, truncated)


def merge_nearest(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int, queries: np.ndarray | None = None,
                  metric: str = "l2") -> tuple[np.ndarray, np.ndarray]:
    """The global k nearest per query from per-range ``(coords (N, k_i, 9), dist (N, k_i))``,
    ordered as one sidecar orders them: by distance (``hier``: then by L1 to the query, which
    needs ``queries``), equal distances in coordinate order."""
    coords = np.concatenate([c for c, _ in parts], axis=1)
    dist = np.concatenate([d for _, d in parts], axis=1)
    nq, m = dist.shape
    q = np.repeat(np.arange(nq), m)
    flat_c = coords.reshape(-1, DIMS)
    keys = [flat_c[:, d] for d in range(DIMS - 1, -1, -1)]
    if metric == "hier":
        assert queries is not None
        l1 = np.abs(coords.astype(np.int64) - queries.astype(np.int64)[:, None, :]).sum(axis=2)
        keys.append(l1.reshape(-1))
    keys += [dist.reshape(-1), q]
    order = np.lexsort(keys).reshape(nq, m)[:, :k]
    rows = order  # indices into the flattened (nq*m) rows
    return flat_c[rows], dist.reshape(-1)[rows]


def merge_hier(parts: Sequence[list[dict[str, Any]]], direction: str) -> list[dict[str, Any]]:
    """CHIER nodes from several shards, counts summed per node.

    ``up``: the same ancestors from every shard, in the same order. ``down``: the stored
    children of each shard, merged in coordinate order of their prefixes.
    """
    by_pattern: dict[str, dict[str, Any]] = {}
    for nodes in parts:
        for node in nodes:
            key = node["pattern"]
            if key in by_pattern:
                by_pattern[key]["count"] += node["count"]
            else:
                by_pattern[key] = dict(node)
    merged = list(by_pattern.values())
    if direction == "down":
        merged.sort(key=lambda nd: (nd["level"], _prefix_key(nd["prefix"])))
    return merged


def _prefix_key(prefix: Any) -> tuple[int, ...]:
    if isinstance(prefix, str):
        return tuple(int(x) for x in prefix.replace("/", ".").split(".") if x != "")
    return tuple(int(x) for x in prefix)


def join_phext(pieces: Sequence[bytes]) -> bytes:
    """One phext file from per-range exports given in table order.

    Each export starts with the breaks from 1.1.1/1.1.1/1.1.1 to its first scroll; after the
    pieces before it the reader already stands at their last library, so that many library
    breaks come off the front (the ranges split on the library, so a later piece starts in a
    later library).

    Raises
    ------
    ProtocolError
        When a piece does not start with the library breaks that shows (not a range export).
    """
    out = bytearray()
    for piece in pieces:
        if not piece:
            continue
        skip = out.count(_LIBRARY_BREAK)
        if piece[:skip] != bytes([_LIBRARY_BREAK]) * skip:
            raise ProtocolError("E_FRAME", "a shard's phext export does not start in a later library than the one before it")
        out += piece[skip:]
    return bytes(out)

"""CNEAREST: exact k-nearest stored coordinates or stored vectors (mixed into :class:`vtpu.Client`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import arrow
from .coords import format_coord, pattern_string
from .errors import ProtocolError
from .tensors import decode_tensors
from ._host import ClientHost

__all__ = ["NearestMixin"]


def _single_coord(x: Any) -> bool:
    """True when ``x`` names one coordinate (a string or 9 integers) rather than a batch."""
    if isinstance(x, str):
        return True
    a = np.asarray(x) if not hasattr(x, "detach") else x.detach().cpu().numpy()
    return a.ndim == 1 and a.dtype.kind in "iu"


def _k(k: Any) -> Any:
    """``k`` as a JSON int where it is one; anything else goes to the sidecar to be refused (E_PARAM)."""
    return int(k) if isinstance(k, (int, np.integer)) and not isinstance(k, bool) else k


def _tensor(named: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in named:
        raise ProtocolError("E_FRAME", f"CNEAREST reply lacks tensor {name!r}")
    return named[name]


class NearestMixin(ClientHost):
    """Nearest-neighbour methods of :class:`vtpu.Client` (uses ``request``)."""

    def cnearest(
        self, coords: Any, k: int, *, metric: str = "l2", pattern: Any = None, timeout: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k stored coordinates nearest to each query coordinate (exact).

        Parameters
        ----------
        coords : str, sequence or array_like
            One coordinate (a string or 9 integers) or many (``(N, 9)`` integers or a
            sequence of strings).
        k : int
            Neighbours per query, ``1 ≤ k ≤`` the number of candidates.
        metric : {"l2", "l1", "hier"}
            ``l2``/``l1`` over the 9 components as integers; ``hier`` is 9 minus the
            length of the common leading prefix (the first differing component decides),
            ties broken by L1.
        pattern : str or sequence, optional
            Only coordinates matching this range pattern are candidates.
        timeout : float, optional
            Seconds to wait for the reply.

        Returns
        -------
        coords : numpy.ndarray
            ``(N, k, 9)`` uint32, nearest first (``(k, 9)`` for one query). Equal
            distances are ordered by coordinate; a stored query coordinate is its own
            nearest (distance 0).
        dist : numpy.ndarray
            ``(N, k)`` float64 (``(k,)`` for one query): L1 and hier exact; L2 the
            Euclidean distance computed from the exact integer square (float32-rounded
            only when a squared distance passes 2**63).

        Raises
        ------
        ParamError
            k < 1, k above the candidate count (the message says how many are stored),
            an unknown metric, or a pattern that selects nothing.
        CoordinateError, PatternError
            A malformed coordinate or pattern.
        """
        one = _single_coord(coords)
        params: dict[str, Any] = {"k": _k(k), "metric": metric}
        if pattern is not None:
            params["pattern"] = pattern_string(pattern)
        bodies = []
        if one:
            params["coord"] = format_coord(coords)
        else:
            params["batch"] = True
            bodies.append(arrow.encode_coords(coords))
        res, frames = self.request("CNEAREST", params, bodies, timeout=timeout)
        named = decode_tensors(res, frames, "CNEAREST")
        out = _tensor(named, "coords").astype(np.uint32)
        d = _tensor(named, "dist")
        dist = np.sqrt(d.astype(np.float64)) if res.get("dist") == "l2sq" else d.astype(np.float64)
        return (out[0], dist[0]) if one else (out, dist)

    def cnearest_vectors(
        self, queries: Any, k: int, pattern: Any, *, metric: str = "cosine", skip_mismatched: bool = False,
        timeout: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k stored tensors within ``pattern`` nearest to each query vector (exact).

        Parameters
        ----------
        queries : array_like
            ``(N, D)`` or ``(D,)`` floats (numpy or torch; float64 is sent as float32).
        k : int
            Neighbours per query.
        pattern : str or sequence
            The range whose stored tensors are the candidates; each must be a float
            tensor of D elements (any shape; flattened).
        metric : {"cosine", "l2", "ip"}
            Cosine similarity or inner product (higher is nearer; a zero vector has
            cosine 0), or Euclidean distance (lower is nearer).
        skip_mismatched : bool
            Skip values in the range that are not float tensors of D elements instead
            of failing.
        timeout : float, optional
            Seconds to wait for the reply.

        Returns
        -------
        coords : numpy.ndarray
            ``(N, k, 9)`` uint32, best first, ties by coordinate (``(k, 9)`` for a 1-D query).
        scores : numpy.ndarray
            ``(N, k)`` float32: similarity, inner product or distance per ``metric``.

        Raises
        ------
        ShapeError
            A stored tensor's length differs from D (unless ``skip_mismatched``).
        DTypeError
            A value in the range is not a float tensor (unless ``skip_mismatched``).
        ParamError
            Empty range, fewer than k usable tensors, bad k or metric.
        """
        if hasattr(queries, "detach"):  # torch: encode_tensors sends float16/bfloat16 as they are
            q: Any = queries.detach()
            if not q.dtype.is_floating_point:
                q = q.float()
        else:
            q = np.asarray(queries)
            if q.dtype.kind != "f":
                q = q.astype(np.float32)
        one = q.ndim == 1
        if one:
            q = q.reshape(1, -1)
        params = {"k": _k(k), "metric": metric, "pattern": pattern_string(pattern), "skip_mismatched": bool(skip_mismatched)}
        res, named = self.compute("CNEAREST", params, {"queries": q}, timeout=timeout)
        out = _tensor(named, "coords").astype(np.uint32)
        scores = _tensor(named, "score")
        return (out[0], scores[0]) if one else (out, scores)

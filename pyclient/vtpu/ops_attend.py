"""Sparse attention on the sidecar (CATTEND): forward, backward and the KV cache.

Masking rule (query row i at absolute position ``p = Skv - Sq + i``; ``G`` = global
token positions): key ``j`` is visible when ``j <= p`` (causal only) and ``window is None
or |p - j| < window or j in G or p in G``. GQA: query head ``h`` uses kv head
``h // (Hq // Hkv)``. All math is float32.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ._schema import SCHEMA
from .errors import ParamError
from ._host import ClientHost

__all__ = ["AttendMixin", "KV_KEY", "KV_VALUE"]

_KV = SCHEMA["layouts"]["kv_cache"]  # protocol.json: where each part of a cache vector's coordinate goes
KV_KEY: int = _KV["kinds"]["key"]
"""Kind component of a cached key vector's coordinate ``layer.head.pos/kind.batch.0/0.0.0``."""
KV_VALUE: int = _KV["kinds"]["value"]
"""Kind component of a cached value vector's coordinate."""

# Rows per CPUT batch when writing the cache (keeps each request well under the size limit).
_KV_ROWS_PER_REQUEST = 1 << 18


def _mask_params(window: int | None, global_tokens: Iterable[int], causal: bool, scale: float | None) -> dict[str, Any]:
    p: dict[str, Any] = {"causal": bool(causal), "global": [int(g) for g in global_tokens]}
    if window is not None:
        p["window"] = int(window) if isinstance(window, (int, np.integer)) else window
    if scale is not None:
        p["scale"] = float(scale)
    return p


def _float32(x: Any) -> np.ndarray:
    """numpy float32 copy-free where possible (torch tensors of any float dtype included)."""
    if type(x).__module__.split(".")[0] == "torch":
        return x.detach().cpu().float().contiguous().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


class AttendMixin(ClientHost):
    """CATTEND methods of :class:`vtpu.Client` (needs ``self.compute`` and ``self.cput_batch``)."""

    def cattend(
        self,
        q: Any,
        k: Any = None,
        v: Any = None,
        *,
        window: int | None = None,
        global_tokens: Iterable[int] = (),
        causal: bool = True,
        scale: float | None = None,
        return_lse: bool = False,
        layer: int | None = None,
        kv_length: int | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Sliding-window + global-token attention, ``softmax(q kᵀ · scale + mask) v``.

        Parameters
        ----------
        q : array_like
            Queries ``(B, Hq, Sq, D)`` or ``(Hq, Sq, D)``; numpy or torch, float32/16/bfloat16.
        k, v : array_like, optional
            Keys and values ``(B, Hkv, Skv, D)`` (or 3-D like ``q``); ``Hq`` must be a
            multiple of ``Hkv``. Omit both to read them from the KV cache (``layer``).
        window : int, optional
            Band width: key ``j`` is visible to the query at ``p`` when ``|p - j| < window``.
            ``None``: no band limit.
        global_tokens : iterable of int
            Positions that see and are seen by every query (subject to causality).
        causal : bool
            Hide keys after the query's position (default True).
        scale : float, optional
            Score scale (default ``1/sqrt(D)``).
        return_lse : bool
            Also return ``lse`` ``(B, Hq, Sq)``, the log-sum-exp of each masked score row
            (input of :meth:`cattend_backward`).
        layer, kv_length : int, optional
            Read ``k``/``v`` for positions ``0..kv_length-1`` of this layer from the KV
            cache written by :meth:`kv_put` (only the visible positions are read).
        timeout : float, optional
            Seconds to wait for the reply.

        Returns
        -------
        numpy.ndarray or (numpy.ndarray, numpy.ndarray)
            ``o`` (shape of ``q``, float32), or ``(o, lse)`` with ``return_lse``.

        Raises
        ------
        ShapeError, DTypeError, ParamError, LimitError
            Bad shapes (heads, head dim), integer inputs, bad window/globals, a missing
            cache entry (ParamError), sizes over the sidecar's limits.
        """
        params = _mask_params(window, global_tokens, causal, scale)
        params["return_lse"] = bool(return_lse)
        tensors: dict[str, Any] = {"q": q}
        if layer is not None or kv_length is not None:
            if k is not None or v is not None:
                raise ParamError("E_PARAM", "cattend: pass k and v, or layer and kv_length, not both")
            if layer is None or kv_length is None:
                raise ParamError("E_PARAM", "cattend: the KV cache needs both layer and kv_length")
            params["kv"] = {"layer": int(layer), "length": int(kv_length)}
        elif k is None or v is None:
            raise ParamError("E_PARAM", "cattend: k and v are required (or layer and kv_length)")
        else:
            tensors.update(k=k, v=v)
        _, out = self.compute("CATTEND", params, tensors, timeout=timeout)
        return (out["o"], out["lse"]) if return_lse else out["o"]

    def cattend_backward(
        self,
        q: Any,
        k: Any,
        v: Any,
        o: Any,
        do: Any,
        lse: Any,
        *,
        window: int | None = None,
        global_tokens: Iterable[int] = (),
        causal: bool = True,
        scale: float | None = None,
        timeout: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gradients of :meth:`cattend` with the same masking arguments.

        Parameters
        ----------
        q, k, v : array_like
            The forward inputs.
        o, lse : array_like
            The forward outputs (``cattend(..., return_lse=True)``).
        do : array_like
            Gradient of the loss with respect to ``o``.

        Returns
        -------
        (dq, dk, dv) : tuple of numpy.ndarray
            float32, shaped like ``q``, ``k``, ``v``; ``dk``/``dv`` sum over the query heads
            that share a kv head.
        """
        params = _mask_params(window, global_tokens, causal, scale)
        params["backward"] = True
        _, out = self.compute("CATTEND", params, {"q": q, "k": k, "v": v, "o": o, "do": do, "lse": lse}, timeout=timeout)
        return out["dq"], out["dk"], out["dv"]

    def kv_put(self, layer: int, k: Any, v: Any, start: int = 0, *, timeout: float | None = None) -> int:
        """Write keys and values into the sidecar's KV cache.

        Each position's ``(D,)`` vector goes to ``layer.head.pos/kind.batch.0/0.0.0``
        (kind 1 = key, 2 = value) as float32, so a decode step sends only its new token.

        Parameters
        ----------
        layer : int
            Layer number (first coordinate component).
        k, v : array_like
            ``(B, Hkv, S, D)`` keys and values for positions ``start .. start+S-1``.
        start : int
            Position of the first one.

        Returns
        -------
        int
            Scrolls written (``2·B·Hkv·S``).
        """
        ka, va = _float32(k), _float32(v)
        if ka.ndim != 4 or ka.shape != va.shape:
            raise ParamError("E_PARAM", f"kv_put: k and v must both be (B, Hkv, S, D), got {ka.shape} and {va.shape}")
        if int(start) < 0 or int(layer) < 0:
            raise ParamError("E_PARAM", "kv_put: layer and start must be >= 0")
        B, H, S, D = ka.shape
        b, h, s = np.meshgrid(np.arange(B), np.arange(H), np.arange(S), indexing="ij")
        n = B * H * S
        coords = np.zeros((2 * n, 9), np.uint32)
        for part, kind in ((slice(0, n), KV_KEY), (slice(n, 2 * n), KV_VALUE)):
            at = _KV["components"]
            coords[part, at["layer"]] = int(layer)
            coords[part, at["head"]] = h.reshape(-1)
            coords[part, at["pos"]] = s.reshape(-1) + int(start)
            coords[part, at["kind"]] = kind
            coords[part, at["batch"]] = b.reshape(-1)
        values = np.concatenate([ka.reshape(n, D), va.reshape(n, D)])
        written = 0
        for at in range(0, 2 * n, _KV_ROWS_PER_REQUEST):
            end = min(2 * n, at + _KV_ROWS_PER_REQUEST)
            written += self.cput_batch(coords[at:end], values[at:end], timeout=timeout)
        return written

"""Dense layers held in the sidecar beside the experts (CEXPERTS ``dense_load`` / ``dense_run``):
:class:`DenseMixin`.

A dense layer is a plain matrix ``W`` (N outputs of K inputs) the sidecar keeps in float32 or
bfloat16 and multiplies on its native kernel, ``y = x @ W.T`` in float32, on all its cores. What
it is for: the big matrices of a decode step, read whole for every token. A model's lm_head
(151,936 × 2048 in Qwen3-30B-A3B, 1.2 GB in float32) and attention projections, which torch's
one-row product reads on a single core (and its bf16 one slower still on a CPU). On this host a
run goes through the doorbell (:mod:`vtpu.bell`) like an experts run; elsewhere through the socket.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ._ahead import ahead
from ._host import ClientHost
from .errors import ParamError, ShapeError
from .ops_experts import CHUNK_BYTES, LOAD_TIMEOUT, _np

__all__ = ["DenseMixin", "PANEL_ROWS", "DENSE_FORMATS"]

#: A chunk of an upload starts on a multiple of this many rows (the kernel's panel).
PANEL_ROWS = 16
#: How the sidecar may hold ``W``: float32, or bfloat16 (half the bytes a product reads).
DENSE_FORMATS = ("fp32", "bf16")


class DenseMixin(ClientHost):
    """CEXPERTS dense-layer methods of :class:`vtpu.Client`."""

    def dense_load(
        self,
        layer: int,
        weight: Any,
        *,
        format: str = "fp32",
        threads: int | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Upload (or replace) a dense layer ``W``, a few rows at a time.

        Parameters
        ----------
        layer : int
            Layer id (≥ 0). Ids are shared with experts layers: an id holds one or the other,
            and this replaces an experts layer of the same id.
        weight : array_like, shape (N, K)
            ``nn.Linear``'s weight (numpy or torch, any float dtype; converted to float32 a chunk
            at a time, so a bf16 weight never has a whole float32 copy here).
        format : {"fp32", "bf16"}
            How the sidecar holds ``W``: ``bf16`` rounds each weight to the nearest bfloat16
            (exact for a bf16 weight) and reads half the bytes a product; ``x``, ``y`` and the
            sums stay float32 either way.
        threads : int, optional
            Threads of its product in the sidecar (default one per core).
        chunk_bytes : int
            Upload at most about this many bytes per request.
        timeout : float, optional
            Seconds to wait for each reply (default the larger of the client's and 600 s).

        Returns
        -------
        dict
            ``layer, rows, cols, format, received, complete, bytes, threads`` as the sidecar holds it.

        Raises
        ------
        ParamError
            A bad layer id or format, a weight that is not 2-D, a sidecar without its fp32 kernel.
        """
        if format not in DENSE_FORMATS:
            raise ParamError("E_PARAM", f"a dense layer's format is one of {', '.join(DENSE_FORMATS)}, got {format!r}")
        w = weight if hasattr(weight, "detach") else np.asarray(weight)
        if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
            raise ParamError("E_PARAM", f"a dense weight is (N, K) with N, K >= 1, got {tuple(w.shape)}")
        N, K = int(w.shape[0]), int(w.shape[1])
        per = max(PANEL_ROWS, (int(chunk_bytes) // (4 * K)) // PANEL_ROWS * PANEL_ROWS)
        wait = timeout if timeout is not None else max(self.timeout, LOAD_TIMEOUT)
        params: dict[str, Any] = {"mode": "dense_load", "layer": int(layer), "rows": N, "cols": K, "format": format}
        if threads is not None:
            params["threads"] = int(threads)

        def chunks() -> Iterator[tuple[int, np.ndarray]]:
            for first in range(0, N, per):
                yield first, _np(w[first : first + per])

        res: dict[str, Any] = {}
        for first, rows in ahead(chunks()):
            res, _ = self.compute("CEXPERTS", {**params, "first": first, "replace": first == 0}, {"w": rows}, timeout=wait)
        return dict(res.get("info") or {})

    def dense_run(self, layer: int, x: Any, *, out_features: int | None = None, timeout: float | None = None) -> np.ndarray:
        """``y = x @ W.T`` of an uploaded dense layer.

        Parameters
        ----------
        layer : int
            As uploaded.
        x : array_like, shape (T, K)
            Rows to multiply (float; sent as float32).
        out_features : int, optional
            N, when the caller knows it: then a run on this host goes through the doorbell
            (which must size the answer's place before it rings), else through the socket.
        timeout : float, optional

        Returns
        -------
        ndarray of float32, shape (T, N)

        Raises
        ------
        ParamError
            No dense layer ``layer``, or one still missing rows; the id holds experts.
        ShapeError
            ``x`` is not (T, K) with the layer's K; the layer's N is not ``out_features``.
        """
        xs = _np(x)
        if xs.ndim == 2 and xs.size and out_features:
            y = self._bell(lambda bell, deadline, check: bell.run_dense(int(layer), xs, int(out_features), deadline, check), timeout)
            if y is not None:
                return y
        _, t = self.compute("CEXPERTS", {"mode": "dense_run", "layer": int(layer)}, {"x": xs}, timeout=timeout)
        y = t["y"]
        if out_features and y.shape[1] != out_features:
            raise ShapeError("E_SHAPE", f"dense layer {layer} has {y.shape[1]} outputs, out_features says {out_features}")
        return y

    def dense_info(self, layer: int | None = None, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Dense layers the sidecar holds (one dict per layer, see :meth:`dense_load`); drop them
        with :meth:`experts_drop`, which drops layers of either kind."""
        params: dict[str, Any] = {"mode": "info"}
        if layer is not None:
            params["layer"] = int(layer)
        res, _ = self.compute("CEXPERTS", params, timeout=timeout)
        return list(res.get("dense", []))

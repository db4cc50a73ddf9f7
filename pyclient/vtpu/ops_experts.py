"""MoE experts held in the sidecar and run on ONNX Runtime (CEXPERTS): :class:`ExpertsMixin`.

Upload a layer's experts once (:meth:`ExpertsMixin.experts_load`, transformers' fused
Qwen3-MoE layout ``gate_up (E, 2I, H)``, ``down (E, H, I)``), then each forward sends only
the hidden states and the routing (:meth:`ExpertsMixin.experts_run`): the sidecar groups
the tokens by expert, runs each active expert's SwiGLU FFN ``down(silu(gate(x)) * up(x))``
and returns the routing-weighted sum per token.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple

import numpy as np

from .errors import ParamError
from ._ahead import ahead
from ._host import ClientHost

__all__ = ["ExpertsMixin", "ExpertsOutput", "EXPERT_FORMATS"]

#: Weight formats the sidecar builds experts in.
EXPERT_FORMATS = ("fp32", "int8", "q8", "q4")
#: Largest upload request, in bytes (well under the default max_request_bytes).
CHUNK_BYTES = 256 << 20
#: Default seconds to wait for each upload reply (at least the client's timeout).
LOAD_TIMEOUT = 600.0


class ExpertsOutput(NamedTuple):
    """Result of :meth:`ExpertsMixin.experts_run`.

    Attributes
    ----------
    y : ndarray of float32, shape (T, H)
        Combined expert outputs.
    counts : ndarray of int64, shape (E,)
        Tokens routed to each expert (assignments, so it sums to T * k).
    elapsed_ms : float
        Time in the sidecar's expert runtime (excludes transfer).
    """

    y: np.ndarray
    counts: np.ndarray
    elapsed_ms: float


def _np(x: Any) -> np.ndarray:
    """A C-contiguous float32 numpy array from a numpy array or torch tensor (no grad)."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu")
        if str(x.dtype) != "torch.float32":
            x = x.float()
        x = x.numpy()
    return np.ascontiguousarray(x, np.float32)


class ExpertsMixin(ClientHost):
    """CEXPERTS methods of :class:`vtpu.Client` (they call ``self.compute``)."""

    def experts_load(
        self,
        layer: int,
        gate_up: Any,
        down: Any,
        *,
        format: str = "fp32",  # noqa: A002 - the wire name
        group: int | None = None,
        threads: int | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Upload (or replace) every expert of one layer.

        Parameters
        ----------
        layer : int
            Layer id (≥ 0), the key for :meth:`experts_run`.
        gate_up : array_like, shape (E, 2I, H)
            Fused gate and up projections, gate rows first (transformers 5.x layout).
        down : array_like, shape (E, H, I)
            Down projections.
        format : {"fp32", "int8", "q8", "q4"}
            ``int8``: per-output-channel 7-bit codes in int8, activations quantised per call
            (per tensor); ``q8`` / ``q4``: 8-bit weights in blocks of 32 / 4-bit in blocks of
            128, activations quantised to int8 per block: the arithmetic of ONNX Runtime's
            MatMulNBits at accuracy level 4, on the sidecar's native kernels (on MatMulNBits
            itself where those addons did not build).
            ``fp32`` runs on the sidecar's native float32 kernel (ONNX Runtime's Gemm where
            that addon did not build).
        group : int, optional
            Experts per ONNX Runtime session (sidecar default: as many as fit in 1 GiB of
            weights; each session has its own thread pool, and a forward costs one call
            per session with active experts). Layers on a native kernel have no sessions.
        threads : int, optional
            Threads of this layer: ONNX Runtime's intra-op threads of its sessions, or the
            native kernel's (sidecar default: one per core). Each session has its own pool:
            match a baseline's thread count with it.
        chunk_bytes : int
            Upload at most about this many bytes per request.
        timeout : float, optional
            Seconds to wait for each reply; default the larger of the client's timeout and
            :data:`LOAD_TIMEOUT` (building the sessions of big layers takes a while).

        Returns
        -------
        dict
            The layer as the sidecar holds it: ``layer, experts, hidden, intermediate,
            format, group, received, complete, bytes, kernel`` (``kernel``: ``"native"`` for
            ``q4``, ``q8`` and ``fp32`` on the sidecar's own kernels, else ``"onnxruntime"``).

        Raises
        ------
        ParamError
            Unknown format, a bad layer id.
        ShapeError
            ``gate_up`` and ``down`` do not agree.
        """
        # Converted chunk by chunk below: a bf16 model never holds a whole fp32 copy here.
        gu = gate_up if hasattr(gate_up, "detach") else np.asarray(gate_up)
        dn = down if hasattr(down, "detach") else np.asarray(down)
        if gu.ndim != 3 or dn.ndim != 3 or gu.shape[1] % 2:
            raise ParamError("E_PARAM", f"gate_up must be (E, 2I, H) and down (E, H, I), got {tuple(gu.shape)} and {tuple(dn.shape)}")
        E, I2, H = (int(d) for d in gu.shape)
        per = max(1, int(chunk_bytes) // max(1, 4 * (I2 * H + int(np.prod(dn.shape[1:])))))
        chunks = ((first, gu[first : first + per], dn[first : first + per]) for first in range(0, E, per))
        return self.experts_load_chunks(layer, chunks, experts=E, format=format, group=group, threads=threads, timeout=timeout)

    def experts_load_chunks(
        self,
        layer: int,
        chunks: Iterable[tuple[int, Any, Any]],
        *,
        experts: int,
        format: str = "fp32",  # noqa: A002 - the wire name
        group: int | None = None,
        threads: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Upload (or replace) one layer's experts from chunks made one at a time.

        What :meth:`experts_load` does with slices of whole arrays, for a caller that
        produces the weights as it goes (read from a checkpoint, generated). The next chunk
        is made on a thread while this one is in the sidecar, so producing (reading, casting,
        generating) overlaps the sidecar's quantising; at most three chunks are in this
        process at a time (sent, made, being made). The first chunk replaces whatever the layer
        held; a layer left incomplete (an iterator that raised or stopped early) answers
        runs with ``ParamError`` naming the missing experts until it is dropped or replaced.

        Parameters
        ----------
        layer : int
            Layer id (≥ 0).
        chunks : iterable of (first, gate_up, down)
            ``gate_up`` (n, 2I, H) and ``down`` (n, H, I) are experts ``first..first+n-1``
            (numpy arrays or torch tensors, any float dtype; sent as float32).
        experts : int
            E, the layer's expert count.
        format, group, threads, timeout
            As :meth:`experts_load`.

        Returns
        -------
        dict
            The layer as the sidecar holds it after the last chunk (see :meth:`experts_load`).

        Raises
        ------
        ParamError
            Unknown format, no chunk, a chunk that is not (n, 2I, H) and (n, H, I).
        ShapeError
            A chunk whose H or I differs from the first's (the sidecar checks each against the
            layer's spec); the layer is left incomplete.
        """
        if format not in EXPERT_FORMATS:
            raise ParamError("E_PARAM", f"format must be one of {EXPERT_FORMATS}, got {format!r}")
        wait = timeout if timeout is not None else max(self.timeout, LOAD_TIMEOUT)
        params: dict[str, Any] | None = None
        res: dict[str, Any] = {}
        for sent, (first, gu, dn) in enumerate(ahead(chunks)):
            if gu.ndim != 3 or dn.ndim != 3 or gu.shape[1] % 2:
                raise ParamError("E_PARAM", f"gate_up must be (n, 2I, H) and down (n, H, I), got {tuple(gu.shape)} and {tuple(dn.shape)}")
            if params is None:
                I2, H = int(gu.shape[1]), int(gu.shape[2])
                params = {"mode": "load", "layer": int(layer), "experts": int(experts), "hidden": H, "intermediate": I2 // 2, "format": format}
                if group is not None:
                    params["group"] = int(group)
                if threads is not None:
                    params["threads"] = int(threads)
            # A chunk that completes a group waits for its sessions to be built (seconds for big layers).
            p = {**params, "first": int(first), "replace": sent == 0}
            res, _ = self.compute("CEXPERTS", p, {"gate_up": _np(gu), "down": _np(dn)}, timeout=wait)
        if params is None:
            raise ParamError("E_PARAM", f"no experts to upload for layer {layer}")
        res.pop("mode", None)
        res.pop("tensors", None)
        return res.get("info", res)

    def experts_run(
        self,
        layer: int,
        x: Any,
        *,
        logits: Any = None,
        top_k: int | None = None,
        renormalize: bool = False,
        expert_ids: Any = None,
        weights: Any = None,
        timeout: float | None = None,
    ) -> ExpertsOutput:
        """MoE forward of an uploaded layer.

        Give either router ``logits`` with ``top_k`` (routed in the sidecar: softmax, top-k,
        ``renormalize`` as Qwen3-MoE's ``norm_topk_prob``) or a ready selection
        ``expert_ids`` and ``weights`` (e.g. transformers' own ``top_k_index`` and
        ``top_k_weights``).

        Parameters
        ----------
        layer : int
            As uploaded.
        x : array_like, shape (T, H)
            Hidden states.
        logits : array_like, shape (T, E), optional
        top_k : int, optional
        renormalize : bool
        expert_ids : array_like of int, shape (T, k), optional
        weights : array_like, shape (T, k), optional
        timeout : float, optional

        Returns
        -------
        ExpertsOutput

        Raises
        ------
        ParamError
            The layer was never uploaded or misses experts; neither or both routings given.
        ShapeError
            ``x`` or ``logits`` widths differ from the layer's.
        """
        tensors: dict[str, Any] = {"x": x}
        params: dict[str, Any] = {"mode": "run", "layer": int(layer)}
        if (logits is None) == (expert_ids is None):
            raise ParamError("E_PARAM", "give logits (with top_k) or expert_ids with weights")
        if logits is not None:
            if top_k is None:
                raise ParamError("E_PARAM", "top_k is required with logits")
            tensors["logits"] = logits
            params.update(top_k=int(top_k), renormalize=bool(renormalize))
        else:
            if weights is None:
                raise ParamError("E_PARAM", "weights are required with expert_ids")
            ids = expert_ids.detach().to("cpu").numpy() if hasattr(expert_ids, "detach") else np.asarray(expert_ids)
            tensors["expert_ids"] = ids = np.ascontiguousarray(ids, np.int32)
            tensors["weights"] = weights
            xs, ws = _np(x), _np(weights)
            if xs.ndim == 2 and ids.ndim == 2 and ws.shape == ids.shape and len(xs) == len(ids) and xs.size:
                # Same host: the doorbell, two wake-ups instead of a socket round trip (vtpu.bell).
                rang = self._bell(lambda bell, deadline, check: bell.run(int(layer), xs, ids, ws, deadline, check), timeout)
                if rang is not None:
                    return ExpertsOutput(*rang)
                tensors["x"], tensors["weights"] = xs, ws
        res, t = self.compute("CEXPERTS", params, tensors, timeout=timeout)
        return ExpertsOutput(t["y"], t["counts"].astype(np.int64), float(res.get("elapsed_ms", 0.0)))

    def experts_info(self, layer: int | None = None, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Layers held by the sidecar's expert runtime (one dict per layer, see :meth:`experts_load`)."""
        params: dict[str, Any] = {"mode": "info"}
        if layer is not None:
            params["layer"] = int(layer)
        res, _ = self.compute("CEXPERTS", params, timeout=timeout)
        return list(res.get("layers", []))

    def experts_drop(self, layer: int | None = None, *, timeout: float | None = None) -> int:
        """Release one layer's experts (all when ``layer`` is None); returns how many were held."""
        params: dict[str, Any] = {"mode": "drop"}
        if layer is not None:
            params["layer"] = int(layer)
        res, _ = self.compute("CEXPERTS", params, timeout=timeout)
        return int(res.get("dropped", 0))

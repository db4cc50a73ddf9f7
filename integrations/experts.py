"""``experts_implementation="vtpu"``: transformers MoE experts computed in the vTPU sidecar.

Importing this module registers ``vtpu`` with
:class:`transformers.integrations.moe.ExpertsInterface`. An experts module (transformers
5.x fused layout: ``gate_up_proj (E, 2I, H)``, ``down_proj (E, H, I)``, e.g. Qwen3-MoE's)
runs in the sidecar once it is *bound*: its weights uploaded under a layer id
(:func:`bind`, which :func:`vtpu.integrations.qwen3.hook` calls for every layer). The
forward sends the hidden states with transformers' own routing (``top_k_index``,
``top_k_weights``) and gets back the combined expert outputs, so the model's numerics
match transformers' up to float rounding. Modules left unbound run transformers' eager
experts forward.

Inference only: no gradient flows through the sidecar's experts (training-mode forwards
that need one raise ``RuntimeError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers.integrations.moe import ExpertsInterface

from . import resolve_client

__all__ = ["NAME", "ExpertsBinding", "bind", "unbind", "binding", "vtpu_experts_forward", "register"]

NAME = "vtpu"


@dataclass
class ExpertsBinding:
    """Where a module's experts live in the sidecar, and its routing statistics.

    Attributes
    ----------
    layer : int
        The sidecar's layer id.
    client : vtpu.Client or None
        None: the integrations' default client at call time.
    format : str
        Weight format uploaded (``fp32`` or ``int8``).
    last_counts : ndarray of int64, shape (E,) or None
        Tokens routed to each expert by the latest forward.
    total_counts : ndarray of int64, shape (E,)
        Summed over forwards since binding (or :meth:`reset`).
    calls : int
        Forwards since binding (or :meth:`reset`).
    sidecar_ms : float
        Summed time inside the sidecar's expert runtime.
    released : bool
        The module's torch copies of the weights were freed (:func:`bind` with ``release``).
    """

    layer: int
    client: Any
    format: str
    num_experts: int
    last_counts: np.ndarray | None = None
    total_counts: np.ndarray = field(default=None)  # type: ignore[assignment]
    calls: int = 0
    sidecar_ms: float = 0.0
    released: bool = False

    def __post_init__(self) -> None:
        if self.total_counts is None:
            self.total_counts = np.zeros(self.num_experts, np.int64)

    def reset(self) -> None:
        """Zero the statistics."""
        self.last_counts, self.calls, self.sidecar_ms = None, 0, 0.0
        self.total_counts = np.zeros(self.num_experts, np.int64)


def _check_layout(module: torch.nn.Module) -> None:
    if not (hasattr(module, "gate_up_proj") and hasattr(module, "down_proj")):
        raise TypeError(f"{type(module).__name__} has no fused gate_up_proj / down_proj experts")
    for flag, want in (("has_gate", True), ("has_bias", False), ("is_transposed", False), ("is_concatenated", True)):
        if getattr(module, flag, want) != want:
            raise ValueError(f"{type(module).__name__}: vtpu experts need {flag}={want}")
    act = getattr(getattr(module, "config", None), "hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ValueError(f"vtpu experts compute SwiGLU (silu); this model uses {act!r}")


def bind(
    module: torch.nn.Module, layer: int, *, client: Any = None, format: str = "fp32", group: int | None = None, release: bool = False  # noqa: A002
) -> ExpertsBinding:
    """Upload ``module``'s experts to the sidecar as ``layer`` and route its forward there.

    Parameters
    ----------
    module : torch.nn.Module
        An experts module with fused ``gate_up_proj`` (E, 2I, H) and ``down_proj`` (E, H, I).
    layer : int
        Layer id in the sidecar (models sharing a sidecar need disjoint ids).
    client : vtpu.Client, optional
        Default: :func:`vtpu.integrations.default_client` (resolved now for the upload and
        at each call after).
    format : {"fp32", "int8", "q8", "q4"}
    group : int, optional
        Experts per ONNX Runtime session.
    release : bool
        Free the module's torch copies of the expert weights once uploaded (they become
        empty tensors): the Python process stops holding them, and the module can no longer
        run without the sidecar.

    Returns
    -------
    ExpertsBinding
    """
    _check_layout(module)
    c = resolve_client(client)
    with torch.no_grad():
        c.experts_load(layer, module.gate_up_proj, module.down_proj, format=format, group=group)
    b = ExpertsBinding(layer=int(layer), client=client, format=format, num_experts=int(module.gate_up_proj.shape[0]))
    module.vtpu_experts = b
    if release:
        for p in (module.gate_up_proj, module.down_proj):
            p.data = torch.empty(0, dtype=p.dtype, device=p.device)
        b.released = True
    return b


def binding(module: torch.nn.Module) -> ExpertsBinding | None:
    """The module's :class:`ExpertsBinding`, or None when it is not bound."""
    return getattr(module, "vtpu_experts", None)


def unbind(module: torch.nn.Module, *, drop: bool = True) -> None:
    """Forget the binding (and release the layer in the sidecar when ``drop``)."""
    b = binding(module)
    if b is None:
        return
    del module.vtpu_experts
    if drop:
        client = resolve_client(b.client)
        if not client.closed:
            client.experts_drop(b.layer)


def vtpu_experts_forward(
    self: torch.nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """transformers experts forward: (T, H) states and the (T, k) routing → (T, H)."""
    b = binding(self)
    if b is None:  # not offloaded: transformers' own eager loop
        return type(self).forward.__wrapped__(self, hidden_states, top_k_index, top_k_weights)
    if self.training and torch.is_grad_enabled() and hidden_states.requires_grad:
        raise RuntimeError("vtpu experts are inference only: call model.eval() or run under torch.no_grad()")
    out = resolve_client(b.client).experts_run(b.layer, hidden_states, expert_ids=top_k_index, weights=top_k_weights)
    b.last_counts = out.counts
    b.total_counts += out.counts
    b.calls += 1
    b.sidecar_ms += out.elapsed_ms
    return torch.from_numpy(out.y).to(device=hidden_states.device, dtype=hidden_states.dtype)


def register() -> None:
    """Register ``vtpu`` with transformers' ExpertsInterface (done on import; idempotent)."""
    ExpertsInterface.register(NAME, vtpu_experts_forward)


register()
